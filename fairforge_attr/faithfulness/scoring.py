"""Faithfulness through the engine: every probe of every item in one ``Engine.score`` call.

The probes are masks like any perturbation method's, so the engine packs them into chunked
forward passes, shares prefixes and scores each distinct mask of an item once. Several results
on one item (``ffattr evaluate`` checks every method on the same item) are merged into one
request: the random orderings, the LDS ablations, f_full and f_empty are scored once for all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..engine import Baseline, Engine, ScoreRequest, ScoreResult
from ..errors import NumericalError
from ..prompt import EncodedInput
from .metrics import OrderingFigures, gain, lds, mean_figures, ordering_figures, random_lds
from .probes import (
    EMPTY,
    FULL,
    MaskTable,
    OrderingRows,
    ablation_masks,
    add_ordering,
    by_magnitude,
    by_score,
    random_orders,
)
from .types import AOPC_BINS, FRACTIONS, Faithfulness, FaithfulnessOptions

ValueOf = Callable[[ScoreResult], torch.Tensor]


def summed_log_prob(result: ScoreResult) -> torch.Tensor:
    """f of each variant as the engine scores it (the summed target log-probability)."""
    return result.values


@dataclass(frozen=True)
class FaithfulnessTask:
    """One result to check: the item as the engine sees it, and the result's unit scores."""

    encoded: EncodedInput
    scores: np.ndarray  # [n_units]


@dataclass
class _ItemPlan:
    """The probes of one item, for every task on it."""

    encoded: EncodedInput
    table: MaskTable
    orders: np.ndarray  # [n_random, n_units]
    random: list[OrderingRows]
    ablations: np.ndarray  # [n_ablations, n_units]
    ablation_rows: np.ndarray
    tasks: list[tuple[int, OrderingRows, OrderingRows | None]] = field(default_factory=list)


def _item_key(encoded: EncodedInput) -> tuple:
    """Tasks with one key share probes: the same sequences, units and f (a contrastive item's
    f is another function of the same prompt, so its contrast is part of the key)."""
    return (
        *(answer.input_ids.numpy().tobytes() for answer in encoded.answers()),
        encoded.prompt_length,
        tuple(u.token_indices for u in encoded.units),
    )


def plan_probes(tasks: Sequence[FaithfulnessTask], options: FaithfulnessOptions) -> list[_ItemPlan]:
    """Group the tasks by item and lay out each item's probes (pure: no model)."""
    plans: dict[tuple, _ItemPlan] = {}
    for index, task in enumerate(tasks):
        enc, n = task.encoded, task.encoded.n_units
        if len(task.scores) != n:
            raise ValueError(f"{len(task.scores)} scores for an item of {n} units")
        key = _item_key(enc)
        plan = plans.get(key)
        if plan is None:
            table = MaskTable(n)
            orders = random_orders(n, options)
            ablations = ablation_masks(n, options)
            plan = plans[key] = _ItemPlan(
                encoded=enc,
                table=table,
                orders=orders,
                random=[add_ordering(table, o, options.top_k) for o in orders],
                ablations=ablations,
                ablation_rows=np.array([table.add(m) for m in ablations], dtype=np.int64),
            )
        scores = np.asarray(task.scores, dtype=np.float64)
        magnitude = add_ordering(plan.table, by_magnitude(scores), options.top_k)
        # With no negative score the signed order is the |score| order: nothing new to say.
        signed = add_ordering(plan.table, by_score(scores), options.top_k) if (scores < 0).any() else None
        plan.tasks.append((index, magnitude, signed))
    return list(plans.values())


def _score(
    engine: Engine, plans: Sequence[_ItemPlan], baseline: Baseline, value_of: ValueOf
) -> tuple[list[np.ndarray], list[int]]:
    requests = [ScoreRequest(p.encoded, torch.from_numpy(p.table.array()), baseline) for p in plans]
    scored = engine.score(requests)
    values = [value_of(r).double().cpu().numpy() for r in scored]
    forwards = [r.n_forward for r in scored]
    bad = [i for i, v in enumerate(values) if not np.isfinite(v).all()]
    if bad and engine.dtype != torch.float32:
        redo = engine.float32().score([requests[i] for i in bad])
        for i, r in zip(bad, redo):
            values[i], forwards[i] = value_of(r).double().cpu().numpy(), forwards[i] + r.n_forward
    if any(not np.isfinite(v).all() for v in values):
        raise NumericalError("f is NaN/inf on some faithfulness probes even in float32")
    return values, forwards


