"""``ffattr evaluate``'s tables: per (granularity, method) the mean faithfulness next to the
cost, a rank, and a recommendation in plain words. Pure functions over result rows.

The rank is the mean of the method's ranks on LDS, deletion gain, insertion gain and
comprehensiveness (a Borda count: no single figure decides). Every method on an item meets the
same random orderings and ablations, so a gain over random ranks methods exactly as the figure
itself does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..stats import rankdata

RANKED_BY = ("lds", "deletion_gain", "insertion_gain", "comprehensiveness")
MEANS = (*RANKED_BY, "sufficiency", "deletion_auc", "insertion_auc", "random_lds")
COSTS = ("n_forward", "n_sequences", "n_backward", "compute_time_s")


@dataclass
class MethodRow:
    """One method at one granularity: means over its ok items."""

    granularity: str
    method: str
    n_items: int
    n_errors: int
    lds: float | None
    deletion_gain: float | None
    insertion_gain: float | None
    comprehensiveness: float | None
    sufficiency: float | None
    deletion_auc: float | None
    insertion_auc: float | None
    random_lds: float | None
    n_forward: float | None
    n_sequences: float | None
    n_backward: float | None
    seconds: float | None
    rank: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def method_row(granularity: str, method: str, rows: Iterable[dict[str, Any]]) -> MethodRow:
    """The means of one method's result rows (error rows counted, not averaged)."""
    figures: dict[str, list[float]] = {name: [] for name in (*MEANS, *COSTS)}
    n_items = n_errors = 0
    for row in rows:
        if row.get("status") != "ok":
            n_errors += 1
            continue
        n_items += 1
        faithfulness = row.get("faithfulness") or {}
        for name in MEANS:
            if faithfulness.get(name) is not None:
                figures[name].append(float(faithfulness[name]))
        for name in COSTS:
            if row.get(name) is not None:
                figures[name].append(float(row[name]))
    means = {name: _mean(values) for name, values in figures.items()}
    return MethodRow(
        granularity=granularity,
        method=method,
        n_items=n_items,
        n_errors=n_errors,
        **{name: means[name] for name in MEANS},
        n_forward=means["n_forward"],
        n_sequences=means["n_sequences"],
        n_backward=means["n_backward"],
        seconds=means["compute_time_s"],
    )


def rank_methods(rows: list[MethodRow]) -> list[MethodRow]:
    """Fill in each row's rank (1 = most faithful; the mean of its ranks over RANKED_BY,
    higher is better for each) and return the rows best first. A method without a figure
    ranks last on it."""
    if not rows:
        return rows
    per_figure = []
    for name in RANKED_BY:
        values = [getattr(r, name) for r in rows]
        filled = [np.inf if v is None else -v for v in values]  # rank 1 = the highest value
        per_figure.append(rankdata(filled))
    mean_rank = np.mean(per_figure, axis=0)
    for row, rank in zip(rows, mean_rank):
        row.rank = float(rank)
    return sorted(rows, key=lambda r: (r.rank, r.method))


def _times(cheap: float, costly: float) -> str:
    return f"{costly / cheap:.1f} times" if cheap > 0 else "far"


def recommend(ranked: list[MethodRow]) -> str:
    """One sentence: the most faithful method, and the best cheaper one with its share of the
    leader's LDS (cost = seconds per item, as measured in this run)."""
    usable = [r for r in ranked if r.n_items]
    if not usable:
        return "no method explained any item; see the errors"
    best = usable[0]
    text = f"on this model and data, {best.method} is the most faithful (LDS {_fmt(best.lds)})"
    cheaper = [
        r
        for r in usable[1:]
        if r.seconds is not None and best.seconds is not None and r.seconds < best.seconds
    ]
    if not cheaper:
        return text + " and also the cheapest."
    alt = max(cheaper, key=lambda r: (-np.inf if r.lds is None else r.lds, -(r.rank or 0.0)))
    times = _times(alt.seconds or 0.0, best.seconds or 0.0)
    if best.lds is not None and alt.lds is not None and best.lds > 0:
        share = f"at {alt.lds / best.lds:.0%} of its LDS"
    else:
        share = f"with LDS {_fmt(alt.lds)}"
    return text + f"; {alt.method} is {times} cheaper {share}."


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


__all__ = ["COSTS", "MEANS", "RANKED_BY", "MethodRow", "method_row", "rank_methods", "recommend"]
