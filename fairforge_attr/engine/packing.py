"""Which variants share a forward pass, and the tensors that forward gets.

Pure functions over masks and token ids; nothing here runs the model.

Rows (one per unique mask of a request) are ordered longest request first and, within a
request, in the lexicographic order of their masks (``torch.unique`` sorts them), so rows next
to each other agree on their leading units: a chunk of consecutive rows shares the tokens up
to its first disagreement, and that shared prefix can be computed once for the whole chunk
(see ``prefix_cache.py``). A chunk is cut by three budgets:

- compute: the tokens the model really runs, ``prefix + rows x (longest - prefix)``;
- memory: ``rows x longest`` (keys and values of every row, the prefix included, are held for
  the attention), at most ``KV_FACTOR`` token budgets;
- logits: ``rows x (longest target + 1) x vocab`` float32 values.

Layout of a chunk (``P`` = shared prefix, ``S`` = longest row minus ``P``): the prefix runs
once as ``[1, P]``; each row's remaining tokens are left-padded to ``[rows, S]``, so every
target ends at the last position; explicit position ids keep every token at its place.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..prompt import EncodedInput
from .baseline import Baseline

KV_FACTOR = 2  # rows x longest row may reach this many token budgets (keys/values, attention)
MIN_PREFIX_SHARE = 0.1  # a shared prefix is used when it saves this share of a chunk's tokens


@dataclass
class RowTable:
    """One request's unique masks and what the chunker needs to know about them."""

    keep: torch.Tensor  # [n_variants, n_units] bool, lexicographically sorted
    encoded: EncodedInput
    baseline: Baseline
    first_change: list[int]  # per variant: first token that differs from the unperturbed input
    lcp_prev: list[int]  # per variant: tokens it shares with the previous variant

    @property
    def n_variants(self) -> int:
        return int(self.keep.shape[0])

    @property
    def max_prefix(self) -> int:
        """The prefix must end before the first position whose logits are needed."""
        return self.encoded.seq_len - self.encoded.n_target_tokens - 1


def row_table(encoded: EncodedInput, keep: torch.Tensor, baseline: Baseline) -> RowTable:
    """Prefix bookkeeping for one request, vectorised over its variants."""
    seq_len, n_units = encoded.seq_len, encoded.n_units
    owner = encoded.unit_of_token
    owned = owner >= 0
    # One extra always-kept unit starting at seq_len: a row that removes nothing changes
    # nothing before the end, and no reduction runs over an empty dimension.
    first_token = torch.full((n_units + 1,), seq_len, dtype=torch.long)
    first_token = first_token.scatter_reduce(0, owner[owned], torch.nonzero(owned).squeeze(1), reduce="amin")
    kept = torch.cat([keep, torch.ones(keep.shape[0], 1, dtype=torch.bool)], 1)
    never = torch.tensor(seq_len)
    first_change = torch.where(~kept, first_token, never).amin(1)
    lcp_prev = torch.where(kept[1:] != kept[:-1], first_token, never).amin(1)
    lcp_prev = torch.cat([never.unsqueeze(0), lcp_prev])
    return RowTable(keep, encoded, baseline, first_change.tolist(), lcp_prev.tolist())


def common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    """Number of leading tokens two id sequences share."""
    n = min(a.shape[0], b.shape[0])
    differ = torch.nonzero(a[:n] != b[:n])
    return int(differ[0, 0]) if differ.numel() else n


@dataclass
class Chunk:
    """Rows scored by one forward: ``segments`` are ``(table, first variant, end variant)``
    ranges in row order; ``prefix`` leading tokens are shared by all rows (0: no sharing).
    An ``anchored`` chunk (one table) takes its prefix from that table's anchor, computed once
    for all its chunks (``anchor.py``); any other runs its prefix itself."""

    segments: list[tuple[int, int, int]]
    prefix: int
    longest: int
    longest_target: int
    anchored: bool = False

    @property
    def n_rows(self) -> int:
        return sum(end - start for _, start, end in self.segments)

    def tokens(self) -> int:
        """Tokens the model runs for this chunk (padding included)."""
        own_prefix = 0 if self.anchored else self.prefix
        return own_prefix + self.n_rows * (self.longest - self.prefix)


@dataclass
class Budgets:
    tokens: int
    logits: int  # float32 values
    vocab: int
    use_prefix: bool


def _worth_sharing(prefix: int, rows: int, longest: int) -> bool:
    return prefix > 0 and rows > 1 and (rows - 1) * prefix >= MIN_PREFIX_SHARE * rows * longest


def plan_chunks(tables: Sequence[RowTable], order: Sequence[int], budgets: Budgets) -> Iterator[Chunk]:
    """Greedy chunking of the rows of ``tables`` taken in ``order`` (longest first).

    A chunk grows while its compute cost, its memory and its logits fit; the shared prefix of
    a chunk is the smallest common prefix of consecutive rows (rows are sorted, so that is the
    prefix of all of them)."""
    rows: list[tuple[int, int]] = []
    longest = longest_t = prefix = 0
    for t in order:
        table = tables[t]
        length, n_t = table.encoded.seq_len, table.encoded.n_target_tokens
        for v in range(table.n_variants):
            new_prefix = table.max_prefix
            if rows:
                new_prefix = min(prefix, new_prefix, _link(tables, rows[-1], (t, v)))
            new_longest, new_t = max(longest, length), max(longest_t, n_t)
            if rows and not _fits(budgets, new_prefix, len(rows) + 1, new_longest, new_t):
                yield _chunk(rows, prefix, longest, longest_t, budgets.use_prefix)
                rows, new_prefix, new_longest, new_t = [], table.max_prefix, length, n_t
            rows.append((t, v))
            longest, longest_t, prefix = new_longest, new_t, new_prefix
    if rows:
        yield _chunk(rows, prefix, longest, longest_t, budgets.use_prefix)


