"""Which variants a faithfulness check scores: orderings of the units and the keep-masks they
give. Pure NumPy functions, no model: the engine scores the masks (``scoring.py``).

A mask is a bool vector over the units, True = the unit is kept. Row 0 of every table keeps
every unit (f_full) and row 1 none (f_empty); each distinct mask is in the table once, so the
orderings of several methods on one item, the random orderings and the ablations share rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .types import AOPC_BINS, FRACTIONS, FaithfulnessOptions

FULL, EMPTY = 0, 1


def units_at(fraction: float, n_units: int) -> int:
    """How many units a fraction moves: ceil(fraction x n_units), so every fraction > 0 moves
    at least one unit (on a short prompt 1 % of 8 words is still one word)."""
    return min(n_units, math.ceil(fraction * n_units - 1e-9))


def by_magnitude(scores: np.ndarray) -> np.ndarray:
    """Unit indices by |score|, strongest first; ties keep prompt order."""
    return np.argsort(-np.abs(np.asarray(scores, dtype=np.float64)), kind="stable")


def by_score(scores: np.ndarray) -> np.ndarray:
    """Unit indices by score, most positive (most raising f) first; ties keep prompt order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def _streams(options: FaithfulnessOptions, n_units: int) -> tuple[np.random.Generator, np.random.Generator]:
    # Seeded by (seed, n_units) alone: every method on one item meets the same draws.
    orders, ablations = np.random.SeedSequence([options.seed, n_units]).spawn(2)
    return np.random.default_rng(orders), np.random.default_rng(ablations)


def random_orders(n_units: int, options: FaithfulnessOptions) -> np.ndarray:
    """[n_random, n_units] seeded random permutations of the units."""
    rng = _streams(options, n_units)[0]
    return np.stack([rng.permutation(n_units) for _ in range(options.n_random)])


def ablation_masks(n_units: int, options: FaithfulnessOptions) -> np.ndarray:
    """[n_ablations, n_units] the held-out LDS ablations: each unit kept with
    ``keep_probability``, independently."""
    rng = _streams(options, n_units)[1]
    return rng.random((options.n_ablations, n_units)) < options.keep_probability


class MaskTable:
    """Distinct keep-masks of one item, in the order they were first asked for."""

    def __init__(self, n_units: int) -> None:
        self.n_units = n_units
        self._rows: list[np.ndarray] = []
        self._index: dict[bytes, int] = {}
        self.add(np.ones(n_units, dtype=bool))  # FULL
        self.add(np.zeros(n_units, dtype=bool))  # EMPTY

    def add(self, mask: np.ndarray) -> int:
        key = np.packbits(mask).tobytes()
        row = self._index.get(key)
        if row is None:
            row = self._index[key] = len(self._rows)
            self._rows.append(mask)
        return row

    def __len__(self) -> int:
        return len(self._rows)

    def array(self) -> np.ndarray:
        """[n_rows, n_units] bool."""
        return np.stack(self._rows)


@dataclass(frozen=True)
class OrderingRows:
    """The table rows one ordering needs."""

    deletion: np.ndarray  # [len(FRACTIONS)] the first k units removed
    insertion: np.ndarray  # [len(FRACTIONS)] only the first k units kept
    comprehensiveness: np.ndarray  # [len(AOPC_BINS)] top-k removed
    sufficiency: np.ndarray  # [len(AOPC_BINS)] only the top-k kept
    top_k: tuple[int, int]  # (top-k removed, only top-k kept) at the top_k option

    def rows(self) -> set[int]:
        parts = (self.deletion, self.insertion, self.comprehensiveness, self.sufficiency)
        return {int(r) for p in parts for r in p} | set(self.top_k)


def _removed(order: np.ndarray, k: int, n_units: int) -> np.ndarray:
    mask = np.ones(n_units, dtype=bool)
    mask[order[:k]] = False
    return mask


def _kept(order: np.ndarray, k: int, n_units: int) -> np.ndarray:
    mask = np.zeros(n_units, dtype=bool)
    mask[order[:k]] = True
    return mask


def add_ordering(table: MaskTable, order: np.ndarray, top_k: int) -> OrderingRows:
    """Add the deletion, insertion, comprehensiveness and sufficiency masks of one ordering."""
    n = table.n_units

    def rows(build: Callable[[np.ndarray, int, int], np.ndarray], fractions: Sequence[float]) -> np.ndarray:
        return np.array([table.add(build(order, units_at(p, n), n)) for p in fractions], dtype=np.int64)

    k = min(top_k, n)
    return OrderingRows(
        deletion=rows(_removed, FRACTIONS),
        insertion=rows(_kept, FRACTIONS),
        comprehensiveness=rows(_removed, AOPC_BINS),
        sufficiency=rows(_kept, AOPC_BINS),
        top_k=(table.add(_removed(order, k, n)), table.add(_kept(order, k, n))),
    )


def fractions_moved(n_units: int) -> np.ndarray:
    """The x axis of the curves: k / n_units at every fraction of the grid."""
    return np.array([units_at(p, n_units) / n_units for p in FRACTIONS], dtype=np.float64)


__all__ = [
    "EMPTY",
    "FULL",
    "MaskTable",
    "OrderingRows",
    "ablation_masks",
    "add_ordering",
    "by_magnitude",
    "by_score",
    "fractions_moved",
    "random_orders",
    "units_at",
]
