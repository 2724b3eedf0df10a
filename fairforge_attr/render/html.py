"""A self-contained HTML page of a result (inline styles, no scripts, no external assets)."""

from __future__ import annotations

from html import escape

from ..results import AttributionResult
from .colors import score_hex
from .segments import message_texts, pieces, refinement_note

_CSS = """
body{font-family:system-ui,sans-serif;max-width:60em;margin:1em auto;line-height:1.7}
.msg{border:1px solid #ddd;border-radius:6px;padding:.5em .8em;margin:.5em 0;white-space:pre-wrap}
.role{font-weight:600;color:#555;font-size:.85em;display:block;white-space:normal}
.u{border-radius:3px;padding:0 1px}
.meta{color:#777;font-size:.85em}
table{border-collapse:collapse;margin-top:1em}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}
"""


def to_html(result: AttributionResult, top_k: int = 10) -> str:
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>fairforge_attr</title><style>{_CSS}</style></head><body>"
    ]
    for i, (role, content) in enumerate(message_texts(result)):
        parts.append(f"<div class='msg'><span class='role'>{escape(role)}</span>")
        for piece, a in pieces(result, i, content):
            if a is None:
                parts.append(escape(piece))
            elif a.refined is False:
                parts.append(f"<span class='u' style='color:#999' title='not refined'>{escape(piece)}</span>")
            else:
                parts.append(
                    f"<span class='u' style='background:{score_hex(a.normalized_score)}' "
                    f"title='score {a.score:+.4f} (normalized {a.normalized_score:+.3f})'>{escape(piece)}</span>"
                )
        parts.append("</div>")
    parts.append(f"<div class='msg'><span class='role'>target</span>{escape(result.target)}</div>")
    parts.append("<table><tr><th>rank</th><th>unit</th><th>role</th><th>score</th><th>normalized</th></tr>")
    for rank, a in enumerate(result.get_top_k(top_k), 1):
        parts.append(
            f"<tr><td>{rank}</td><td>{escape(a.text)}</td><td>{escape(a.role)}</td>"
            f"<td>{a.score:+.4f}</td><td>{a.normalized_score:+.3f}</td></tr>"
        )
    parts.append(
        "</table><table><tr><th>role</th><th>units</th><th>sum of scores</th><th>share of |score|</th></tr>"
    )
    whole = sum(t.abs_score for t in result.role_totals) or 1.0
    for t in result.role_totals:
        parts.append(
            f"<tr><td>{escape(t.role)}</td><td>{t.n_units}</td><td>{t.score:+.4f}</td>"
            f"<td>{t.abs_score / whole:.0%}</td></tr>"
        )
    m = result.metadata
    parts.append(
        f"</table><p class='meta'>{escape(result.method.value)} · {escape(result.granularity.value)} · "
        f"{escape(m.model)} · {m.n_forward} forward · {m.compute_time_seconds:.2f}s · "
        + (f"{escape(refinement_note(result))} · " if m.refinement is not None else "")
        + f"log p(target) = {m.target_log_prob:.3f}. Red raised the target's log-probability, blue lowered it.</p>"
    )
    parts.append("</body></html>")
    return "".join(parts)
