"""``ffattr diff``: two result files item by item (a model or prompt version against another).

Units are matched by (message index, character offsets, text), so a unit that moved or changed
is not compared with another one. Per id found ok in both files: the Spearman correlation of
the matched units' scores, drift = 1 - Spearman, the overlap of the two top-k sets (each over
its own units, by |score|), the matched units whose score changed sign, the change of
target_log_prob (new - base) and the change of the objective f(x) the scores explain (the same
number, unless a row is contrastive: then f = target_log_prob - contrast_log_prob). An id whose
two rows explain different objectives (another contrast, or a contrast on one side only) is
still compared, and counted as such: its scores answer different questions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidRequestError
from ..stats import spearman
from .values import is_ok, objective_value

UnitKey = tuple[int, int, int, str]
ROW_KEYS = ("status", "units", "target_log_prob", "contrast", "contrast_log_prob")


@dataclass
class ItemDiff:
    """One id present (and ok) in both files."""

    id: str
    n_base: int
    n_new: int
    n_matched: int
    spearman: float | None
    drift: float | None
    top_k_overlap: float | None
    sign_flips: int
    delta_target_log_prob: float | None
    delta_objective: float | None  # new f(x) - base f(x); f is the difference for a contrastive row
    contrastive: bool  # either row is contrastive
    other_objective: bool  # the two rows' contrasts differ: their scores explain different f


@dataclass
class DiffReport:
    base: str
    new: str
    top_k: int
    items: list[ItemDiff]
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)  # {"id", "in"}: failed in base/new/both

    def mean(self, name: str) -> float | None:
        values = [getattr(i, name) for i in self.items if getattr(i, name) is not None]
        return float(np.mean(values)) if values else None

    @property
    def mean_drift(self) -> float | None:
        return self.mean("drift")

    def summary(self) -> dict[str, Any]:
        return {
            "common": len(self.items),
            "only_in_base": len(self.only_base),
            "only_in_new": len(self.only_new),
            "errors": len(self.errors),
            "compared": sum(i.spearman is not None for i in self.items),
            "mean_spearman": self.mean("spearman"),
            "mean_drift": self.mean_drift,
            "mean_top_k_overlap": self.mean("top_k_overlap"),
            "sign_flips": sum(i.sign_flips for i in self.items),
            "items_with_sign_flips": sum(i.sign_flips > 0 for i in self.items),
            "mean_delta_target_log_prob": self.mean("delta_target_log_prob"),
            "mean_delta_objective": self.mean("delta_objective"),
            "contrastive": sum(i.contrastive for i in self.items),
            "other_objective": sum(i.other_objective for i in self.items),
        }

    def worst(self, n: int) -> list[ItemDiff]:
        """The n items with the largest drift (undefined drift last)."""
        return sorted(self.items, key=lambda i: (i.drift is None, -(i.drift or 0.0), i.id))[:n]

    def to_dict(self, worst: int = 10) -> dict[str, Any]:
        return {
            "base": self.base,
            "new": self.new,
            "top_k": self.top_k,
            "summary": self.summary(),
            "worst": [asdict(i) for i in self.worst(worst)],
            "items": [asdict(i) for i in self.items],
            "only_in_base": self.only_base,
            "only_in_new": self.only_new,
            "errors": self.errors,
        }


def _units(row: dict[str, Any]) -> dict[UnitKey, float]:
    return {
        (u["message_index"], u["char_start"], u["char_end"], u["text"]): float(u["score"])
        for u in row.get("units") or []
    }


def _top(units: dict[UnitKey, float], k: int) -> set[UnitKey]:
    # sorted() keeps dict (prompt) order among ties
    return set(sorted(units, key=lambda key: -abs(units[key]))[:k])


def compare_items(item_id: str, base: dict[str, Any], new: dict[str, Any], top_k: int) -> ItemDiff:
    """The comparison of one id's two ok rows."""
    ub, un = _units(base), _units(new)
    common = [key for key in ub if key in un]
    sb = np.array([ub[key] for key in common])
    sn = np.array([un[key] for key in common])
    rho = spearman(sb, sn) if len(common) >= 2 else None
    k = min(top_k, len(ub), len(un))
    overlap = len(_top(ub, k) & _top(un, k)) / k if k else None
    tb, tn = base.get("target_log_prob"), new.get("target_log_prob")
    fb, fn = objective_value(base), objective_value(new)
    return ItemDiff(
        id=item_id,
        n_base=len(ub),
        n_new=len(un),
        n_matched=len(common),
        spearman=rho,
        drift=None if rho is None else 1.0 - rho,
        top_k_overlap=overlap,
        sign_flips=int(np.sum(np.sign(sb) * np.sign(sn) < 0)),
        delta_target_log_prob=None if tb is None or tn is None else float(tn) - float(tb),
        delta_objective=None if fb is None or fn is None else fn - fb,
        contrastive=base.get("contrast") is not None or new.get("contrast") is not None,
        other_objective=base.get("contrast") != new.get("contrast"),
    )


def _by_id(rows: Iterable[dict[str, Any]], source: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        item_id = str(row.get("id"))
        if item_id in out:
            raise InvalidRequestError(
                f"{source} holds id {item_id!r} more than once; diff compares one result per id "
                "(a file of ffattr evaluate --items holds one per method: split it first)"
            )
        out[item_id] = {k: row.get(k) for k in ROW_KEYS}
    return out


def diff_rows(
    base_rows: Iterable[dict[str, Any]],
    new_rows: Iterable[dict[str, Any]],
    *,
    top_k: int = 5,
    base_name: str = "base",
    new_name: str = "new",
) -> DiffReport:
    """Compare two files' rows by id (ids in the order of the base file)."""
    base, new = _by_id(base_rows, base_name), _by_id(new_rows, new_name)
    report = DiffReport(base_name, new_name, top_k, [])
    report.only_base = [i for i in base if i not in new]
    report.only_new = [i for i in new if i not in base]
    for item_id, b in base.items():
        n = new.get(item_id)
        if n is None:
            continue
        if not (is_ok(b) and is_ok(n)):
            where = "both" if not (is_ok(b) or is_ok(n)) else ("base" if not is_ok(b) else "new")
            report.errors.append({"id": item_id, "in": where})
            continue
        report.items.append(compare_items(item_id, b, n, top_k))
    return report


__all__ = ["DiffReport", "ItemDiff", "compare_items", "diff_rows"]
