"""Per-variant prefix reuse: the unperturbed prompt's keys/values, computed once per item.

A variant that first differs from the unperturbed input at token ``p`` (its *first change*)
has the unperturbed prompt's keys and values at every position before ``p``: only tokens
``p..`` need to run. Occlusion removes one unit per variant, so on a long prompt its variants
change, on average, half-way in; a coarse-to-fine refinement's second stage changes only
inside its refined units. For an item whose variants change late, the engine therefore

1. runs the unperturbed prompt once (the *anchor*: up to the last position before the first
   one whose logits are needed) and keeps its cache;
2. sorts the item's variants by first change (grouping them by that position);
3. scores neighbours together: a chunk of rows runs from the smallest first change among
   them, against the anchor's cache cut to that length (a view, no copy) and shared by all
   its rows.

So a variant costs ``seq_len - first_change`` tokens (plus the few its chunk neighbours
share), instead of ``seq_len`` or the chunk-wide common prefix that ``packing.py`` finds on
its own. Items whose variants change early (random LIME, KernelSHAP, Sobol masks) or that are
too small to fill a pass are left to ``packing.py``, which packs several items per pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from .packing import KV_FACTOR, MIN_PREFIX_SHARE, Budgets, Chunk, RowTable


def anchor_length(table: RowTable) -> int:
    """Tokens of the anchor: every position a chunk of this table may take from its cache."""
    return min(table.max_prefix, max(table.first_change))


def worth_anchoring(table: RowTable, budgets: Budgets) -> bool:
    """Anchor an item whose rows alone fill a pass and whose variants change late enough that
    the anchor saves ``MIN_PREFIX_SHARE`` of its tokens."""
    length, n = table.encoded.seq_len, table.n_variants
    if not budgets.use_prefix or n < 2 or n * length < budgets.tokens:
        return False
    cut = table.max_prefix
    saved = sum(min(fc, cut) for fc in table.first_change) - anchor_length(table)
    return saved >= MIN_PREFIX_SHARE * n * length


def first_change_order(table: RowTable) -> torch.Tensor:
    """A permutation of the table's variants by first change (stable: ties keep their order)."""
    return torch.tensor(table.first_change).argsort(stable=True)


def plan_anchored(t: int, table: RowTable, budgets: Budgets) -> Iterator[Chunk]:
    """Chunks of table ``t``'s variants (sorted by first change), each sharing the anchor up to
    its first row's first change. A chunk grows while its rows' tokens from there, their
    keys/values over the whole sequence and their logits fit the budgets."""
    length, n_t = table.encoded.seq_len, table.encoded.n_target_tokens
    cut = table.max_prefix
    start = 0
    while start < table.n_variants:
        prefix = min(table.first_change[start], cut)
        end = start + 1
        while end < table.n_variants and _fits(budgets, end + 1 - start, length, prefix, n_t):
            end += 1
        yield anchored_chunk(t, start, end, prefix, length, n_t)
        start = end


def anchored_chunk(t: int, start: int, end: int, prefix: int, length: int, n_t: int) -> Chunk:
    return Chunk([(t, start, end)], prefix if prefix > 0 else 0, length, n_t, anchored=prefix > 0)


def split_anchored(tables: Sequence[RowTable], chunk: Chunk) -> list[Chunk]:
    """An anchored chunk's rows as two anchored chunks (out of memory)."""
    ((t, start, end),) = chunk.segments
    table = tables[t]
    middle = (start + end) // 2
    return [
        anchored_chunk(
            t, a, b, min(table.first_change[a], table.max_prefix), chunk.longest, chunk.longest_target
        )
        for a, b in ((start, middle), (middle, end))
    ]


def _fits(budgets: Budgets, rows: int, length: int, prefix: int, n_t: int) -> bool:
    return (
        rows * (length - prefix) <= budgets.tokens
        and rows * length <= KV_FACTOR * budgets.tokens
        and rows * (n_t + 1) * budgets.vocab <= budgets.logits
    )
