"""Terminal rendering with rich: the prompt as a heatmap, then a top-k table.

Data goes to stdout; progress and logs go to stderr. Colour switches itself off when the
stream is not a terminal or NO_COLOR is set (rich's own detection).
"""

from __future__ import annotations

from functools import lru_cache

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..results import AttributionResult
from .colors import score_rgb, text_hex
from .segments import footer_parts, message_texts, pieces

BAR_WIDTH = 12


@lru_cache(maxsize=1)
def stderr_console() -> Console:
    return Console(stderr=True)


def _style(normalized: float) -> str:
    rgb = score_rgb(normalized)
    return f"{text_hex(rgb)} on rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def heatmap(result: AttributionResult) -> Group:
    """Every message with its role, every unit's background coloured by its score."""
    blocks = []
    for i, (role, content) in enumerate(message_texts(result)):
        text = Text()
        for piece, attribution in pieces(result, i, content):
            if attribution is None:
                text.append(piece)
            else:
                text.append(piece, style=_style(attribution.normalized_score))
        blocks.append(Panel(text, title=f"[bold]{role}[/bold]", title_align="left", border_style="dim"))
    target_note = " (generated)" if result.metadata.target_generated else ""
    if result.contrastive:
        target_note += ": why this answer"
    blocks.append(
        Panel(
            Text(result.target),
            title=f"[bold]target{target_note}[/bold]",
            title_align="left",
            border_style="green",
        )
    )
    if result.contrast is not None:
        blocks.append(
            Panel(
                Text(result.contrast),
                title="[bold]contrast: and not this one[/bold]",
                title_align="left",
                border_style="magenta",
            )
        )
    return Group(*blocks)


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _bar(normalized: float) -> Text:
    cells = round(abs(normalized) * BAR_WIDTH)
    colour = "red" if normalized >= 0 else "blue"
    return Text("█" * cells, style=colour)


def top_k_table(result: AttributionResult, k: int = 10, show_uncertainty: bool = False) -> Table:
    """Rank, unit, role, score, normalised score and a bar; with ``show_uncertainty``, each
    score's standard error too ("-" for methods that do not sample)."""
    title = f"top {k} units by |score|"
    if result.contrast is not None:
        title += f": for {_short(result.target)} rather than {_short(result.contrast)}"
    table = Table(title=title, title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("unit")
    table.add_column("role")
    table.add_column("score", justify="right")
    if show_uncertainty:
        table.add_column("± s.e.", justify="right")
    table.add_column("normalized", justify="right")
    table.add_column("", no_wrap=True)
    for rank, a in enumerate(result.get_top_k(k), 1):
        cells = [str(rank), repr(a.text), a.role, f"{a.score:+.4f}"]
        if show_uncertainty:
            cells.append("-" if a.std_error is None else f"{a.std_error:.4f}")
        table.add_row(*cells, f"{a.normalized_score:+.3f}", _bar(a.normalized_score))
    return table


def footer(result: AttributionResult, model_note: str | None = None) -> Text:
    """One line: method, granularity, model, cost and f(x). ``model_note`` is appended to the
    model's name (e.g. "built-in demo")."""
    parts = footer_parts(result, model_note)
    if result.faithfulness is not None:
        from .faithfulness import faithfulness_line

        parts.append(faithfulness_line(result.faithfulness))
    return Text(" · ".join(parts), style="dim")


def render(
    result: AttributionResult,
    console: Console | None = None,
    top_k: int = 10,
    *,
    per_target_token: bool = False,
    model_note: str | None = None,
    show_uncertainty: bool = False,
) -> None:
    """Heatmap, top-k table and footer; with ``per_target_token``, the target x input matrix too
    (when the result has one)."""
    console = console or Console()
    console.print(heatmap(result))
    console.print(top_k_table(result, top_k, show_uncertainty))
    if per_target_token and result.per_target_token is not None:
        from .matrix import per_target_token_table

        console.print(per_target_token_table(result, console.width))
    if result.faithfulness is not None:
        from .faithfulness import faithfulness_table

        console.print(faithfulness_table(result.faithfulness))
    console.print(footer(result, model_note))
