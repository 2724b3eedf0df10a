"""The summary of a whole result file (``ffattr show``): counts, cost, and the units that most
often rank among an item's strongest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table

TOP_PER_ITEM = 3
MAX_ERRORS_SHOWN = 5
# The faithfulness figures a file's summary averages (each signed so that larger is better but
# sufficiency, which is a loss in nats), beside their random-ordering reference where one exists.
FAITHFULNESS_MEANS = (
    ("lds", "random_lds", "LDS (rank correlation with ablation outcomes)"),
    ("deletion_gain", None, "deletion gain over random orderings"),
    ("insertion_gain", None, "insertion gain over random orderings"),
    ("comprehensiveness", "random_comprehensiveness", "comprehensiveness (nats, AOPC)"),
    ("sufficiency", "random_sufficiency", "sufficiency (nats, AOPC; lower is better)"),
)


@dataclass
class Summary:
    """Fed one wide row at a time (``add``), so a file of any size summarises in flat memory."""

    items: int = 0
    errors: int = 0
    seconds: float = 0.0
    forward: int = 0
    contrastive: int = 0
    generated: int = 0
    methods: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    top_units: Counter = field(default_factory=Counter)
    checked: int = 0
    faithfulness_sums: Counter = field(default_factory=Counter)
    faithfulness_counts: Counter = field(default_factory=Counter)
    first_errors: list[tuple[Any, str, str]] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        self.items += 1
        if row.get("status") != "ok":
            self.errors += 1
            if len(self.first_errors) < MAX_ERRORS_SHOWN:
                self.first_errors.append((row.get("line"), str(row.get("id")), row.get("error") or ""))
            return
        self.seconds += row.get("compute_time_s") or 0.0
        self.forward += row.get("n_forward") or 0
        self.contrastive += row.get("contrast") is not None
        self.generated += bool(row.get("target_generated"))
        self.methods[f"{row.get('method')}/{row.get('granularity')}"] += 1
        self.models[row.get("model")] += 1
        units = row.get("units") or []
        strongest = sorted(units, key=lambda u: (-abs(u["score"]), u["position"]))[:TOP_PER_ITEM]
        self.top_units.update({u["text"].strip().lower() for u in strongest if u["text"].strip()})
        self._add_faithfulness(row.get("faithfulness"))

    def _add_faithfulness(self, check: dict[str, Any] | None) -> None:
        """Means over the items that have each figure (an AUC is null when f barely moves)."""
        if not check:
            return
        self.checked += 1
        for name in (n for figure in FAITHFULNESS_MEANS for n in figure[:2] if n):
            value = check.get(name)
            if value is not None:
                self.faithfulness_sums[name] += value
                self.faithfulness_counts[name] += 1

    def faithfulness_mean(self, name: str) -> float | None:
        count = self.faithfulness_counts[name]
        return self.faithfulness_sums[name] / count if count else None

    @property
    def ok(self) -> int:
        return self.items - self.errors


def summary_table(summary: Summary, n_units: int = 10) -> Group:
    s = summary
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("items", f"{s.items} ({s.ok} ok, {s.errors} failed)")
    if s.ok:
        facts.add_row("mean time", f"{s.seconds / s.ok:.3f}s per item ({s.seconds:.1f}s in all)")
        facts.add_row("mean forward passes", f"{s.forward / s.ok:.1f} per item")
        facts.add_row("method/granularity", ", ".join(f"{k} ({v})" for k, v in s.methods.most_common()))
        facts.add_row("model", ", ".join(f"{k} ({v})" for k, v in s.models.most_common()))
        if s.contrastive:
            facts.add_row("contrastive", f"{s.contrastive} of {s.ok} (log p(target) - log p(contrast))")
        if s.generated:
            facts.add_row("generated targets", f"{s.generated} of {s.ok} (the model's own answers)")
    parts: list[Any] = [facts]
    if s.top_units:
        words = Table(title=f"most frequent top-{TOP_PER_ITEM} units", title_justify="left")
        words.add_column("unit")
        words.add_column("items", justify="right")
        words.add_column("share", justify="right")
        for text, count in s.top_units.most_common(n_units):
            words.add_row(repr(text), str(count), f"{count / s.ok:.0%}")
        parts.append(words)
    if s.checked:
        parts.append(_faithfulness_table(s))
    if s.first_errors:
        errors = Table(title=f"first {len(s.first_errors)} of {s.errors} errors", title_justify="left")
        errors.add_column("line", justify="right")
        errors.add_column("id")
        errors.add_column("error", overflow="fold")
        for line, item_id, message in s.first_errors:
            errors.add_row("" if line is None else str(line), item_id, message)
        parts.append(errors)
    return Group(*parts)


def _faithfulness_table(s: Summary) -> Table:
    table = Table(title=f"faithfulness, mean over {s.checked} checked items", title_justify="left")
    table.add_column("figure")
    table.add_column("mean", justify="right")
    table.add_column("random ordering", justify="right")
    table.add_column("items", justify="right")
    for name, reference, label in FAITHFULNESS_MEANS:
        mean = s.faithfulness_mean(name)
        if mean is None:
            continue
        random_mean = s.faithfulness_mean(reference) if reference else None
        shown = "" if random_mean is None else f"{random_mean:+.3f}"
        table.add_row(label, f"{mean:+.3f}", shown, str(s.faithfulness_counts[name]))
    return table
