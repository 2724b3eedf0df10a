"""Small statistics shared by the faithfulness metrics, ``ffattr check`` and ``ffattr diff``.

NumPy only (no torch): reading and gating a result file must not pay for importing torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def rankdata(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks, ties get the mean of the ranks they span (scipy's ``method='average'``)."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1, dtype=np.float64)
    sorted_x = x[order]
    # Each run of equal values shares the mean of its ranks.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for start, end in zip(starts, ends):
        if end - start > 1:
            ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float | None:
    """Spearman rank correlation (Pearson correlation of the tie-averaged ranks). None when it
    is undefined: fewer than two values, or one side constant."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"spearman needs two vectors of one length, got {x.shape} and {y.shape}")
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    rx, ry = rankdata(x) - (len(x) + 1) / 2.0, rankdata(y) - (len(y) + 1) / 2.0
    denominator = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if denominator == 0.0:
        return None
    return float(rx @ ry) / denominator


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile with linear interpolation (NumPy's default); None for no values."""
    if not len(values):
        return None
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


def trapezoid(x: Sequence[float], y: Sequence[float]) -> float:
    """Area under the piecewise-linear curve through (x, y), x ascending."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


__all__ = ["quantile", "rankdata", "spearman", "trapezoid"]
