"""Walk each message's text as alternating plain and attributed pieces, and say what the scores
explain (shared by renderers)."""

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
    """E.g. "refined 5 of 112 sentences (113 + 61 sequences); dim units not refined", or
    "saliency screen picked 50 of 868 words (1 + 51 sequences); dim units not scored"."""
    r = result.metadata.refinement
    coarse, fine = r.stages
    if r.screen is not None:
        return (
            f"{r.screen} screen picked {len(r.refined)} of {coarse.n_units} {result.granularity.value}s "
            f"({coarse.n_sequences} + {fine.n_sequences} sequences); dim units not scored"
        )
    return (
        f"refined {len(r.refined)} of {coarse.n_units} {r.coarse_granularity.value}s "
        f"({coarse.n_sequences} + {fine.n_sequences} sequences); dim units not refined"
    )


def objective_text(result: AttributionResult) -> str:
    """What the scores explain and its value at the input, e.g. ``log p(target) = -1.234`` or
    ``log p(target) - log p(contrast) = -0.001 - (-14.152) = 14.151``."""
    m = result.metadata
    if m.contrast_log_prob is None:
        return f"log p(target) = {m.target_log_prob:.3f}"
    return (
        f"log p(target) - log p(contrast) = {m.target_log_prob:.3f} - ({m.contrast_log_prob:.3f}) "
        f"= {result.objective_value:.3f}"
    )


def footer_parts(result: AttributionResult, model_note: str | None = None) -> list[str]:
    """How a result was computed, in short phrases (the terminal footer, the HTML meta line):
    method, granularity, model, cost, f(x), and any convergence gap, generated target, warning."""
    m = result.metadata
    parts = [
        result.method.value,
        result.granularity.value,
        f"{m.model} ({model_note})" if model_note else m.model,
        f"{m.n_forward} forward",
        f"{m.n_sequences} sequences",
        f"{m.compute_time_seconds:.2f}s",
        objective_text(result),
    ]
    if m.refinement is not None:
        parts.append(refinement_note(result))
    if m.convergence_delta is not None:
        parts.append(f"convergence delta {m.convergence_delta:+.3g}")
    if m.target_generated:
        parts.append("generated target")
    return parts + list(m.warnings)


def context(content: str, start: int, end: int, radius: int = 10) -> str:
    """A unit in a few words of its message, marked: ``capital of [France]?``. Cut at word
    boundaries where possible; whitespace runs collapse so the line stays one line."""
    before = content[max(0, start - radius) : start]
    after = content[end : end + radius]
    if start - radius > 0 and " " in before:
        before = "…" + before[before.index(" ") + 1 :]
    if end + radius < len(content) and " " in after.rstrip():
        after = after[: after.rstrip().rindex(" ")] + "…"
    text = f"{before}[{content[start:end]}]{after}"
    return " ".join(text.split())
