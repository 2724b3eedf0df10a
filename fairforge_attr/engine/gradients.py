"""The model-running half of the gradient methods: gradients of f at many points of many items,
packed into shared forward+backward passes.

Only the embeddings of attributable tokens (the tokens of some unit) are inputs; everything
else (template markup, pure-whitespace tokens, the target) is held at its real embedding, so
it gets no gradient and no score. A method asks for rows ``GradRow(item, point, column)``: the
gradient of one output column (the log-probability of one target token, or f, their sum) with
respect to an item's content-token embeddings [n_content, H] at one point that the method
makes (x itself, a step on a path, a noisy copy). Rows of several items share a pass:

- left padding to the pass's longest item and explicit position ids (cumsum of the padding
  mask - 1), so every row's target ends at the last position and no row's positions shift,
  as in the scoring engine; a model that takes no ``position_ids`` only shares a pass between
  items of one length;
- content embeddings enter as one [rows, max_content, H] float32 tensor scattered into the
  fixed sequences; the slots past a shorter item's content feed nothing and get no gradient;
- targets are right-aligned; a shorter target's log-probs are zero on its left, so f of every
  row is the sum of its row;
- rows never interact (the weights are frozen, no op mixes rows), so one backward of the sum
  of every row's own column gives each row the gradient of its own column.

Precision: the points (and so the gradients and every sum over them) are float32 even when
the model runs in float16; the forward casts them to the model's dtype. The log-softmax is
taken in float32 (``target_log_probs``), so the backward starts from d log p / d logits =
onehot - softmax, bounded by 1 in magnitude: float16 cannot overflow there, which is why no
loss scaling is applied. An overflow inside the model gives inf/NaN in the rows it hit, which
the scorer (``scorer.score_items``) detects and recomputes in float32.

Counts are honest: for each item, the forward passes and the backward passes its rows took
part in, and its rows (sequences). A pass that ran out of memory is not counted: it is redone
with half as many rows, and the later passes of the group keep that size (the engine's token
budget halves too, so later groups start from a size that fits).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import EngineOutOfMemoryError
from ..prompt import EncodedInput
from .answers import answers_share_passes
from .scoring import Engine, is_out_of_memory


@contextmanager
def _frozen_parameters(model: torch.nn.Module) -> Iterator[None]:
    """Weights need no gradient: without it autograd keeps far fewer activations alive."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            # a weight that accelerate's offload hooks re-created inside an inference_mode
            # pass is an inference tensor: it can take no gradient, and needs none
            if not p.is_inference():
                p.requires_grad_(flag)


class ItemEmbeddings:
    """One item: its fixed embedding sequence and x, the embeddings of its content tokens.
    A contrastive item also holds ``contrast``: the same prompt followed by the contrast answer,
    whose sequences take the same points as the target's (the prompts are identical)."""

    def __init__(self, engine: Engine, encoded: EncodedInput) -> None:
        owner = encoded.unit_of_token
        content = owner >= 0
        self.seq_len = encoded.seq_len
        self.n_target = encoded.n_target_tokens
        self.token_units = owner[content]  # [n_content] unit of each input token
        self.positions = torch.nonzero(content).squeeze(1).to(engine.device)
        self.target_ids = encoded.target_ids.to(engine.device)
        self._embed = engine.model.get_input_embeddings()
        with torch.no_grad():
            self.fixed = self._embed(encoded.input_ids.to(engine.device)).detach()  # model dtype
        self.inputs = self.fixed[self.positions].float()  # [n_content, H]: x of every method
        self.contrast = None if encoded.contrast is None else ItemEmbeddings(engine, encoded.contrast)

    @property
    def n_content(self) -> int:
        return int(self.positions.shape[0])

    def token_embeddings(self, token_id: int) -> torch.Tensor:
        """[n_content, H] float32: every content position holding ``token_id``'s embedding."""
        with torch.no_grad():
            row = self._embed(torch.tensor([token_id], device=self.positions.device)).float()
        return row.expand(self.n_content, -1)


@dataclass(frozen=True)
class GradRow:
    item: int  # index into the packer's items
    point: int  # which of the item's points (a path step, a noisy sample): the method's numbering
    column: int  # the target token whose log-prob is differentiated; n_target means f


