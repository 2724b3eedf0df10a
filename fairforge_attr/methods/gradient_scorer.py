"""Running a gradient method: its points go through the engine's gradient packer, the gradients
that come back are summed into each item's map, reduced to token scores and summed into units.

The formulas (points, weights, reductions) are in ``gradient.py``; this module holds the running
sums (:class:`Moments`) and the completeness check of integrated gradients. The sampled methods'
standard errors come from running sums per group of samples (``gradient_spread.py``), fed from
the same gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel

from ..engine import Baseline, Engine
from ..engine.gradients import GradientPacker, GradRow, ItemEmbeddings, Pass
from .base import RawScores
from .gradient import COMPLETENESS_TOLERANCE, GradientMethod, PointRequest, Points, sum_into_units
from .gradient import resolve_embedding_baseline as _resolve_embedding
from .gradient_spread import Spreads

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..plan import Plan
    from ..prompt import EncodedInput


@dataclass
class Moments:
    """The running weighted sums of one (item, column) map over its points: sum w m g, and for
    the noise tunnel's second-moment methods sum w (m g)^2. Summed as passes come back, so only
    the maps a pass touches are alive."""

    first: torch.Tensor | float = 0.0
    second: torch.Tensor | None = None
    points: int = 0

    def add(self, weights: torch.Tensor, part: torch.Tensor, second: bool) -> None:
        """Add points with weights [k, 1, 1] and weighted-in gradients [k, n_content, H] (float64)."""
        self.first = self.first + (weights * part).sum(0)
        if second:
            self.second = (0.0 if self.second is None else self.second) + (weights * part.square()).sum(0)
        self.points += part.shape[0]


def completeness_warning(delta: float, gap: float) -> list[str]:
    """Integrated gradients' scores should sum to f(x) - f(baseline); say so when they do not."""
    if abs(delta) > max(COMPLETENESS_TOLERANCE * abs(gap), 1e-4):
        return [
            f"integrated gradients has not converged: the scores sum to {delta + gap:.4g}, "
            f"but f(x) - f(baseline) = {gap:.4g} (convergence_delta {delta:.3g}); "
            "raise n_steps or pick another baseline"
        ]
    return []


def embedding_baseline(
    tokenizer: PreTrainedTokenizerBase, options: BaseModel, vocab_size: int
) -> tuple[Baseline, dict[str, str]]:
    """The path methods' starting embedding (the ``baseline`` option), recorded as
    ``baseline_embedding``."""
    baseline = _resolve_embedding(tokenizer, options.baseline, vocab_size)
    return baseline, {"baseline_embedding": baseline.description}


