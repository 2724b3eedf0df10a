"""Self-contained HTML of a result: the page of ``explain --output x.html`` and every item of
``ffattr report`` are drawn by the same functions, so they look the same.

No external assets (no fonts, stylesheets, scripts or images from the network): inline CSS
and inline SVG only, and the single-item page has no script at all. Text colours meet WCAG's
4.5:1 contrast: the page's palette is chosen for it, and text on a score's colour is black or
white, whichever contrasts more (``colors.text_hex``). ``to_fragment`` is the same view as a
``<div>`` whose styles apply inside it only, for a notebook cell (``AttributionResult._repr_html_``).
"""

from __future__ import annotations

import re
from html import escape

from ..results import AttributionResult
from .colors import score_hex, score_rgb, text_hex
from .html_faithfulness import CSS as CHART_CSS
from .html_faithfulness import faithfulness_html
from .matrix import scale_of
from .segments import context, footer_parts, message_texts, pieces

# The page palette (contrast on white: FG 17:1, MUTED 7:1, ERROR 7.3:1, OK_BG with white 7.9:1).
FG, MUTED, BG, PANEL, BORDER, RULE = "#1a1a1a", "#595959", "#ffffff", "#f3f4f6", "#8a8f98", "#d5d9df"
ACCENT, ERROR, OK_BG = "#0b57a4", "#b00020", "#1b5e20"
MATRIX_COLUMNS = 40  # the per-target-token matrix keeps the strongest units beyond this

CSS = f"""
:root{{color-scheme:light}}
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:{FG};background:{BG};max-width:72em;margin:1em auto;padding:0 1em;line-height:1.6}}
h1{{font-size:1.4em;margin:.4em 0}}h2{{font-size:1.15em;margin:1em 0 .3em}}h3{{font-size:1em;margin:.8em 0 .2em}}
.msg{{border:1px solid {BORDER};border-radius:6px;padding:.4em .8em;margin:.5em 0;white-space:pre-wrap;background:{BG}}}
.role{{font-weight:600;color:{MUTED};font-size:.85em;display:block;white-space:normal}}
.u{{border-radius:3px;padding:0 1px}}
.meta,.note{{color:{MUTED};font-size:.9em}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{padding:2px 8px;border-bottom:1px solid {RULE};text-align:left;vertical-align:top}}
th{{font-weight:600}}td.n,th.n{{text-align:right;font-variant-numeric:tabular-nums}}
.matrix td{{text-align:right;font-variant-numeric:tabular-nums;font-size:.85em;border:1px solid {BG}}}
.matrix th{{font-size:.85em;font-weight:600}}
.legend{{display:flex;flex-wrap:wrap;align-items:center;gap:.5em;margin:.6em 0;font-size:.9em}}
.legend .scale span{{display:inline-block;min-width:3.2em;text-align:center;padding:0 .2em}}
.err{{color:{ERROR}}}.unrefined{{color:{MUTED}}}
.badge{{display:inline-block;border-radius:3px;padding:0 .4em;font-size:.85em;font-weight:600;color:#ffffff}}
.badge.ok{{background:{OK_BG}}}.badge.error{{background:{ERROR}}}
a{{color:{ACCENT}}}
.curves{{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}}
"""

LEGEND_STEPS = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)
# Colours come in steps of 1/STEPS of the scale, one CSS class each (c-20 ... c20), so a unit
# is `class='u c7'` rather than two inline colours: a report of thousands of items is a third
# smaller, and nobody sees a difference of 0.05 on the scale.
STEPS = 20


def color_class(normalized: float) -> str:
    """The CSS class of a normalised score's colour step."""
    return f"c{round(max(-1.0, min(1.0, normalized)) * STEPS)}"


def _color_css() -> str:
    rules = []
    for k in range(-STEPS, STEPS + 1):
        rgb = score_rgb(k / STEPS)
        rules.append(f".c{k}{{background:{score_hex(k / STEPS)};color:{text_hex(rgb)}}}")
    return "".join(rules)


