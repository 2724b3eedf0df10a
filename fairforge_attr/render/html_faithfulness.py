"""A result's faithfulness in HTML: the figures against random, and the deletion / insertion
curves as inline SVG (no xmlns, no external reference: valid inside an HTML document)."""

from __future__ import annotations

from html import escape

from ..faithfulness import Faithfulness
from ..faithfulness.probes import units_at
from .faithfulness import ROWS, fmt

WIDTH, HEIGHT, PAD = 260, 150, 28
DELETION, INSERTION, AXIS = "#b2182b", "#1f5fa0", "#595959"
# Shared by every chart of a page (html.CSS includes it), so each chart carries only its points.
CSS = (
    f"svg text{{fill:currentColor;font-size:11px}}svg polyline{{fill:none;stroke-width:2}}"
    f".dl{{stroke:{DELETION}}}.il{{stroke:{INSERTION}}}.rd{{stroke-dasharray:4 3}}.ax{{fill:none;stroke:{AXIS}}}"
)


def _points(xs: list[float], ys: list[float], low: float, high: float) -> str:
    span = (high - low) or 1.0
    return " ".join(
        f"{PAD + x * (WIDTH - PAD - 8):.0f},{8 + (1 - (y - low) / span) * (HEIGHT - PAD - 8):.0f}"
        for x, y in zip(xs, ys)
    )


def curves_svg(f: Faithfulness, n_units: int) -> str:
    """f (nats) against the fraction of units moved: deletion and insertion by |score| (solid)
    and by random orderings (dashed)."""
    xs = [units_at(p, n_units) / n_units for p in f.fractions] if n_units else list(f.fractions)
    curves = (
        (f.deletion_curve, "dl"),
        (f.insertion_curve, "il"),
        (f.random_deletion_curve, "dl rd"),
        (f.random_insertion_curve, "il rd"),
    )
    values = [v for c, _ in curves for v in c]
    low, high = min(values), max(values)
    lines = "".join(f"<polyline class='{cls}' points='{_points(xs, c, low, high)}'/>" for c, cls in curves)
    axes = (
        f"<path class='ax' d='M{PAD} 8V{HEIGHT - PAD}H{WIDTH - 8}'/>"
        f"<text x='{PAD}' y='{HEIGHT - 10}'>0%</text><text x='{WIDTH - 34}' y='{HEIGHT - 10}'>100%</text>"
        f"<text x='{PAD + 60}' y='{HEIGHT - 10}'>units moved</text>"
        f"<text x='2' y='16'>{high:.1f}</text><text x='2' y='{HEIGHT - PAD}'>{low:.1f}</text>"
    )
    label = "deletion (red) and insertion (blue) curves of f; dashed: random orderings"
    return (
        f"<svg role='img' aria-label='{label}' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}'><title>{label}</title>{axes}{lines}</svg>"
    )


def faithfulness_html(f: Faithfulness, n_units: int) -> str:
    """The figures next to random and the gain over it, and the curves."""
    rows = [
        "<table class='faith'><caption class='note'>faithfulness: gain &gt; 0 is better than random</caption>"
        "<tr><th>figure</th><th class='n'>scores</th><th class='n'>random</th><th class='n'>gain</th><th>better</th></tr>"
    ]
    for label, field, random_field, gain_field, better, unit in ROWS:
        rows.append(
            f"<tr><td>{label}</td><td class='n'>{fmt(getattr(f, field), unit=unit)}</td>"
            f"<td class='n'>{fmt(getattr(f, random_field), unit=unit)}</td>"
            f"<td class='n'>{fmt(getattr(f, gain_field), '+.3f')}</td><td>{better}</td></tr>"
        )
    rows.append("</table>")
    note = (
        f"f_full {f.f_full:.3f}, f_empty {f.f_empty:.3f} nats · LDS over {f.n_ablations} ablations · "
        f"random: mean of {f.n_random} orderings · top-{f.top_k}: comprehensiveness "
        f"{fmt(f.comprehensiveness_top_k)} (random {fmt(f.random_comprehensiveness_top_k)}), sufficiency "
        f"{fmt(f.sufficiency_top_k)} (random {fmt(f.random_sufficiency_top_k)}) nats · "
        f"removal: {f.removal} · {f.n_sequences} sequences, {f.compute_time_seconds:.2f}s"
    )
    return (
        f"<h3>Faithfulness</h3><div class='curves'>{''.join(rows)}{curves_svg(f, n_units)}</div>"
        f"<p class='note'>{escape(note)}</p>"
    )


__all__ = ["curves_svg", "faithfulness_html"]