@dataclass
class Pass:
    """One pass that succeeded."""

    rows: list[GradRow]
    segments: list[tuple[int, int, Any]]  # (start, stop, what make_points returned besides the points)
    target_values: torch.Tensor  # [rows] float32 on the CPU: log p(target) of each row
    contrast_values: torch.Tensor  # [rows] log p(contrast) of each row (0 where there is none)
    grads: torch.Tensor | None  # [rows, max_content, H] float32; None in forward-only passes
    calls: dict[int, int] = field(default_factory=dict)  # item -> model calls its sequences took part in

    @property
    def values(self) -> torch.Tensor:
        """[rows] f of each row (the difference for a contrastive item): what was differentiated."""
        return self.target_values - self.contrast_values


# make_points(item, point indices [k]) -> (points [k, n_content, H] float32, anything else the
# method wants back with the gradients of those rows)
MakePoints = Callable[[ItemEmbeddings, torch.Tensor], tuple[torch.Tensor, Any]]


class GradientPacker:
    """Runs the rows of several items through shared passes; counts per item."""

    def __init__(self, engine: Engine, items: Sequence[EncodedInput]) -> None:
        self.engine = engine
        self.model = engine.model
        self.items = list(items)
        # Longest first: rows of similar length share a pass, so little padding is wasted.
        self.order = sorted(range(len(self.items)), key=lambda i: -self.items[i].seq_len)
        self.n_forward = [0] * len(self.items)
        self.n_backward = [0] * len(self.items)
        self.n_sequences = [0] * len(self.items)
        self._states: dict[int, ItemEmbeddings] = {}
        self._row_cap: int | None = None  # set once a pass has run out of memory

    def run(self, rows: Sequence[GradRow], make_points: MakePoints, *, backward: bool) -> Iterator[Pass]:
        """Every row once, in order, in passes as large as the budgets allow. Rows of one item
        must be consecutive (an item's embeddings are dropped once its rows are done)."""
        start = 0
        while start < len(rows):
            stop = self._pass_end(rows, start)
            try:
                with _frozen_parameters(self.model):
                    done = self._pass(rows[start:stop], make_points, backward)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._shrink(rows[start:stop], backward, exc)
                continue
            for item, calls in done.calls.items():
                self.n_forward[item] += calls
                self.n_backward[item] += backward
            for row in done.rows:
                self.n_sequences[row.item] += 1 + self.items[row.item].contrastive
            following = rows[stop].item if stop < len(rows) else None
            self._states = {i: s for i, s in self._states.items() if i == following}
            yield done
            start = stop

    # ----------------------------------------------------------------- internals
    def _pass_end(self, rows: Sequence[GradRow], start: int) -> int:
        """End of the pass that starts at ``start``: sequences x padded length within the token
        budget, sequences x kept positions x vocabulary within the logit budget (a row of a
        contrastive item is two sequences, its target's and its contrast's)."""
        engine = self.engine
        first_len = self.items[rows[start].item].seq_len
        max_len = max_t = n = 0
        for i in range(start, len(rows)):
            item = self.items[rows[i].item]
            answers = item.answers()
            new_len = max(max_len, *(a.seq_len for a in answers))
            new_t = max(max_t, *(a.n_target_tokens for a in answers))
            n += len(answers)
            fits = (
                n * new_len <= engine.token_budget
                and n * (new_t + 1) * engine.vocab_size <= engine.logit_budget
                and (self._row_cap is None or i - start + 1 <= self._row_cap)
                and (engine.packs_lengths or item.seq_len == first_len)
            )
            if i > start and not fits:
                return i
            max_len, max_t = new_len, new_t
        return len(rows)

    def _shrink(self, rows: Sequence[GradRow], backward: bool, exc: BaseException) -> None:
        longest = max(a.seq_len for row in rows for a in self.items[row.item].answers())
        if len(rows) == 1:
            what = "the gradient of one sequence" if backward else "one sequence"
            raise EngineOutOfMemoryError(
                f"{what} of {longest} tokens does not fit in memory on {self.engine.device}; "
                "use a shorter input, a perturbation method or a larger device"
            ) from exc
        self._row_cap = len(rows) // 2
        self.engine.recover_from_oom(longest)

    def _state(self, item: int) -> ItemEmbeddings:
        if item not in self._states:
            self._states[item] = ItemEmbeddings(self.engine, self.items[item])
        return self._states[item]

    def _pass(self, rows: list[GradRow], make_points: MakePoints, backward: bool) -> Pass:
        device = self.engine.device
        segments = []  # (start, stop, item): one item's consecutive rows
        for b, row in enumerate(rows):
            if b == 0 or row.item != rows[b - 1].item:
                segments.append([b, b + 1, row.item])
            else:
                segments[-1][1] = b + 1
        states = {item: self._state(item) for _, _, item in segments}
        n = len(rows)
        max_c = max(s.n_content for s in states.values())
        hidden = next(iter(states.values())).fixed.shape[-1]
        points = torch.zeros(n, max_c, hidden, dtype=torch.float32, device=device)
        columns = torch.zeros(n, dtype=torch.long)
        layout = _Layout.of([(start, stop, item, states[item]) for start, stop, item in segments], n, max_c)
        extras = []
        for start, stop, item in segments:
            s = states[item]
            at, extra = make_points(s, torch.tensor([r.point for r in rows[start:stop]]))
            extras.append(extra)
            points[start:stop, : s.n_content] = at
            for b in range(start, stop):  # f is the last column; target token j sits right-aligned
                col = rows[b].column
                columns[b] = layout.max_t if col == s.n_target else layout.max_t - s.n_target + col

        with torch.enable_grad() if backward else torch.no_grad():
            points.requires_grad_(backward)
            embeds = layout.embeds(points)
            per_seq, calls = self._log_probs(embeds, layout)
            per_token = per_seq[:n]  # the rows' own (target) sequences come first
            # f of each row: log p(target), minus log p(contrast) for a contrastive item, whose
            # contrast sequence took the same point, so the gradient is of the difference
            contrast = torch.zeros(n, dtype=per_seq.dtype, device=device)
            if layout.n_seq > n:
                contrast = contrast.index_put((layout.point_of[n:],), per_seq[n:].sum(-1))
            target = per_token.sum(-1)
            out = torch.cat([per_token, (target - contrast).unsqueeze(1)], dim=-1)
            grads = None
            if backward:
                picked = out.gather(1, columns.to(device).unsqueeze(1))
                (grads,) = torch.autograd.grad(picked.sum(), points)
        return Pass(
            rows=rows,
            segments=[(start, stop, extra) for (start, stop, _), extra in zip(segments, extras)],
            target_values=target.detach().cpu(),
            contrast_values=contrast.detach().cpu(),
            grads=grads,
            calls={item: calls[item] for _, _, item in segments},
        )

    def _log_probs(self, embeds: torch.Tensor, layout: _Layout) -> tuple[torch.Tensor, dict[int, int]]:
        """[sequences, max_t] target log-probs of the pass's sequences, and how many model
        calls each item's sequences took (``_Layout.calls``: one, unless splitting saves
        padding or the model cannot take left padding)."""
        engine = self.engine
        groups = layout.calls(engine.packs_lengths)
        if len(groups) == 1:
            calls = dict.fromkeys(layout.items, 1)
            return engine.embeddings_log_probs(embeds, layout.real, layout.targets, layout.n_target), calls
        out = torch.zeros(layout.n_seq, layout.max_t, dtype=torch.float32, device=embeds.device)
        calls: dict[int, int] = dict.fromkeys(layout.items, 0)
        for idx in groups:
            for item in {layout.item_of[i] for i in idx.tolist()}:
                calls[item] += 1
            width, n_t = int(layout.lengths[idx].max()), int(layout.n_target[idx].max())
            at = idx.to(embeds.device)  # each sequence ends at the last column: keep the last ones
            lp = engine.embeddings_log_probs(
                embeds[at, -width:], layout.real[at, -width:], layout.targets[at, -n_t:], layout.n_target[at]
            )
            out = out.index_put((at,), torch.nn.functional.pad(lp, (layout.max_t - n_t, 0)))
        return out, calls


