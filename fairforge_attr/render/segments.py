"""Walk each message's text as alternating plain and attributed pieces (shared by renderers)."""

from __future__ import annotations

from collections.abc import Iterator

from ..results import Attribution, AttributionResult


def message_texts(result: AttributionResult) -> list[tuple[str, str]]:
    """(role, content) of every message, or the raw prompt as one 'prompt' message."""
    if result.messages is not None:
        return [(m.role, m.content) for m in result.messages]
    role = result.attributions[0].role if result.attributions else "prompt"
    return [(role, result.prompt)]


def pieces(
    result: AttributionResult, message_index: int, content: str
) -> Iterator[tuple[str, Attribution | None]]:
    """Yield (text, attribution or None) covering ``content`` in order."""
    units = sorted(
        (a for a in result.attributions if a.message_index == message_index), key=lambda a: a.char_start
    )
    pos = 0
    for a in units:
        if a.char_start > pos:
            yield content[pos : a.char_start], None
        yield content[a.char_start : a.char_end], a
        pos = max(pos, a.char_end)
    if pos < len(content):
        yield content[pos:], None


def refinement_note(result: AttributionResult) -> str:
    """E.g. "refined 5 of 112 sentences (113 + 61 sequences); dim units not refined"."""
    r = result.metadata.refinement
    coarse, fine = r.stages
    return (
        f"refined {len(r.refined)} of {coarse.n_units} {r.coarse_granularity.value}s "
        f"({coarse.n_sequences} + {fine.n_sequences} sequences); dim units not refined"
    )