CSS += _color_css() + CHART_CSS


def colored(text: str, normalized: float, title: str = "", cls: str = "u") -> str:
    """A span on a score's colour step, with the text colour that contrasts with it."""
    tip = f" title='{escape(title, quote=True)}'" if title else ""
    return f"<span class='{cls} {color_class(normalized)}'{tip}>{escape(text)}</span>"


def legend_html() -> str:
    """The colour scale: what blue, white and red mean."""
    cells = "".join(colored(f"{v:+.2f}" if v else "0", v, cls="") for v in LEGEND_STEPS)
    return (
        "<div class='legend' role='note'><strong>Colour:</strong>"
        f"<span class='scale' aria-label='score colour scale'>{cells}</span>"
        "<span>blue lowered log p(target), red raised it; score / largest |score| of the item</span></div>"
    )


def heatmap_html(result: AttributionResult) -> str:
    """Every message with its role, each unit on its score's colour."""
    parts = []
    for i, (role, content) in enumerate(message_texts(result)):
        parts.append(f"<div class='msg'><span class='role'>{escape(role)}</span>")
        for piece, a in pieces(result, i, content):
            if a is None:
                parts.append(escape(piece))
            elif a.refined is False:
                parts.append(f"<span class='u unrefined' title='not refined'>{escape(piece)}</span>")
            else:
                title = f"#{a.position} score {a.score:+.4f}"
                parts.append(colored(piece, a.normalized_score, title))
        parts.append("</div>")
    note = " (generated)" if result.metadata.target_generated else ""
    parts.append(f"<div class='msg'><span class='role'>target{note}</span>{escape(result.target)}</div>")
    if result.contrast is not None:
        parts.append(
            "<div class='msg'><span class='role'>contrast (and not this answer)</span>"
            f"{escape(result.contrast)}</div><p class='note'>The scores explain log p(target) − "
            "log p(contrast): red made the model prefer the target to the contrast, blue the "
            "contrast to the target.</p>"
        )
    return "".join(parts)


