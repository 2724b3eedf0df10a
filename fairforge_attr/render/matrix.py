"""The per-target-token view: one row per target token, one column per input unit."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from ..results import AttributionResult
from .colors import score_rgb, text_hex

CELL = 6  # "+0.12" plus padding
LABEL = 14


def _label(text: str, width: int) -> str:
    shown = text.strip() or repr(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def per_target_token_table(result: AttributionResult, width: int = 100) -> Table:
    """Cells hold each unit's score for one target token, coloured on the same diverging scale
    as the heatmap (normalised by the largest |value| of the matrix). When the units do not fit
    ``width``, the columns keep the units with the largest |score|, in prompt order."""
    ptt = result.per_target_token
    if ptt is None:
        raise ValueError("this result has no per-target-token scores (compute it with per_target_token)")
    n_units = len(result.attributions)
    fits = max(1, (width - LABEL - 4) // (CELL + 1))
    if n_units <= fits:
        columns = list(range(n_units))
        title = "per target token: score of each input unit"
    else:
        strongest = sorted(range(n_units), key=lambda i: -abs(result.attributions[i].score))[:fits]
        columns = sorted(strongest)
        title = f"per target token: the {fits} of {n_units} units with the largest |score|"
    peak = max((abs(v) for row in ptt.scores for v in row), default=0.0) or 1.0
    table = Table(title=title, title_justify="left", pad_edge=False, padding=(0, 1))
    table.add_column("target", no_wrap=True, max_width=LABEL)
    for i in columns:
        table.add_column(_label(result.attributions[i].text, CELL), justify="right", no_wrap=True)
    for token, row in zip(ptt.target_tokens, ptt.scores):
        cells = []
        for i in columns:
            rgb = score_rgb(row[i] / peak)
            cells.append(Text(f"{row[i]:+.2f}", style=f"{text_hex(rgb)} on rgb({rgb[0]},{rgb[1]},{rgb[2]})"))
        table.add_row(_label(token, LABEL), *cells)
    return table