def score_faithfulness(
    engine: Engine,
    tasks: Sequence[FaithfulnessTask],
    options: FaithfulnessOptions,
    baseline: Baseline,
    *,
    value_of: ValueOf = summed_log_prob,
) -> list[Faithfulness]:
    """The faithfulness of every task, in order. ``value_of`` turns the engine's scores of a
    request into f of each variant (by default the summed target log-probability), so the
    metrics follow whatever f the caller explains."""
    start = time.perf_counter()
    plans = plan_probes(tasks, options)
    values, forwards = _score(engine, plans, baseline, value_of)
    seconds = (time.perf_counter() - start) / max(len(tasks), 1)
    out: list[Faithfulness | None] = [None] * len(tasks)
    for plan, vals, n_forward in zip(plans, values, forwards):
        n = plan.encoded.n_units
        rand = mean_figures([ordering_figures(r, vals, n) for r in plan.random])
        f_ablations = vals[plan.ablation_rows]
        shared = {FULL, EMPTY, *plan.ablation_rows.tolist()}.union(*(r.rows() for r in plan.random))
        for index, magnitude, signed in plan.tasks:
            scores = np.asarray(tasks[index].scores, dtype=np.float64)
            rows = shared | magnitude.rows() | (signed.rows() if signed is not None else set())
            out[index] = _summarise(
                ordering_figures(magnitude, vals, n),
                None if signed is None else ordering_figures(signed, vals, n),
                rand,
                lds(scores, plan.ablations, f_ablations),
                random_lds(scores, plan.orders, plan.ablations, f_ablations),
                f_full=float(vals[FULL]),
                f_empty=float(vals[EMPTY]),
                top_k=min(options.top_k, n),
                options=options,
                removal=baseline.description,
                cost=(len(rows), n_forward, seconds),
            )
    return out  # type: ignore[return-value]


def _signed(figures: OrderingFigures | None) -> dict[str, float | None]:
    """The signed ordering's fields (none when no score is negative: they stay None)."""
    if figures is None:
        return {}
    return {
        "signed_deletion_auc": figures.deletion_auc,
        "signed_insertion_auc": figures.insertion_auc,
        "signed_comprehensiveness": figures.comprehensiveness,
        "signed_sufficiency": figures.sufficiency,
    }


def _summarise(
    mag: OrderingFigures,
    signed: OrderingFigures | None,
    rand: OrderingFigures,
    lds_value: float | None,
    random_lds_value: float | None,
    *,
    f_full: float,
    f_empty: float,
    top_k: int,
    options: FaithfulnessOptions,
    removal: str,
    cost: tuple[int, int, float],
) -> Faithfulness:
    return Faithfulness(
        fractions=list(FRACTIONS),
        aopc_bins=list(AOPC_BINS),
        top_k=top_k,
        n_ablations=options.n_ablations,
        n_random=options.n_random,
        seed=options.seed,
        removal=removal,
        f_full=f_full,
        f_empty=f_empty,
        deletion_curve=mag.deletion_curve.tolist(),
        insertion_curve=mag.insertion_curve.tolist(),
        deletion_auc=mag.deletion_auc,
        insertion_auc=mag.insertion_auc,
        comprehensiveness=mag.comprehensiveness,
        sufficiency=mag.sufficiency,
        comprehensiveness_top_k=mag.comprehensiveness_top_k,
        sufficiency_top_k=mag.sufficiency_top_k,
        lds=lds_value,
        **_signed(signed),
        random_deletion_curve=rand.deletion_curve.tolist(),
        random_insertion_curve=rand.insertion_curve.tolist(),
        random_deletion_auc=rand.deletion_auc,
        random_insertion_auc=rand.insertion_auc,
        random_comprehensiveness=rand.comprehensiveness,
        random_sufficiency=rand.sufficiency,
        random_comprehensiveness_top_k=rand.comprehensiveness_top_k,
        random_sufficiency_top_k=rand.sufficiency_top_k,
        random_lds=random_lds_value,
        deletion_gain=gain(rand.deletion_auc, mag.deletion_auc),
        insertion_gain=gain(mag.insertion_auc, rand.insertion_auc),
        comprehensiveness_gain=gain(mag.comprehensiveness, rand.comprehensiveness),
        sufficiency_gain=gain(rand.sufficiency, mag.sufficiency),
        lds_gain=gain(lds_value, random_lds_value),
        n_sequences=cost[0],
        n_forward=cost[1],
        compute_time_seconds=cost[2],
    )


__all__ = ["FaithfulnessTask", "plan_probes", "score_faithfulness", "summed_log_prob"]
