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
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import EngineOutOfMemoryError
from ..prompt import EncodedInput
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
    """One item: its fixed embedding sequence and x, the embeddings of its content tokens."""

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
    values: torch.Tensor  # [rows] float32 on the CPU: f of each row
    grads: torch.Tensor | None  # [rows, max_content, H] float32; None in forward-only passes


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
            for item in {row.item for row in done.rows}:
                self.n_forward[item] += 1
                self.n_backward[item] += backward
            for row in done.rows:
                self.n_sequences[row.item] += 1
            following = rows[stop].item if stop < len(rows) else None
            self._states = {i: s for i, s in self._states.items() if i == following}
            yield done
            start = stop

    # ----------------------------------------------------------------- internals
    def _pass_end(self, rows: Sequence[GradRow], start: int) -> int:
        """End of the pass that starts at ``start``: rows x padded length within the token
        budget, rows x kept positions x vocabulary within the logit budget."""
        engine = self.engine
        first_len = self.items[rows[start].item].seq_len
        max_len = max_t = 0
        for i in range(start, len(rows)):
            item = self.items[rows[i].item]
            new_len, new_t = max(max_len, item.seq_len), max(max_t, item.n_target_tokens)
            n = i - start + 1
            fits = (
                n * new_len <= engine.token_budget
                and n * (new_t + 1) * engine.vocab_size <= engine.logit_budget
                and (self._row_cap is None or n <= self._row_cap)
                and (engine.packs_lengths or item.seq_len == first_len)
            )
            if i > start and not fits:
                return i
            max_len, max_t = new_len, new_t
        return len(rows)

    def _shrink(self, rows: Sequence[GradRow], backward: bool, exc: BaseException) -> None:
        longest = max(self.items[row.item].seq_len for row in rows)
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
        max_len = max(s.seq_len for s in states.values())
        max_t = max(s.n_target for s in states.values())
        max_c = max(s.n_content for s in states.values())
        fixed = next(iter(states.values())).fixed
        hidden = fixed.shape[-1]

        points = torch.zeros(n, max_c, hidden, dtype=torch.float32, device=device)
        embeds = torch.zeros(n, max_len, hidden, dtype=fixed.dtype, device=device)
        where = torch.zeros(n, max_c, dtype=torch.long, device=device)  # sequence position of a slot
        slot = torch.zeros(n, max_c, dtype=torch.bool, device=device)  # slot holds a content token
        real = torch.zeros(n, max_len, dtype=torch.bool, device=device)  # not padding
        targets = torch.zeros(n, max_t, dtype=torch.long, device=device)
        n_target = torch.zeros(n, dtype=torch.long, device=device)
        columns = torch.zeros(n, dtype=torch.long)
        extras = []
        for start, stop, item in segments:
            s = states[item]
            pad, c = max_len - s.seq_len, s.n_content
            at, extra = make_points(s, torch.tensor([r.point for r in rows[start:stop]]))
            extras.append(extra)
            points[start:stop, :c] = at
            embeds[start:stop, pad:] = s.fixed
            where[start:stop, :c] = s.positions + pad
            slot[start:stop, :c] = True
            real[start:stop, pad:] = True
            targets[start:stop, max_t - s.n_target :] = s.target_ids
            n_target[start:stop] = s.n_target
            for b in range(start, stop):  # f is the last column; target token j sits right-aligned
                col = rows[b].column
                columns[b] = max_t if col == s.n_target else max_t - s.n_target + col

        with torch.enable_grad() if backward else torch.no_grad():
            points.requires_grad_(backward)
            row_of = torch.arange(n, device=device).unsqueeze(1).expand(n, max_c)
            embeds = embeds.index_put((row_of[slot], where[slot]), points[slot].to(embeds.dtype))
            per_token = self.engine.embeddings_log_probs(embeds, real, targets, n_target)
            out = torch.cat([per_token, per_token.sum(-1, keepdim=True)], dim=-1)
            grads = None
            if backward:
                picked = out.gather(1, columns.to(device).unsqueeze(1))
                (grads,) = torch.autograd.grad(picked.sum(), points)
        return Pass(
            rows=rows,
            segments=[(start, stop, extra) for (start, stop, _), extra in zip(segments, extras)],
            values=out[:, -1].detach().cpu(),
            grads=grads,
        )
