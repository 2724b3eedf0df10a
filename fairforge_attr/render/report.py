"""``ffattr report``: one self-contained HTML file for a whole result file.

A summary (model, method, counts, errors, the faithfulness distribution, the most frequent top
units), then every item. It stays usable with thousands of items: each item is a closed
``<details>`` whose drawing (heatmap, top-k, matrix, faithfulness: the same functions as the
single-item page) waits in an inert ``<template>`` until it is opened, and the list shows one
page of items at a time, filtered by a search over ids and text and by status. The rows are
read twice (summary, then items) and written as they come, so memory does not grow with the
file. No network: inline CSS, SVG and a small script.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from ..stats import quantile
from .html import legend_html, page
from .html_report_parts import SCRIPT, controls_html, item_entry
from .summary import Summary

PAGE_SIZE = 50
FIGURES = (  # (field, label, what is better)
    ("lds", "LDS", "higher"),
    ("deletion_gain", "deletion gain", "higher"),
    ("insertion_gain", "insertion gain", "higher"),
    ("comprehensiveness", "comprehensiveness (nats)", "higher"),
    ("sufficiency", "sufficiency (nats)", "lower"),
)
HIST_BINS = 10


@dataclass
class ReportSummary:
    """Pass one: counts (``Summary``, as ``ffattr show`` prints) and the faithfulness values."""

    counts: Summary = field(default_factory=Summary)
    figures: dict[str, list[float]] = field(default_factory=lambda: {f: [] for f, _, _ in FIGURES})

    def add(self, row: dict[str, Any]) -> None:
        self.counts.add(row)
        faithfulness = row.get("faithfulness") if row.get("status") == "ok" else None
        for name in self.figures:
            value = (faithfulness or {}).get(name)
            if value is not None:
                self.figures[name].append(float(value))


def _histogram_svg(values: list[float], label: str) -> str:
    """Bars of the values over [-1, 1] (LDS is a correlation)."""
    counts = [0] * HIST_BINS
    for v in values:
        counts[min(HIST_BINS - 1, max(0, int((v + 1) / 2 * HIST_BINS)))] += 1
    peak = max(counts) or 1
    width, height, bar = 260, 110, 24
    bars = "".join(
        f"<rect x='{4 + i * bar}' y='{8 + (1 - c / peak) * 70:.1f}' width='{bar - 3}' height='{c / peak * 70:.1f}' "
        f"fill='#1f5fa0'><title>{-1 + i * 2 / HIST_BINS:+.1f} to {-1 + (i + 1) * 2 / HIST_BINS:+.1f}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    axis = (
        "<text x='2' y='98' fill='currentColor'>-1</text><text x='118' y='98' fill='currentColor'>0</text>"
        "<text x='236' y='98' fill='currentColor'>+1</text>"
    )
    return (
        f"<svg role='img' aria-label='{escape(label)}' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'><title>{escape(label)}</title>{bars}{axis}</svg>"
    )


def _f(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def summary_html(s: ReportSummary, source: str) -> str:
    c = s.counts
    facts = [
        ("file", source),
        ("items", f"{c.items} ({c.ok} ok, {c.errors} failed)"),
        ("model", ", ".join(f"{k} ({v})" for k, v in c.models.most_common()) or "-"),
        ("method / granularity", ", ".join(f"{k} ({v})" for k, v in c.methods.most_common()) or "-"),
    ]
    if c.ok:
        facts.append(
            ("mean cost", f"{c.forward / c.ok:.1f} forward passes, {c.seconds / c.ok:.3f}s per item")
        )
    out = ["<section id='summary'><h2>Summary</h2><table>"]
    out += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts]
    out.append("</table>")
    if any(s.figures.values()):
        out.append(
            "<h3>Faithfulness</h3><table><tr><th>figure</th><th class='n'>items</th><th class='n'>mean</th>"
            "<th class='n'>p10</th><th class='n'>median</th><th class='n'>p90</th><th>better</th></tr>"
        )
        for name, label, better in FIGURES:
            values = s.figures[name]
            mean = sum(values) / len(values) if values else None
            out.append(
                f"<tr><td>{escape(label)}</td><td class='n'>{len(values)}</td><td class='n'>{_f(mean)}</td>"
                f"<td class='n'>{_f(quantile(values, 0.1))}</td><td class='n'>{_f(quantile(values, 0.5))}</td>"
                f"<td class='n'>{_f(quantile(values, 0.9))}</td><td>{better}</td></tr>"
            )
        out.append("</table>")
        if s.figures["lds"]:
            out.append(_histogram_svg(s.figures["lds"], "distribution of LDS over the items"))
    else:
        out.append(
            "<p class='note'>No faithfulness figures: compute them with ffattr batch --faithfulness.</p>"
        )
    if c.top_units:
        out.append(
            "<h3>Most frequent top-3 units</h3><table><tr><th>unit</th><th class='n'>items</th><th class='n'>share</th></tr>"
        )
        out += [
            f"<tr><td>{escape(text)}</td><td class='n'>{n}</td><td class='n'>{n / max(c.ok, 1):.0%}</td></tr>"
            for text, n in c.top_units.most_common(15)
        ]
        out.append("</table>")
    if c.first_errors:
        out.append(
            f"<h3>First {len(c.first_errors)} of {c.errors} errors</h3><table><tr><th>line</th><th>id</th><th>error</th></tr>"
        )
        out += [
            f"<tr><td class='n'>{'' if line is None else line}</td><td>{escape(item_id)}</td><td class='err'>{escape(msg)}</td></tr>"
            for line, item_id, msg in c.first_errors
        ]
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


def _json_script(element_id: str, value: Any) -> str:
    # "<" escaped: no "</script>" or "<!--" inside the text can end the element early.
    text = json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")
    return f"<script type='application/json' id='{element_id}'>{text}</script>"


def write_report(
    rows: Callable[[], Iterator[dict[str, Any]]],
    out: Any,
    *,
    source: str,
    layout: str = "wide",
    top_k: int = 10,
    page_size: int = PAGE_SIZE,
) -> int:
    """Write the report of the rows that ``rows()`` yields (called twice) to the text stream
    ``out``; returns the number of items."""
    summary = ReportSummary()
    for row in rows():
        summary.add(row)
    title = f"fairforge_attr report · {Path(source).name}"
    head, tail = page(title, "\x00", SCRIPT).split("\x00")
    out.write(head)
    out.write(f"<h1>{escape(title)}</h1>{legend_html()}{summary_html(summary, source)}")
    out.write(f"<section id='items'><h2>Items</h2>{controls_html(page_size)}")
    out.write(f"<div id='ff-items' data-page-size='{page_size}'>")
    index: list[str] = []
    for n, row in enumerate(rows()):
        html, search = item_entry(row, n, layout, top_k, hidden=n >= page_size)
        out.write(html)
        index.append(search)
    out.write("</div></section>")
    out.write(_json_script("ff-index", index))
    out.write(tail)
    return len(index)


__all__ = ["PAGE_SIZE", "ReportSummary", "summary_html", "write_report"]
