"""The per-item numbers a rule can name: one function from a wide result row to a float.

Every metric is defined for a row of ``ffattr batch`` (either layout, regrouped to wide) or
the JSON of ``ffattr explain --output``; ``None`` means the row has no value for it (an error
row, a result without faithfulness, an undefined figure such as LDS on a constant f).
"""

from __future__ import annotations

from typing import Any

OK = "ok"  # the status of a finished row (schema.OK; not imported, to keep pyarrow out)

# Figures of the faithfulness struct a rule may name directly.
FAITHFULNESS_METRICS = (
    "lds",
    "deletion_auc",
    "insertion_auc",
    "deletion_gain",
    "insertion_gain",
    "comprehensiveness",
    "sufficiency",
)
PLAIN_METRICS = (*FAITHFULNESS_METRICS, "objective", "target_log_prob", "n_units", "error")
ARG_METRICS = ("role_share", "rank")  # written role_share:ROLE, rank:WORD
# rank:WORD of an item without such a unit: larger than any real rank, so "rank:x > 5" holds.
RANK_ABSENT = 1_000_000


def metric_names() -> str:
    """Every metric as a rule writes it, for error messages and --help."""
    return ", ".join([*PLAIN_METRICS, "role_share:ROLE", "rank:WORD"])


def is_ok(row: dict[str, Any]) -> bool:
    return row.get("status", OK) == OK


def metric_value(row: dict[str, Any], name: str, arg: str | None = None) -> float | None:
    """The value of metric ``name`` (with its ``arg`` for role_share / rank) on one row."""
    if name == "error":
        return 0.0 if is_ok(row) else 1.0
    if not is_ok(row):
        return None
    if name in FAITHFULNESS_METRICS:
        faithfulness = row.get("faithfulness") or {}
        value = faithfulness.get(name)
        return None if value is None else float(value)
    units = row.get("units") or []
    if name == "objective":
        return objective_value(row)
    if name == "target_log_prob":
        value = row.get("target_log_prob")
        return None if value is None else float(value)
    if name == "n_units":
        return float(len(units))
    if name == "role_share":
        total = sum(abs(u["score"]) for u in units)
        if total == 0:
            return None
        return sum(abs(u["score"]) for u in units if u["role"] == arg) / total
    if name == "rank":
        return float(word_rank(units, arg or ""))
    raise KeyError(name)


def objective_value(row: dict[str, Any]) -> float | None:
    """f(x), what the scores explain: target_log_prob, minus contrast_log_prob for a
    contrastive row (``AttributionResult.objective_value``)."""
    target, contrast = row.get("target_log_prob"), row.get("contrast_log_prob")
    if target is None:
        return None
    return float(target) - (0.0 if contrast is None else float(contrast))


def word_rank(units: list[dict[str, Any]], word: str) -> int:
    """Best 1-based rank by |score| (ties in prompt order) of a unit whose text, stripped of
    surrounding whitespace, equals ``word`` case-insensitively; RANK_ABSENT when none does."""
    wanted = word.strip().casefold()
    ranked = sorted(units, key=lambda u: (-abs(u["score"]), u["position"]))
    for rank, unit in enumerate(ranked, 1):
        if unit["text"].strip().casefold() == wanted:
            return rank
    return RANK_ABSENT


def has_faithfulness(row: dict[str, Any]) -> bool:
    return bool(row.get("faithfulness"))
