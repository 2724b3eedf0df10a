"""The per-target-token view: one row per input unit, one column per target token.

Units go on the rows because their labels are words (up to a sentence) while target tokens are
short; when the target has more tokens than fit the width, the columns continue in a further
table below, so no token is dropped and no header is cut to a stub. Numbers share one scale:
when the largest |value| is far from 1, every cell is divided by a power of ten stated in the
title (``×1e-4``), so small gradients do not all read ``+0.00``.
"""

from __future__ import annotations

import math

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..results import AttributionResult
from .colors import score_rgb, text_hex

CELL = 5  # "+9.99": one sign, one digit, two decimals
TOKEN_LABEL = 10  # longest target-token header before it is cut
UNIT_LABEL = 18
POS = 4
MAX_ROWS = 30  # units shown; beyond that the strongest, in prompt order


def _label(text: str, width: int) -> str:
    shown = text.strip() or repr(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def scale_of(values: list[float]) -> int:
    """The power of ten every cell is divided by: 0 when the largest |value| is in [0.1, 100),
    else its own exponent, so cells read like ``+1.23``."""
    peak = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if peak == 0.0:
        return 0
    exponent = math.floor(math.log10(peak))
    return 0 if -1 <= exponent <= 1 else exponent


def _rows(result: AttributionResult) -> tuple[list[int], str]:
    n_units = len(result.attributions)
    if n_units <= MAX_ROWS:
        return list(range(n_units)), ""
    strongest = sorted(range(n_units), key=lambda i: -abs(result.attributions[i].score))[:MAX_ROWS]
    return sorted(strongest), f"; the {MAX_ROWS} of {n_units} units with the largest |score|"


def _column_chunks(labels: list[str], room: int) -> list[list[int]]:
    """Split the target tokens into runs of columns that fit ``room`` characters."""
    chunks: list[list[int]] = [[]]
    used = 0
    for j, label in enumerate(labels):
        need = max(CELL + 1, len(label)) + 2  # the cell, its sign's slack, padding
        if chunks[-1] and used + need > room:
            chunks.append([])
            used = 0
        chunks[-1].append(j)
        used += need
    return chunks


def per_target_token_table(result: AttributionResult, width: int = 100) -> Group:
    """Cells hold each unit's score for one target token, coloured on the same diverging scale
    as the heatmap (normalised by the largest |value| of the matrix)."""
    ptt = result.per_target_token
    if ptt is None:
        raise ValueError("this result has no per-target-token scores (compute it with per_target_token)")
    rows, rows_note = _rows(result)
    flat = [v for row in ptt.scores for v in row]
    exponent = scale_of(flat)
    factor = 10.0**exponent
    peak = max((abs(v) for v in flat), default=0.0) or 1.0
    tokens = [_label(t, TOKEN_LABEL) for t in ptt.target_tokens]
    room = max(width - (UNIT_LABEL + 2) - (POS + 2) - 2, CELL + 3)
    chunks = _column_chunks(tokens, room)
    scale_note = f" ×1e{exponent}" if exponent else ""
    tables = []
    for c, columns in enumerate(chunks):
        title = (
            f"per target token{scale_note}: score of each input unit (row) for each target token (column)"
            f"{rows_note}"
            if c == 0
            else f"... target tokens {columns[0] + 1}-{columns[-1] + 1} of {len(tokens)}"
        )
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
        table.add_column("unit", no_wrap=True, max_width=UNIT_LABEL)
        table.add_column("pos", justify="right", no_wrap=True)
        for j in columns:
            table.add_column(Text(tokens[j]), justify="right", no_wrap=True)
        for i in rows:
            a = result.attributions[i]
            cells = [Text(_label(a.text, UNIT_LABEL)), str(a.position)]
            for j in columns:
                value = ptt.scores[j][i]
                rgb = score_rgb(value / peak)
                style = f"{text_hex(rgb)} on rgb({rgb[0]},{rgb[1]},{rgb[2]})"
                cells.append(Text(f"{value / factor:+.2f}", style=style))
            table.add_row(*cells)
        tables.append(table)
    return Group(*tables)
