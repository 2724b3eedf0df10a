"""Encoded items + a method -> scores -> result objects. Shared by explain and explain_batch."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import torch
from pydantic import BaseModel

from .engine import Baseline, Engine, ScoreRequest
from .engine.gradients import GradientPacker, GradRow, ItemEmbeddings
from .errors import InvalidRequestError, NumericalError
from .methods.gradient import COMPLETENESS_TOLERANCE, PointRequest, sum_into_units
from .methods.registry import Family, MethodSpec
from .prompt import EncodedInput
from .results import Attribution, AttributionResult, PerTargetToken, ResultMetadata
from .types import Granularity


@dataclass
class RawScores:
    """What a method computed for one item, before it becomes a result."""

    scores: torch.Tensor  # [n_units]
    per_target_token: torch.Tensor | None  # [n_target, n_units]
    target_log_prob: float
    n_forward: int
    n_sequences: int
    n_backward: int = 0
    convergence_delta: float | None = None
    warnings: list[str] = field(default_factory=list)

    def finite(self) -> bool:
        ok = bool(torch.isfinite(self.scores).all()) and bool(
            torch.isfinite(torch.tensor(self.target_log_prob))
        )
        if self.per_target_token is not None:
            ok = ok and bool(torch.isfinite(self.per_target_token).all())
        return ok


def perturbation_scores(
    engine: Engine,
    spec: MethodSpec,
    options: BaseModel,
    items: Sequence[EncodedInput],
    seed: int,
    per_target_token: bool,
    baseline: Baseline,
) -> list[RawScores]:
    """Every item's variants go to the engine together, so short items share forward passes."""
    impl = spec.perturbation
    masks = [impl.sample(e.n_units, options, seed) for e in items]
    # Row 0 of what the engine scores is always the full prompt: it gives f(x) for free
    # (the engine scores identical masks once, so methods that include it pay nothing).
    requests = [
        ScoreRequest(e, torch.cat([torch.ones(1, e.n_units, dtype=torch.bool), m]), baseline)
        for e, m in zip(items, masks)
    ]
    out = []
    for m, res in zip(masks, engine.score(requests)):
        per_token = res.log_probs[1:].double()
        scores = impl.attribute(m, per_token.sum(-1, keepdim=True), options)[0]
        ptt = impl.attribute(m, per_token, options) if per_target_token else None
        out.append(
            RawScores(
                scores=scores,
                per_target_token=ptt,
                target_log_prob=float(res.log_probs[0].double().sum()),
                n_forward=res.n_forward,
                n_sequences=res.n_sequences,
            )
        )
    return out


