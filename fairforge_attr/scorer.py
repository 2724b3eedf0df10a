"""Encoded items + a Plan -> results. The API hands a group of encoded items here; the method
spec scores them (``plan.spec.score``), a non-finite half-precision item is redone in float32,
and each item becomes a result (``results.build_result``). Nothing here names a method family.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .engine import Engine
from .errors import FairForgeError, InvalidRequestError, NumericalError
from .faithfulness.attach import attach
from .methods.base import RawScores
from .plan import Plan
from .prompt import EncodedInput
from .request import CONTRAST_PER_TARGET_TOKEN
from .results import AttributionResult, build_result


@dataclass(frozen=True)
class EncodedItem:
    """One encoded item to score, and whether its target was generated (not given)."""

    encoded: EncodedInput
    target_generated: bool = False


def check_item(plan: Plan, encoded: EncodedInput) -> None:
    """Raise InvalidRequestError when ``plan`` cannot explain ``encoded``."""
    if encoded.n_units == 0:
        raise InvalidRequestError("nothing to attribute: the messages hold no content tokens")
    if plan.per_target_token and encoded.contrastive:
        raise InvalidRequestError(CONTRAST_PER_TARGET_TOKEN)


def score_items(engine: Engine, plan: Plan, items: Sequence[EncodedInput]) -> list[tuple[RawScores, bool]]:
    """Scores for each item, and whether it had to be recomputed in float32 because the
    model's half-precision pass produced NaN or inf."""
    for e in items:
        check_item(plan, e)
    score = plan.scorer
    raw = score(engine, plan, items)
    out = [(r, False) for r in raw]
    bad = [i for i, r in enumerate(raw) if not r.finite()]
    if bad and engine.dtype != torch.float32:
        warnings.warn(
            f"{len(bad)} item(s) gave NaN/inf scores in {engine.dtype}; recomputing them in float32",
            RuntimeWarning,
            stacklevel=3,
        )
        redone = score(engine.float32(), plan, [items[i] for i in bad])
        for i, r in zip(bad, redone):
            out[i] = (r, True)
    for r, _ in out:
        if not r.finite():
            raise NumericalError(
                "scores are NaN/inf even in float32; the model's outputs are not finite for this input"
            )
    return out


def score_group(
    engine: Engine, plan: Plan, items: Sequence[EncodedItem], *, model: str, started: float | None = None
) -> list[AttributionResult | FairForgeError]:
    """One result, or the error that stopped it, per item. The items share passes; when that
    fails, each is scored alone, so one bad item never sinks the others. ``started``: when the
    group's work began (``time.perf_counter()``), so each item's time includes its share of
    encoding; default now."""
    start = time.perf_counter() if started is None else started
    try:
        scored = score_items(engine, plan, [item.encoded for item in items])
    except FairForgeError as exc:
        if len(items) == 1:
            return [exc]
        return [score_group(engine, plan, [item], model=model)[0] for item in items]
    seconds = (time.perf_counter() - start) / len(items)
    results = [
        build_result(
            item.encoded,
            plan,
            raw,
            model=model,
            device=str(engine.device),
            dtype=str(engine.dtype).removeprefix("torch."),
            seconds=seconds,
            recomputed=recomputed,
            target_generated=item.target_generated,
        )
        for item, (raw, recomputed) in zip(items, scored)
    ]
    if plan.faithfulness is None or plan.faithfulness_baseline is None:
        return list(results)
    # The group's probes share passes too; an item whose check fails gets the error.
    return attach(
        engine,
        [(item.encoded, r) for item, r in zip(items, results)],
        plan.faithfulness,
        plan.faithfulness_baseline,
    )
