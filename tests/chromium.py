"""Headless Chromium for the HTML tests: load a page with network off, let a test script drive
it, read the DOM back. Debian's ``chromium`` (``.ci/run`` installs it; tests install nothing)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # every host name fails to resolve: a page that needed the network would show it
    "--host-resolver-rules=MAP * ~NOTFOUND",
]

# Reports the smallest WCAG contrast between any visible text and the background behind it.
CONTRAST_JS = r"""
function ffParse(c){ var m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  var p = m[1].split(',').map(parseFloat); return {r:p[0], g:p[1], b:p[2], a: p.length > 3 ? p[3] : 1}; }
function ffLum(c){ return [c.r, c.g, c.b].map(function(v){ v /= 255;
  return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
  .reduce(function(s, v, i){ return s + v * [0.2126, 0.7152, 0.0722][i]; }, 0); }
function ffBackground(el){ for (; el; el = el.parentElement) {
  var c = ffParse(getComputedStyle(el).backgroundColor); if (c && c.a > 0) return c; }
  return {r:255, g:255, b:255, a:1}; }
function ffMinContrast(){
  var worst = {ratio: 99, where: ''};
  document.querySelectorAll('body *').forEach(function(el){
    if (!el.getClientRects().length || ['SCRIPT','STYLE','TEMPLATE','TITLE'].indexOf(el.tagName) >= 0) return;
    var own = Array.prototype.some.call(el.childNodes, function(n){ return n.nodeType === 3 && n.textContent.trim(); });
    if (!own) return;
    var fg = ffParse(getComputedStyle(el).color), bg = ffBackground(el);
    var a = ffLum(fg), b = ffLum(bg), ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < worst.ratio) worst = {ratio: ratio, where: el.tagName + ' ' + el.textContent.slice(0, 40)};
  });
  return worst;
}
"""


def chromium_binary() -> str:
    """The browser, or a skip that says why; under FFATTR_REQUIRE_CHROMIUM=1 (set by .ci/run,
    which installs it) a missing browser fails the test instead."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    reason = "no chromium binary on PATH (Debian: apt-get install -y chromium; .ci/run installs it)"
    if os.environ.get("FFATTR_REQUIRE_CHROMIUM") == "1":
        pytest.fail(reason + ", and FFATTR_REQUIRE_CHROMIUM=1 says this run must not skip")
    pytest.skip(reason)
    raise AssertionError("unreachable")


def run_page(page: Path, script: str, timeout: float = 180.0) -> tuple[dict[str, Any], str]:
    """Load ``page`` with ``script`` appended (it must leave JSON in a <pre id='test-out'>);
    return that JSON and the whole DOM."""
    binary = chromium_binary()
    text = page.read_text(encoding="utf-8")
    driven = page.with_name(page.stem + ".driven.html")
    driven.write_text(
        text.replace("</body>", f"<script>{CONTRAST_JS}{script}</script></body>"), encoding="utf-8"
    )
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", driven.as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="test-out">(.*?)</pre>', done.stdout, re.S)
    assert found, "the test script left no output: " + done.stderr[-2000:]
    return json.loads(html.unescape(found.group(1))), done.stdout