def gradient_scores(
    engine: Engine,
    spec: MethodSpec,
    options: BaseModel,
    items: Sequence[EncodedInput],
    seed: int,
    per_target_token: bool,
    baseline: Baseline | None,
) -> list[RawScores]:
    """The rows of every item (its points x its differentiated columns) share passes. Each
    (item, column) map is summed as its gradients come back and reduced to token scores once
    complete, so only the maps a pass touches are alive. An item's scores do not depend on the
    items beside it: the same rows, the same points (noise is drawn per item and sample)."""
    method = spec.gradient
    token = baseline.token_id if method.baseline and baseline is not None else None
    request = PointRequest(options, seed, token)
    packer = GradientPacker(engine, items)
    n_points = method.n_points(options)
    # Column n_target is f; per_target_token adds every target token's log-prob before it.
    columns = [list(range(e.n_target_tokens + 1)) if per_target_token else [e.n_target_tokens] for e in items]
    rows = [GradRow(i, k, c) for i in packer.order for c in columns[i] for k in range(n_points)]
    sums: dict[tuple[int, int], list] = {}  # (item, column) -> [sum w m g, sum w (m g)^2, points]
    token_scores: list[dict[int, torch.Tensor]] = [{} for _ in items]
    f_x: list[float | None] = [None] * len(items)

    def make_points(item: ItemEmbeddings, ks: torch.Tensor):
        points = method.points(request, item, ks)
        return points.at, points

    for done in packer.run(rows, make_points, backward=True):
        for start, stop, points in done.segments:
            i = done.rows[start].item
            if f_x[i] is None and method.evaluates_at_input_only:
                f_x[i] = float(done.values[start])  # every row of the item is at x
            g = done.grads[start:stop, : points.at.shape[1]]
            mg = g if points.factor is None else g * points.factor
            for a, b in _runs([row.column for row in done.rows[start:stop]]):
                column = done.rows[start + a].column
                w = points.weights[a:b].double().view(-1, 1, 1)
                part = mg[a:b].double()
                acc = sums.setdefault((i, column), [0.0, None, 0])
                acc[0] = acc[0] + (w * part).sum(0)
                if method.moment != "first":
                    acc[1] = (0.0 if acc[1] is None else acc[1]) + (w * part.square()).sum(0)
                acc[2] += b - a
                if acc[2] == n_points:
                    token_map = method.finish(acc[0], acc[1])
                    token_scores[i][column] = method.reduce(token_map.unsqueeze(0))[0].cpu()
                    del sums[(i, column)]
    # Rows of one point for several columns are copies of one sequence: count it once.
    sequences = [n // len(c) for n, c in zip(packer.n_sequences, columns)]

    ends: list[list[float]] = [[] for _ in items]  # f(x), and f(baseline) for completeness
    if not method.evaluates_at_input_only:
        n_ends = 2 if method.delta else 1
        end_rows = [GradRow(i, k, items[i].n_target_tokens) for i in packer.order for k in range(n_ends)]

        def endpoints(item: ItemEmbeddings, ks: torch.Tensor):
            both = [item.inputs, request.baseline(item) if method.delta else item.inputs]
            return torch.stack([both[k] for k in ks.tolist()]), None

        for done in packer.run(end_rows, endpoints, backward=False):
            for b, row in enumerate(done.rows):
                ends[row.item].append(float(done.values[b]))
        for i in range(len(items)):
            f_x[i] = ends[i][0]
            sequences[i] += n_ends

    out = []
    for i, e in enumerate(items):
        per_column = torch.stack([token_scores[i][c] for c in columns[i]])
        units = sum_into_units(per_column, e.unit_of_token[e.unit_of_token >= 0], e.n_units)
        delta, warnings = None, []
        if method.delta:
            gap = ends[i][0] - ends[i][1]
            delta = float(per_column[-1].sum()) - gap  # the reduction is the sum: same total
            if abs(delta) > max(COMPLETENESS_TOLERANCE * abs(gap), 1e-4):
                warnings.append(
                    f"integrated gradients has not converged: the scores sum to {delta + gap:.4g}, "
                    f"but f(x) - f(baseline) = {gap:.4g} (convergence_delta {delta:.3g}); "
                    "raise n_steps or pick another baseline"
                )
        out.append(
            RawScores(
                scores=units[-1],
                per_target_token=units[:-1] if per_target_token else None,
                target_log_prob=f_x[i],
                n_forward=packer.n_forward[i],
                n_sequences=sequences[i],
                n_backward=packer.n_backward[i],
                convergence_delta=delta,
                warnings=warnings,
            )
        )
    return out


def _runs(keys: list) -> list[tuple[int, int]]:
    """[start, stop) of each run of equal consecutive keys."""
    bounds = [0] + [k for k in range(1, len(keys)) if keys[k] != keys[k - 1]] + [len(keys)]
    return list(pairwise(bounds))


def compute_scores(
    engine: Engine,
    spec: MethodSpec,
    options: BaseModel,
    items: Sequence[EncodedInput],
    seed: int,
    per_target_token: bool,
    baseline: Baseline | None,
) -> list[tuple[RawScores, bool]]:
    """Scores for each item, and whether it had to be recomputed in float32 because the
    model's half-precision pass produced NaN or inf."""
    for e in items:
        if e.n_units == 0:
            raise InvalidRequestError("nothing to attribute: the messages hold no content tokens")

    def run(eng: Engine, batch: Sequence[EncodedInput]) -> list[RawScores]:
        if spec.family is Family.PERTURBATION:
            return perturbation_scores(eng, spec, options, batch, seed, per_target_token, baseline)
        return gradient_scores(eng, spec, options, batch, seed, per_target_token, baseline)

    raw = run(engine, items)
    out = [(r, False) for r in raw]
    bad = [i for i, r in enumerate(raw) if not r.finite()]
    if bad and engine.dtype != torch.float32:
        warnings.warn(
            f"{len(bad)} item(s) gave NaN/inf scores in {engine.dtype}; recomputing them in float32",
            RuntimeWarning,
            stacklevel=3,
        )
        redone = run(engine.float32(), [items[i] for i in bad])
        for i, r in zip(bad, redone):
            out[i] = (r, True)
    for r, _ in out:
        if not r.finite():
            raise NumericalError(
                "scores are NaN/inf even in float32; the model's outputs are not finite for this input"
            )
    return out


def build_result(
    encoded: EncodedInput,
    spec: MethodSpec,
    granularity: Granularity,
    options: BaseModel,
    raw: RawScores,
    *,
    recomputed: bool,
    model: str,
    device: str,
    dtype: str,
    seed: int,
    seconds: float,
    target_generated: bool = False,
    extra_params: dict[str, Any] | None = None,
) -> AttributionResult:
    scores = raw.scores.double()
    peak = float(scores.abs().max()) if scores.numel() else 0.0
    normalized = scores / peak if peak > 0 else torch.zeros_like(scores)
    attributions = [
        Attribution(
            text=u.text,
            score=float(scores[i]),
            normalized_score=float(normalized[i]),
            position=i,
            message_index=u.message_index,
            role=u.role,
            char_start=u.char_start,
            char_end=u.char_end,
        )
        for i, u in enumerate(encoded.units)
    ]
    ptt = None
    if raw.per_target_token is not None:
        ptt = PerTargetToken(
            target_tokens=encoded.target_tokens, scores=raw.per_target_token.double().tolist()
        )
    meta = ResultMetadata(
        model=model,
        device=device,
        dtype="float32" if recomputed else dtype,
        seed=seed if spec.uses_seed else None,
        n_forward=raw.n_forward,
        n_backward=raw.n_backward,
        n_sequences=raw.n_sequences,
        compute_time_seconds=seconds,
        target_log_prob=raw.target_log_prob,
        params={**options.model_dump(), **(extra_params or {})},
        n_units=encoded.n_units,
        n_prompt_tokens=encoded.prompt_length,
        n_target_tokens=encoded.n_target_tokens,
        convergence_delta=raw.convergence_delta,
        recomputed_in_float32=recomputed,
        target_generated=target_generated,
        warnings=([f"recomputed in float32: {dtype} gave NaN/inf"] if recomputed else []) + raw.warnings,
    )
    return AttributionResult(
        prompt=encoded.prompt_text,
        messages=encoded.messages,
        target=encoded.target_text,
        method=spec.method,
        granularity=granularity,
        attributions=attributions,
        per_target_token=ptt,
        metadata=meta,
    )