def top_k_html(result: AttributionResult, k: int = 10) -> str:
    """The k strongest units; position, role and a few words of context tell repeated units
    apart. ``k`` of 0 (``--top-k 0``) leaves the table out."""
    if k <= 0:
        return ""
    texts = message_texts(result)
    rows = [
        "<table class='topk'><caption class='note'>top units by |score|</caption><tr><th class='n'>rank</th>"
        "<th>unit</th><th class='n'>position</th><th>role</th><th>context</th>"
        "<th class='n'>score</th><th class='n'>normalized</th></tr>"
    ]
    for rank, a in enumerate(result.get_top_k(k), 1):
        content = texts[a.message_index][1] if a.message_index < len(texts) else ""
        rows.append(
            f"<tr><td class='n'>{rank}</td><td>{colored(a.text, a.normalized_score)}</td>"
            f"<td class='n'>{a.position}</td><td>{escape(a.role)}</td>"
            f"<td>{escape(context(content, a.char_start, a.char_end))}</td>"
            f"<td class='n'>{a.score:+.4f}</td><td class='n'>{a.normalized_score:+.3f}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def roles_html(result: AttributionResult) -> str:
    """The scores summed per role (system, user, tool, ...) and each role's share of |score|."""
    rows = [
        "<table class='roles'><caption class='note'>per role</caption><tr><th>role</th>"
        "<th class='n'>units</th><th class='n'>sum of scores</th><th class='n'>share of |score|</th></tr>"
    ]
    whole = sum(t.abs_score for t in result.role_totals) or 1.0
    for t in result.role_totals:
        rows.append(
            f"<tr><td>{escape(t.role)}</td><td class='n'>{t.n_units}</td>"
            f"<td class='n'>{t.score:+.4f}</td><td class='n'>{t.abs_score / whole:.0%}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def matrix_html(result: AttributionResult, max_columns: int = MATRIX_COLUMNS) -> str:
    """The per-target-token matrix: a row per target token, a column per unit, each cell on its
    colour (normalised by the matrix's largest |value|). Beyond ``max_columns`` units, the
    columns keep the strongest units, in prompt order."""
    ptt = result.per_target_token
    if ptt is None:
        return ""
    n = len(result.attributions)
    columns = list(range(n))
    title = "per target token: each row is one target token's log-probability, each column a unit"
    if n > max_columns:
        strongest = sorted(range(n), key=lambda i: -abs(result.attributions[i].score))[:max_columns]
        columns = sorted(strongest)
        title += f" (the {max_columns} of {n} units with the largest |score|)"
    flat = [v for row in ptt.scores for v in row]
    peak = max((abs(v) for v in flat), default=0.0) or 1.0
    exponent = scale_of(flat)  # cells of any scale read as +1.23, the factor in the caption
    if exponent:
        title += f"; values ×1e{exponent}"
    head = "".join(
        f"<th>{escape(result.attributions[i].text.strip() or repr(result.attributions[i].text))}</th>"
        for i in columns
    )
    rows = [
        f"<table class='matrix'><caption class='note'>{escape(title)}</caption><tr><th>target</th>{head}</tr>"
    ]
    for token, values in zip(ptt.target_tokens, ptt.scores):
        cells = "".join(
            f"<td class='{color_class(values[i] / peak)}'>{values[i] / 10.0**exponent:+.2f}</td>"
            for i in columns
        )
        rows.append(f"<tr><th>{escape(token.strip() or repr(token))}</th>{cells}</tr>")
    rows.append("</table>")
    return "".join(rows)


def meta_html(result: AttributionResult) -> str:
    parts = footer_parts(result)
    parts.insert(3, f"{result.metadata.n_units} units")
    return f"<p class='meta'>{escape(' · '.join(parts))}</p>"


def item_html(result: AttributionResult, top_k: int = 10) -> str:
    """One result: heatmap, top-k with positions, per-role totals, per-target-token matrix,
    faithfulness."""
    body = [heatmap_html(result), top_k_html(result, top_k), roles_html(result), matrix_html(result)]
    if result.faithfulness is not None:
        body.append(faithfulness_html(result.faithfulness, len(result.attributions)))
    body.append(meta_html(result))
    return "".join(body)


def page(title: str, body: str, script: str = "") -> str:
    """A complete HTML document with the shared style."""
    js = f"<script>{script}</script>" if script else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}{js}</body></html>"
    )


def _scoped(css: str) -> str:
    """The page's rules, each selector limited to ``.ffattr`` (``body`` and ``:root`` become the
    fragment's own ``<div>``), so a fragment styles nothing around it."""

    def scope(selector: str) -> str:
        selector = selector.strip()
        return ".ffattr" if selector in ("body", ":root") else f".ffattr {selector}"

    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", css)
    return "".join(f"{','.join(scope(s) for s in sel.split(','))}{{{body}}}" for sel, body in rules)


SCOPED_CSS = _scoped(CSS)


def to_fragment(result: AttributionResult, top_k: int = 10) -> str:
    """The view as a ``<div>`` with its own scoped styles, for a notebook cell."""
    return f"<div class='ffattr'><style>{SCOPED_CSS}</style>{legend_html()}{item_html(result, top_k)}</div>"


def to_html(result: AttributionResult, top_k: int = 10) -> str:
    """A self-contained page for one result (no scripts, no external assets)."""
    title = f"fairforge_attr · {result.method.value} · {result.granularity.value}"
    return page(title, f"<h1>{escape(title)}</h1>{legend_html()}{item_html(result, top_k)}")


__all__ = ["CSS", "item_html", "legend_html", "page", "to_fragment", "to_html"]