def split_chunk(tables: Sequence[RowTable], chunk: Chunk, use_prefix: bool) -> list[Chunk]:
    """The chunk's rows as two chunks, each with its own (possibly longer) shared prefix."""
    rows = [(t, v) for t, start, end in chunk.segments for v in range(start, end)]
    halves = []
    for part in (rows[: len(rows) // 2], rows[len(rows) // 2 :]):
        prefix = min(tables[t].max_prefix for t, _ in part)
        prefix = min([prefix] + [_link(tables, a, b) for a, b in itertools.pairwise(part)])
        longest = max(tables[t].encoded.seq_len for t, _ in part)
        longest_t = max(tables[t].encoded.n_target_tokens for t, _ in part)
        halves.append(_chunk(part, prefix, longest, longest_t, use_prefix))
    return halves


def _chunk(rows: list[tuple[int, int]], prefix: int, longest: int, longest_t: int, use_prefix: bool) -> Chunk:
    """A chunk of ``rows`` (consecutive variants of a table become one segment)."""
    segments: list[tuple[int, int, int]] = []
    for t, v in rows:
        if segments and segments[-1][0] == t and segments[-1][2] == v:
            segments[-1] = (t, segments[-1][1], v + 1)
        else:
            segments.append((t, v, v + 1))
    share = use_prefix and _worth_sharing(prefix, len(rows), longest)
    return Chunk(segments, prefix if share else 0, longest, longest_t)


def _link(tables: Sequence[RowTable], a: tuple[int, int], b: tuple[int, int]) -> int:
    """Leading tokens shared by row ``a`` and the next row ``b``."""
    if a[0] == b[0]:
        return tables[b[0]].lcp_prev[b[1]]
    ta, tb = tables[a[0]], tables[b[0]]
    return min(
        common_prefix(ta.encoded.input_ids, tb.encoded.input_ids),
        ta.first_change[a[1]],
        tb.first_change[b[1]],
    )


def _fits(budgets: Budgets, prefix: int, rows: int, longest: int, longest_t: int) -> bool:
    cost = rows * longest
    if budgets.use_prefix and _worth_sharing(prefix, rows, longest):
        cost = prefix + rows * (longest - prefix)
    return (
        cost <= budgets.tokens
        and rows * longest <= KV_FACTOR * budgets.tokens
        and rows * (longest_t + 1) * budgets.vocab <= budgets.logits
    )


def variant_ids(table: RowTable, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [g, seq_len] and hidden flags [g, seq_len] of variants ``start:end``."""
    enc = table.encoded
    keep = table.keep[start:end]
    owner = enc.unit_of_token
    owned = owner >= 0
    removed = torch.zeros(keep.shape[0], enc.seq_len, dtype=torch.bool)
    removed[:, owned] = ~keep[:, owner[owned]]
    base = enc.input_ids.unsqueeze(0).expand(keep.shape[0], -1)
    if table.baseline.hides:
        return base, removed
    ids = torch.where(removed, torch.tensor(table.baseline.token_id), base)
    return ids, torch.zeros_like(removed)


@dataclass
class ChunkTensors:
    """What one chunk's forward gets (on the CPU; the engine moves them)."""

    prefix_ids: torch.Tensor | None  # [1, P]
    prefix_mask: torch.Tensor | None  # [1, P] long, 0 = hidden; None when nothing is hidden
    ids: torch.Tensor  # [n, S]
    attention: torch.Tensor | None  # [n, P + S] long, None when nothing is padded or hidden
    positions: torch.Tensor | None  # [n, S], None when the default positions are right
    targets: torch.Tensor  # [n, T] target ids, right-aligned
    n_target: torch.Tensor  # [n] target length of each row


def build_chunk(tables: Sequence[RowTable], chunk: Chunk) -> ChunkTensors:
    """The padded tensors of a chunk, one vectorised block per segment."""
    n, p = chunk.n_rows, chunk.prefix
    width, max_t = chunk.longest - p, chunk.longest_target
    ids = torch.zeros(n, width, dtype=torch.long)
    real = torch.zeros(n, width, dtype=torch.bool)
    hidden = torch.zeros(n, width, dtype=torch.bool)
    targets = torch.zeros(n, max_t, dtype=torch.long)
    n_target = torch.empty(n, dtype=torch.long)
    prefix_ids = prefix_hidden = None
    row = 0
    for t, start, end in chunk.segments:
        table = tables[t]
        enc = table.encoded
        seg_ids, seg_hidden = variant_ids(table, start, end)
        if prefix_ids is None and p:
            prefix_ids, prefix_hidden = seg_ids[:1, :p], seg_hidden[:1, :p]
        g, pad = end - start, chunk.longest - enc.seq_len
        ids[row : row + g, pad:] = seg_ids[:, p:]
        hidden[row : row + g, pad:] = seg_hidden[:, p:]
        real[row : row + g, pad:] = True
        targets[row : row + g, max_t - enc.n_target_tokens :] = enc.target_ids
        n_target[row : row + g] = enc.n_target_tokens
        row += g
    prefix_mask = (~prefix_hidden).long() if p and bool(prefix_hidden.any()) else None
    plain = bool(real.all()) and not bool(hidden.any()) and prefix_mask is None
    attention = positions = None
    if not plain:
        attention = (real & ~hidden).long()
        if p:
            head = prefix_mask if prefix_mask is not None else torch.ones(1, p, dtype=torch.long)
            attention = torch.cat([head.expand(n, -1), attention], 1)
        positions = p + (real.long().cumsum(-1) - 1).clamp(min=0)
    return ChunkTensors(prefix_ids, prefix_mask, ids, attention, positions, targets, n_target)
