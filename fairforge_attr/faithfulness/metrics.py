"""From f of every probe to the figures: curves, normalised areas, ERASER, AOPC, LDS, gains.

Pure functions over NumPy arrays (``values[row]`` is f of the probe table's row ``row``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..stats import spearman, trapezoid
from .probes import EMPTY, FULL, OrderingRows, fractions_moved

# The curves are normalised by f_full - f_empty. When removing every unit does not lower f by
# at least this much (nats), there is no drop for an ordering to reach early: the prompt barely
# matters, or it hurts the target (f_empty > f_full, seen on a small model for targets it does
# not know), and dividing by the gap would turn noise into large areas of either sign. The
# areas are then None (and rules skip or fail them, see analysis/check.py).
MIN_SPAN = 1e-3


@dataclass(frozen=True)
class OrderingFigures:
    """What one ordering of the units scores."""

    deletion_curve: np.ndarray
    insertion_curve: np.ndarray
    deletion_auc: float | None
    insertion_auc: float | None
    comprehensiveness: float
    sufficiency: float
    comprehensiveness_top_k: float
    sufficiency_top_k: float


def normalized_auc(curve: np.ndarray, f_full: float, f_empty: float, x: np.ndarray) -> float | None:
    """Area under (f - f_empty) / (f_full - f_empty) over the fraction of units moved; None
    unless f_full - f_empty >= MIN_SPAN. A curve may leave [0, 1] (removing a unit that
    lowered f raises it above f_full), so the area may too."""
    span = f_full - f_empty
    if span < MIN_SPAN:
        return None
    return trapezoid(x, (np.asarray(curve, dtype=np.float64) - f_empty) / span)


def ordering_figures(rows: OrderingRows, values: np.ndarray, n_units: int) -> OrderingFigures:
    """Deletion/insertion curves and areas, comprehensiveness/sufficiency (AOPC over the bins,
    and at top-k) of one ordering."""
    f_full, f_empty = float(values[FULL]), float(values[EMPTY])
    x = fractions_moved(n_units)
    deletion, insertion = values[rows.deletion], values[rows.insertion]
    return OrderingFigures(
        deletion_curve=deletion,
        insertion_curve=insertion,
        deletion_auc=normalized_auc(deletion, f_full, f_empty, x),
        insertion_auc=normalized_auc(insertion, f_full, f_empty, x),
        comprehensiveness=float(np.mean(f_full - values[rows.comprehensiveness])),
        sufficiency=float(np.mean(f_full - values[rows.sufficiency])),
        comprehensiveness_top_k=f_full - float(values[rows.top_k[0]]),
        sufficiency_top_k=f_full - float(values[rows.top_k[1]]),
    )


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def mean_figures(figures: Sequence[OrderingFigures]) -> OrderingFigures:
    """The mean over several orderings (the random baseline)."""
    return OrderingFigures(
        deletion_curve=np.mean([f.deletion_curve for f in figures], axis=0),
        insertion_curve=np.mean([f.insertion_curve for f in figures], axis=0),
        deletion_auc=_mean([f.deletion_auc for f in figures]),
        insertion_auc=_mean([f.insertion_auc for f in figures]),
        comprehensiveness=float(np.mean([f.comprehensiveness for f in figures])),
        sufficiency=float(np.mean([f.sufficiency for f in figures])),
        comprehensiveness_top_k=float(np.mean([f.comprehensiveness_top_k for f in figures])),
        sufficiency_top_k=float(np.mean([f.sufficiency_top_k for f in figures])),
    )


def lds(scores: np.ndarray, ablations: np.ndarray, f_values: np.ndarray) -> float | None:
    """Linear datamodeling score: Spearman correlation between the scores' additive prediction
    of each ablation (sum of the kept units' scores) and f of that ablation."""
    prediction = ablations.astype(np.float64) @ np.asarray(scores, dtype=np.float64)
    return spearman(prediction, f_values)


def random_lds(
    scores: np.ndarray, orders: np.ndarray, ablations: np.ndarray, f_values: np.ndarray
) -> float | None:
    """LDS of the scores shuffled among the units, averaged over the random orderings."""
    scores = np.asarray(scores, dtype=np.float64)
    return _mean([lds(scores[order], ablations, f_values) for order in orders])


def gain(better: float | None, worse: float | None) -> float | None:
    """better - worse, None when either is undefined."""
    return None if better is None or worse is None else better - worse


__all__ = [
    "MIN_SPAN",
    "OrderingFigures",
    "gain",
    "lds",
    "mean_figures",
    "normalized_auc",
    "ordering_figures",
    "random_lds",
]
