"""The order in which the engine chunks the row tables of a batch, when some items are
contrastive (two answers, two tables with the same masks): which contrasts share passes with
their target and which run apart."""

from __future__ import annotations

from collections.abc import Sequence

from .packing import RowTable

# A contrastive item's two answers share passes when padding the shorter one wastes at most
# this share of the longer sequence (the threshold MIN_PREFIX_SHARE applies to prefixes).
MAX_ANSWER_PADDING = 0.1


def chunking_orders(tables: Sequence[RowTable], tables_of: Sequence[list[int]]) -> list[list[int]]:
    """The tables in chunking order: longest first, so rows of similar length share a chunk
    and little padding is wasted. A contrast whose sequences are about as long as its target's
    (``answers_share_passes``) follows its target: rows of both share chunks, their forwards
    and each chunk's prompt prefix. Any other contrast is chunked after every target, among the
    other contrasts, because a chunk mixing the two answers pads the shorter one's rows
    (measured on a CPU: +32 % tokens and +50 % time for a 69-token target against a 17-token
    contrast, ``benchmarks/contrast.py``). Without contrasts: one order, as ever."""
    apart = {
        mine[1]
        for mine in tables_of
        if len(mine) > 1
        and not answers_share_passes(tables[mine[0]].encoded.seq_len, tables[mine[1]].encoded.seq_len)
    }

    def by_length(ts: list[int]) -> list[int]:
        return sorted(ts, key=lambda t: -tables[t].encoded.seq_len)  # stable: ties keep input order

    together = by_length([t for t in range(len(tables)) if t not in apart])
    return [together, by_length(sorted(apart))] if apart else [together]


def answers_share_passes(target_tokens: int, contrast_tokens: int) -> bool:
    """Whether the rows of a target and of its contrast may share a pass: when padding the
    shorter answer's rows to the longer's costs at most ``MAX_ANSWER_PADDING`` of its tokens
    (fewer calls and a shared prompt prefix are then worth it; beyond that the padding is
    not)."""
    longest = max(target_tokens, contrast_tokens)
    return longest - min(target_tokens, contrast_tokens) <= MAX_ANSWER_PADDING * longest
