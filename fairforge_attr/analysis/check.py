"""``ffattr check``: does a result file meet its rules? One pass over the rows, flat memory per
rule (the id and value of every item).

Which items a rule sees: ``error`` counts every row (error rows are 1); every other metric
counts the ok rows. A rule without an aggregate must hold for each of those items on its own:
an item without a value for the metric (no faithfulness, an undefined figure) fails it. A rule
with an aggregate must hold for the aggregate over the items that have a value; ``share`` is
the fraction of them whose value is non-zero (meant for 0/1 metrics such as ``error``). A rule
that sees no item (or no value to aggregate) fails: a gate that checked nothing did not pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidRequestError
from ..stats import quantile
from .rules import Rule
from .values import FAITHFULNESS_METRICS, RANK_ABSENT, has_faithfulness, is_ok, metric_value


def show_value(rule: Rule, value: float | None) -> str:
    """A value as a person reads it: n/a for none, "absent" for a rank:WORD never found."""
    if value is None:
        return "n/a"
    if rule.metric == "rank" and value >= RANK_ABSENT:
        return "absent"
    return f"{value:.4g}"


@dataclass
class RuleOutcome:
    """How one rule fared: the aggregate (None for per-item rules), the items it saw, and the
    items that fail it on their own (for an aggregate rule: those on the wrong side of the
    threshold, the ones to look at)."""

    rule: Rule
    passed: bool
    value: float | None
    n_items: int
    n_missing: int
    failing: list[tuple[str, float | None]] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        r = self.rule
        return {
            "rule": r.text,
            "passed": self.passed,
            "aggregate": r.aggregate,
            "metric": r.metric_label,
            "op": r.op,
            "threshold": r.threshold,
            "value": self.value,
            "n_items": self.n_items,
            "n_missing": self.n_missing,
            "n_failing": len(self.failing),
            "failing": [{"id": i, "value": v} for i, v in self.failing],
            "reason": self.reason,
        }


@dataclass
class CheckReport:
    """Every rule's outcome over one file."""

    source: str
    n_rows: int
    n_ok: int
    outcomes: list[RuleOutcome]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "items": self.n_rows,
            "ok": self.n_ok,
            "errors": self.n_rows - self.n_ok,
            "passed": self.passed,
            "rules": [o.to_dict() for o in self.outcomes],
        }


def aggregate(name: str, values: Sequence[float]) -> float | None:
    """One aggregate over the items' values; None when there are none."""
    if not values:
        return None
    if name == "share":
        return float(np.mean([v != 0 for v in values]))
    if name == "mean":
        return float(np.mean(values))
    if name == "min":
        return float(min(values))
    if name == "max":
        return float(max(values))
    return quantile(values, {"median": 0.5, "p10": 0.1, "p90": 0.9}[name])


def check_rows(rows: Iterable[dict[str, Any]], rules: Sequence[Rule], source: str = "") -> CheckReport:
    """Evaluate every rule over the rows (one pass)."""
    seen: list[list[tuple[str, float | None]]] = [[] for _ in rules]
    n_rows = n_ok = n_faithful = 0
    for row in rows:
        n_rows += 1
        ok = is_ok(row)
        n_ok += ok
        n_faithful += ok and has_faithfulness(row)
        for rule, values in zip(rules, seen):
            if ok or rule.metric == "error":
                values.append((str(row.get("id")), metric_value(row, rule.metric, rule.arg)))
    needs = [r.text for r in rules if r.metric in FAITHFULNESS_METRICS]
    if needs and n_ok and not n_faithful:
        raise InvalidRequestError(
            f"{source or 'the results'} hold no faithfulness figures, which rule(s) {', '.join(needs)} "
            "need; compute them with ffattr batch --faithfulness (or explain(..., faithfulness=True))"
        )
    outcomes = [_outcome(rule, values) for rule, values in zip(rules, seen)]
    return CheckReport(source, n_rows, n_ok, outcomes)


def _outcome(rule: Rule, values: list[tuple[str, float | None]]) -> RuleOutcome:
    defined = [v for _, v in values if v is not None]
    n_missing = len(values) - len(defined)

    def fails_alone(v: float | None) -> bool:
        if v is None:
            return True
        return not rule.holds(float(v != 0) if rule.aggregate == "share" else v)

    failing = [(i, v) for i, v in values if fails_alone(v)]
    if not values:
        return RuleOutcome(rule, False, None, 0, 0, [], "no items to check")
    if rule.aggregate is None:
        reason = f"{len(failing)} of {len(values)} items fail" if failing else f"all {len(values)} items pass"
        return RuleOutcome(rule, not failing, None, len(values), n_missing, failing, reason)
    value = aggregate(rule.aggregate, defined)
    if value is None:
        return RuleOutcome(rule, False, None, len(values), n_missing, failing, "no item has a value")
    passed = rule.holds(value)
    reason = f"{rule.aggregate} {rule.metric_label} = {value:.4g}, needs {rule.op} {rule.threshold:g}"
    # Items without a value are not part of the aggregate: listed as failing only for per-item rules.
    failing = [(i, v) for i, v in failing if v is not None]
    return RuleOutcome(rule, passed, value, len(values), n_missing, failing, reason)


__all__ = ["CheckReport", "RuleOutcome", "aggregate", "check_rows", "show_value"]