@dataclass
class _Layout:
    """Where every sequence of a pass sits: the rows' own sequences first, then one contrast
    sequence per row of a contrastive item (``point_of``: the row whose point it takes)."""

    fixed: torch.Tensor  # [sequences, max_len, H] model dtype: the fixed embeddings, left-padded
    where: torch.Tensor  # [sequences, max_c] sequence position of each content slot
    slot: torch.Tensor  # [sequences, max_c] bool: the slot holds a content token
    real: torch.Tensor  # [sequences, max_len] bool: not padding
    targets: torch.Tensor  # [sequences, max_t] right-aligned target ids
    n_target: torch.Tensor  # [sequences]
    point_of: torch.Tensor  # [sequences] long
    lengths: torch.Tensor  # [sequences] long (CPU)
    item_of: list[int]  # per sequence, the packer's index of its item
    n_rows: int  # the first n_rows sequences are the rows' own (their targets')

    @property
    def n_seq(self) -> int:
        return int(self.point_of.shape[0])

    @property
    def max_t(self) -> int:
        return int(self.targets.shape[1])

    @property
    def items(self) -> list[int]:
        return list(dict.fromkeys(self.item_of))

    @classmethod
    def of(cls, segments: list[tuple[int, int, int, ItemEmbeddings]], n: int, max_c: int) -> _Layout:
        """The layout of ``n`` rows in ``segments`` (start, stop, item index, item)."""
        # (first sequence, first row, rows, the sequence's embeddings, item index)
        blocks = [(start, start, stop - start, s, item) for start, stop, item, s in segments]
        first = n
        for start, stop, item, s in segments:
            if s.contrast is not None:
                blocks.append((first, start, stop - start, s.contrast, item))
                first += stop - start
        seqs = [b[3] for b in blocks]
        n_seq, max_len, max_t = first, max(s.seq_len for s in seqs), max(s.n_target for s in seqs)
        fixed0 = seqs[0].fixed
        device = fixed0.device
        lay = cls(
            fixed=torch.zeros(n_seq, max_len, fixed0.shape[-1], dtype=fixed0.dtype, device=device),
            where=torch.zeros(n_seq, max_c, dtype=torch.long, device=device),
            slot=torch.zeros(n_seq, max_c, dtype=torch.bool, device=device),
            real=torch.zeros(n_seq, max_len, dtype=torch.bool, device=device),
            targets=torch.zeros(n_seq, max_t, dtype=torch.long, device=device),
            n_target=torch.zeros(n_seq, dtype=torch.long, device=device),
            point_of=torch.zeros(n_seq, dtype=torch.long, device=device),
            lengths=torch.zeros(n_seq, dtype=torch.long),
            item_of=[0] * n_seq,
            n_rows=n,
        )
        for a, row0, k, s, owner in blocks:
            b, pad = a + k, max_len - s.seq_len
            lay.fixed[a:b, pad:] = s.fixed
            lay.where[a:b, : s.n_content] = s.positions + pad
            lay.slot[a:b, : s.n_content] = True
            lay.real[a:b, pad:] = True
            lay.targets[a:b, max_t - s.n_target :] = s.target_ids
            lay.n_target[a:b] = s.n_target
            lay.point_of[a:b] = torch.arange(row0, row0 + k, device=device)
            lay.lengths[a:b] = s.seq_len
            lay.item_of[a:b] = [owner] * k
        return lay

    def calls(self, packs_lengths: bool) -> list[torch.Tensor]:
        """The sequences of each model call of the pass (CPU index tensors). One call, except:

        - a model that takes no position ids cannot be left-padded: one call per length;
        - the contrast sequences of contrastive items get a call of their own unless padding
          them with the rows is cheap (``answers_share_passes`` of the tokens each way: on a
          CPU, padding costs its tokens' time).
        """
        everything = torch.arange(self.n_seq)
        if not packs_lengths:
            return [torch.nonzero(self.lengths == n).squeeze(1) for n in sorted(set(self.lengths.tolist()))]
        n = self.n_rows
        if self.n_seq == n:
            return [everything]
        together = self.n_seq * int(self.lengths.max())
        apart = n * int(self.lengths[:n].max()) + (self.n_seq - n) * int(self.lengths[n:].max())
        return [everything] if answers_share_passes(together, apart) else [everything[:n], everything[n:]]

    def embeds(self, points: torch.Tensor) -> torch.Tensor:
        """The input embeddings: the fixed ones with every sequence's content slots taken from
        its row's point (differentiable in ``points``)."""
        n_seq, max_c = self.slot.shape
        seq = torch.arange(n_seq, device=points.device).unsqueeze(1).expand(n_seq, max_c)
        at = points if n_seq == points.shape[0] else points[self.point_of]
        return self.fixed.index_put(
            (seq[self.slot], self.where[self.slot]), at[self.slot].to(self.fixed.dtype)
        )
