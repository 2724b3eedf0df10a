"""``ffattr evaluate``: run several methods on the same items and rank them by faithfulness.

Through the explainer's public API only: ``iter_explain`` per method (items packed into shared
passes, as ``ffattr batch`` does), then ``faithfulness_many`` over every method's results of a
few items at once, so the random orderings and ablations of an item are scored once for all
methods. The cost columns are each method's own (its result metadata), not the check's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import FairForgeError
from ..io.jsonl import BatchItem
from ..io.schema import error_row, result_row
from .ranking import MethodRow, method_row, rank_methods, recommend

CHECK_ITEMS = 8  # items whose faithfulness probes (all methods) go to the engine together
# Items per round: each method explains a round's items (packed into shared passes, as in
# explain_batch) before the next method does, and the rounds alternate the methods, so a
# change of machine load over the run touches every method alike (round-robin timing).
ROUND_ITEMS = 32
Progress = Callable[[str, int], None]  # (what, how many steps done)


@dataclass
class EvaluateReport:
    """Per granularity: the methods ranked, a recommendation; optionally every result row."""

    model: str
    source: str
    n_items: int
    methods: list[str]
    tables: dict[str, list[MethodRow]] = field(default_factory=dict)
    recommendations: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    faithfulness_seconds: float = 0.0

    def table_rows(self) -> list[dict[str, Any]]:
        return [row.to_dict() for table in self.tables.values() for row in table]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input": self.source,
            "n_items": self.n_items,
            "methods": self.methods,
            "tables": self.table_rows(),
            "recommendations": self.recommendations,
            "faithfulness_seconds": self.faithfulness_seconds,
        }


def _explain(
    explainer: Any,
    items: Sequence[BatchItem],
    method: str,
    granularity: str,
    seed: int,
    options: dict,
    progress: Progress,
) -> list[Any]:
    """One method over the items: a result or an error per item, in order."""
    outcomes = explainer.iter_explain(
        [it.request for it in items],
        method=method,
        granularity=granularity,
        seed=seed,
        progress=lambda n: progress("explain", n),
        **options.get(method, {}),
    )
    return [o.result if o.error is None else o.error for o in outcomes]


def _check(explainer: Any, results: list[Any], faithfulness: dict[str, Any]) -> list[Any]:
    """Faithfulness of the results (None for one that could not be checked)."""
    try:
        return explainer.faithfulness_many(results, **faithfulness)
    except FairForgeError:
        if len(results) == 1:
            return [None]
        return [_check(explainer, [r], faithfulness)[0] for r in results]


def evaluate_granularity(
    explainer: Any,
    items: Sequence[BatchItem],
    methods: Sequence[str],
    granularity: str,
    *,
    seed: int,
    options: dict[str, dict[str, Any]],
    faithfulness: dict[str, Any],
    progress: Progress,
) -> tuple[dict[str, list[Any]], float]:
    """method -> per item: a result (with faithfulness when it could be measured) or an error;
    and the seconds the faithfulness checks took."""
    outcomes: dict[str, list[Any]] = {m: [] for m in methods}
    seconds = 0.0
    for first in range(0, len(items), ROUND_ITEMS):
        last = min(first + ROUND_ITEMS, len(items))
        for m in methods:
            outcomes[m] += _explain(explainer, items[first:last], m, granularity, seed, options, progress)
        began = time.perf_counter()
        for start in range(first, last, CHECK_ITEMS):
            _check_items(
                explainer, outcomes, methods, range(start, min(start + CHECK_ITEMS, last)), faithfulness
            )
            progress("faithfulness", min(start + CHECK_ITEMS, last) - start)
        seconds += time.perf_counter() - began
    return outcomes, seconds


def _check_items(
    explainer: Any, outcomes: dict[str, list[Any]], methods: Sequence[str], indices: range, faithfulness: dict
) -> None:
    """Attach the faithfulness of every method's result on these items (one engine call)."""
    where = [(m, i) for i in indices for m in methods if not isinstance(outcomes[m][i], FairForgeError)]
    checks = _check(explainer, [outcomes[m][i] for m, i in where], faithfulness) if where else []
    for (m, i), check in zip(where, checks):
        if check is not None:
            outcomes[m][i] = outcomes[m][i].model_copy(update={"faithfulness": check})


def _rows(
    explainer: Any, items: Sequence[BatchItem], method: str, granularity: str, seed: int, outcomes: list[Any]
) -> list[dict[str, Any]]:
    rows = []
    for item, outcome in zip(items, outcomes):
        if isinstance(outcome, FairForgeError):
            rows.append(
                error_row(
                    item_id=item.id,
                    line=item.line,
                    error=str(outcome),
                    model=explainer.model_name,
                    method=method,
                    granularity=granularity,
                    seed=seed,
                    meta=item.meta or {},
                )
            )
        else:
            rows.append(result_row(outcome, item_id=item.id, line=item.line, meta=item.meta or {}))
    return rows


def evaluate(
    explainer: Any,
    items: Sequence[BatchItem],
    methods: Sequence[str],
    granularities: Sequence[str],
    *,
    source: str = "",
    seed: int = 0,
    options: dict[str, dict[str, Any]] | None = None,
    faithfulness: dict[str, Any] | None = None,
    keep_rows: bool = False,
    progress: Progress = lambda what, n: None,
) -> EvaluateReport:
    """Rank ``methods`` by faithfulness on ``items`` (readable batch items) at each granularity.
    ``options`` maps a method to its options; ``faithfulness`` holds FaithfulnessOptions
    fields."""
    report = EvaluateReport(explainer.model_name, source, len(items), list(methods))
    for granularity in granularities:
        outcomes, seconds = evaluate_granularity(
            explainer,
            items,
            methods,
            granularity,
            seed=seed,
            options=options or {},
            faithfulness=faithfulness or {},
            progress=progress,
        )
        report.faithfulness_seconds += seconds
        table = []
        for method in methods:
            rows = _rows(explainer, items, method, granularity, seed, outcomes[method])
            table.append(method_row(granularity, method, rows))
            if keep_rows:
                report.rows.extend(rows)
        report.tables[granularity] = rank_methods(table)
        report.recommendations[granularity] = recommend(report.tables[granularity])
    return report


__all__ = ["EvaluateReport", "evaluate", "evaluate_granularity"]
