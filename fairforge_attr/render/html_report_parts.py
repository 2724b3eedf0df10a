"""The pieces of ``ffattr report``'s item list: one entry per row, the controls, the script."""

from __future__ import annotations

from html import escape
from typing import Any

from ..io.schema import row_to_result
from .html import item_html, top_k_html

SNIPPET = 90

# Search (id and text, case-insensitive) and status filter over every item, one page of
# matches shown at a time; an item's drawing is copied out of its <template> when first opened.
# "#q=TEXT" in the address starts with that search. window.ffReport lets a test drive it.
SCRIPT = r"""
(function(){
  var items = Array.prototype.slice.call(document.querySelectorAll('#ff-items > details.item'));
  var index = JSON.parse(document.getElementById('ff-index').textContent);
  var search = document.getElementById('ff-search'), status = document.getElementById('ff-status');
  var info = document.getElementById('ff-info'), prev = document.getElementById('ff-prev');
  var next = document.getElementById('ff-next'), openAll = document.getElementById('ff-open');
  var size = parseInt(document.getElementById('ff-items').getAttribute('data-page-size'), 10);
  var matches = [], page = 0;
  function render(el){
    if (el.getAttribute('data-rendered')) return;
    var t = el.querySelector('template');
    if (t) el.appendChild(t.content.cloneNode(true));
    el.setAttribute('data-rendered', '1');
  }
  function show(){
    var start = page * size, end = Math.min(start + size, matches.length), visible = {};
    for (var i = start; i < end; i++) visible[matches[i]] = true;
    for (var j = 0; j < items.length; j++) items[j].hidden = !visible[j];
    info.textContent = matches.length ? ('items ' + (start + 1) + '-' + end + ' of ' + matches.length +
      (matches.length < items.length ? ' matching (' + items.length + ' in all)' : '')) : 'no item matches';
    prev.disabled = page === 0; next.disabled = end >= matches.length;
  }
  function filter(){
    var q = search.value.trim().toLowerCase(), s = status.value;
    matches = [];
    for (var i = 0; i < items.length; i++) {
      if ((s === 'all' || items[i].getAttribute('data-status') === s) && (!q || index[i].indexOf(q) >= 0)) matches.push(i);
    }
    page = 0; show();
  }
  items.forEach(function(el){ el.addEventListener('toggle', function(){ if (el.open) render(el); }); });
  search.addEventListener('input', filter);
  status.addEventListener('change', filter);
  prev.addEventListener('click', function(){ if (page > 0) { page--; show(); } });
  next.addEventListener('click', function(){ if ((page + 1) * size < matches.length) { page++; show(); } });
  openAll.addEventListener('click', function(){ items.forEach(function(el){ if (!el.hidden) { el.open = true; render(el); } }); });
  var m = /[#&]q=([^&]*)/.exec(location.hash);
  if (m) search.value = decodeURIComponent(m[1]);
  window.ffReport = {filter: filter, render: render, matches: function(){ return matches.slice(); }};
  filter();
})();
"""


def controls_html(page_size: int) -> str:
    return (
        "<div class='controls' role='search'>"
        "<label>Search <input id='ff-search' type='search' placeholder='id or text' autocomplete='off'></label> "
        "<label>Status <select id='ff-status'><option value='all'>all</option><option value='ok'>ok</option>"
        "<option value='error'>error</option></select></label> "
        "<button type='button' id='ff-prev'>previous</button> <span id='ff-info' aria-live='polite'></span> "
        "<button type='button' id='ff-next'>next</button> "
        "<button type='button' id='ff-open'>open all on this page</button></div>"
        "<noscript><p class='note'>JavaScript is off: every item is listed, but search, pages and the "
        "drawings of the items need it.</p></noscript>"
        f"<p class='note'>Open an item to draw it. {page_size} items per page.</p>"
    )


def _search_text(row: dict[str, Any]) -> str:
    parts = [str(row.get("id") or ""), row.get("target") or ""]
    parts += [m.get("content") or "" for m in row.get("messages") or []]
    if not row.get("messages"):
        parts.append(row.get("prompt") or "")
        parts += [u["text"] for u in row.get("units") or []]
    parts.append(row.get("error") or "")
    return " \n".join(parts).lower()


def _summary_line(row: dict[str, Any]) -> str:
    ok = row.get("status") == "ok"
    badge = "<span class='badge ok'>ok</span>" if ok else "<span class='badge error'>error</span>"
    bits = [f"{badge} <strong>{escape(str(row.get('id')))}</strong>"]
    if row.get("method"):
        bits.append(escape(f"{row['method']}/{row.get('granularity')}"))
    if ok:
        target = row.get("target") or ""
        bits.append("target: " + escape(target if len(target) <= SNIPPET else target[: SNIPPET - 1] + "…"))
        units = sorted(row.get("units") or [], key=lambda u: (-abs(u["score"]), u["position"]))[:3]
        if units:
            bits.append("top: " + escape(", ".join(u["text"].strip() or repr(u["text"]) for u in units)))
        faithfulness = row.get("faithfulness") or {}
        if faithfulness.get("lds") is not None:
            bits.append(f"LDS {faithfulness['lds']:.2f}")
    else:
        error = row.get("error") or "unknown error"
        bits.append(
            f"<span class='err'>{escape(error if len(error) <= SNIPPET else error[: SNIPPET - 1] + '…')}</span>"
        )
    return " · ".join(bits)


def _body(row: dict[str, Any], layout: str, top_k: int) -> str:
    if row.get("status") != "ok":
        where = f"line {row['line']}: " if row.get("line") is not None else ""
        return f"<p class='err'>{escape(where + (row.get('error') or 'unknown error'))}</p>"
    result = row_to_result(row)
    if layout == "long":  # the long layout keeps units but not the prompt they came from
        note = "<p class='note'>long layout: no prompt kept, so no heatmap</p>"
        return f"{note}<p>target: {escape(result.target)}</p>{top_k_html(result, top_k)}"
    return item_html(result, top_k)


def item_entry(row: dict[str, Any], n: int, layout: str, top_k: int, *, hidden: bool) -> tuple[str, str]:
    """(the item's HTML entry, its lower-case search text)."""
    status = "ok" if row.get("status") == "ok" else "error"
    html = (
        f"<details class='item' id='item-{n}' data-id='{escape(str(row.get('id')), quote=True)}' "
        f"data-status='{status}'{' hidden' if hidden else ''}><summary>{_summary_line(row)}</summary>"
        f"<template>{_body(row, layout, top_k)}</template></details>"
    )
    return html, _search_text(row)


__all__ = ["SCRIPT", "controls_html", "item_entry"]
