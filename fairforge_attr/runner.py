"""Encoded items + a method -> scores -> result objects. Shared by explain and explain_batch."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel

from .engine import Baseline, Engine, ScoreRequest
from .errors import InvalidRequestError, NumericalError
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
        return [spec.gradient.attribute(eng, e, options, seed, per_target_token, baseline) for e in batch]

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