@dataclass(frozen=True)
class GradientScorer:
    """A gradient method's ``score``. The rows of every item (its points x its differentiated
    columns) share passes; an item's scores do not depend on the items beside it: the same rows,
    the same points (noise is drawn per item and sample)."""

    method: GradientMethod

    def __call__(self, engine: Engine, plan: Plan, items: Sequence[EncodedInput]) -> list[RawScores]:
        method = self.method
        baseline = plan.baseline
        token = baseline.token_id if method.baseline and baseline is not None else None
        run = _Run(method, PointRequest(plan.options, plan.seed, token), GradientPacker(engine, items))
        # Column n_target is f; per_target_token adds every target token's log-prob before it.
        columns = [
            list(range(e.n_target_tokens + 1)) if plan.per_target_token else [e.n_target_tokens]
            for e in items
        ]
        token_scores, at_x, std_errors = run.gradients(columns)
        # Rows of one point for several columns are copies of one sequence: count it once.
        sequences = [n // len(c) for n, c in zip(run.packer.n_sequences, columns)]
        ends: list[list[float]] = [[] for _ in items]  # f(x), and f(baseline) for completeness
        if not method.evaluates_at_input_only:
            ends, at_x = run.endpoints()
            for i, e in enumerate(items):
                sequences[i] += len(ends[i]) * (1 + e.contrastive)
        out = []
        for i, e in enumerate(items):
            per_column = torch.stack([token_scores[i][c] for c in columns[i]])
            units = sum_into_units(per_column, e.unit_of_token[e.unit_of_token >= 0], e.n_units)
            delta, warnings = None, []
            if method.delta:
                gap = ends[i][0] - ends[i][1]
                delta = float(per_column[-1].sum()) - gap  # the reduction is the sum: same total
                warnings = completeness_warning(delta, gap)
            out.append(
                RawScores(
                    scores=units[-1],
                    per_target_token=units[:-1] if plan.per_target_token else None,
                    target_log_prob=at_x[i][0],
                    contrast_log_prob=at_x[i][1] if e.contrastive else None,
                    n_forward=run.packer.n_forward[i],
                    n_sequences=sequences[i],
                    n_backward=run.packer.n_backward[i],
                    convergence_delta=delta,
                    warnings=warnings,
                    std_error=std_errors.get(i),
                )
            )
        return out


@dataclass
class _Run:
    """One call's state: the method, its point request and the packer over the call's items."""

    method: GradientMethod
    request: PointRequest
    packer: GradientPacker

    def gradients(
        self, columns: list[list[int]]
    ) -> tuple[list[dict[int, torch.Tensor]], list[Answers], dict[int, torch.Tensor]]:
        """Token scores of every (item, column), (log p(target), log p(contrast)) at x where
        the points give them for free, and for a sampled method each item's standard errors
        [n_units] of f's scores."""
        method, packer = self.method, self.packer
        n_points = method.n_points(self.request.options)
        rows = [GradRow(i, k, c) for i in packer.order for c in columns[i] for k in range(n_points)]
        sums: dict[tuple[int, int], Moments] = {}
        token_scores: list[dict[int, torch.Tensor]] = [{} for _ in packer.items]
        at_x: list[Answers] = [_NOT_YET] * len(packer.items)
        spreads = Spreads(method, n_points)

        def make_points(item: ItemEmbeddings, ks: torch.Tensor) -> tuple[torch.Tensor, Points]:
            points = method.points(self.request, item, ks)
            return points.at, points

        for done in packer.run(rows, make_points, backward=True):
            for start, stop, points in done.segments:
                i = done.rows[start].item
                if at_x[i] is _NOT_YET and method.evaluates_at_input_only:
                    at_x[i] = _answers(done, start)  # every row of the item is at x
                g = done.grads[start:stop, : points.at.shape[1]]
                mg = g if points.factor is None else g * points.factor
                for a, b in _runs([row.column for row in done.rows[start:stop]]):
                    column = done.rows[start + a].column
                    acc = sums.setdefault((i, column), Moments())
                    w = points.weights[a:b].double().view(-1, 1, 1)
                    acc.add(w, mg[a:b].double(), second=method.moment != "first")
                    if not method.deterministic and column == packer.items[i].n_target_tokens:
                        ks = torch.tensor([row.point for row in done.rows[start + a : start + b]])
                        spreads.add(i, packer.items[i], ks, points.weights[a:b], mg[a:b])
                    if acc.points == n_points:
                        token_map = method.finish(acc.first, acc.second)
                        token_scores[i][column] = method.reduce(token_map.unsqueeze(0))[0].cpu()
                        del sums[(i, column)]
        return token_scores, at_x, spreads.done

    def endpoints(self) -> tuple[list[list[float]], list[Answers]]:
        """f(x) of every item by a forward-only pass, and f(baseline) after it for methods that
        report completeness; and (log p(target), log p(contrast)) at x."""
        method, request, packer = self.method, self.request, self.packer
        n_ends = 2 if method.delta else 1
        rows = [GradRow(i, k, packer.items[i].n_target_tokens) for i in packer.order for k in range(n_ends)]

        def points(item: ItemEmbeddings, ks: torch.Tensor) -> tuple[torch.Tensor, None]:
            both = [item.inputs, request.baseline(item) if method.delta else item.inputs]
            return torch.stack([both[k] for k in ks.tolist()]), None

        ends: list[list[float]] = [[] for _ in packer.items]
        at_x: list[Answers] = [_NOT_YET] * len(packer.items)
        for done in packer.run(rows, points, backward=False):
            values = done.values
            for b, row in enumerate(done.rows):
                ends[row.item].append(float(values[b]))
                if row.point == 0:
                    at_x[row.item] = _answers(done, b)
        return ends, at_x


Answers = tuple[float, float]  # (log p(target), log p(contrast) or 0) at one point
_NOT_YET: Answers = (float("nan"), float("nan"))


def _answers(done: Pass, row: int) -> Answers:
    return float(done.target_values[row]), float(done.contrast_values[row])


def _runs(keys: list[Any]) -> list[tuple[int, int]]:
    """[start, stop) of each run of equal consecutive keys."""
    bounds = [0] + [k for k in range(1, len(keys)) if keys[k] != keys[k - 1]] + [len(keys)]
    return list(pairwise(bounds))
