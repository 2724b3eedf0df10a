"""Terminal rendering with rich: the prompt as a heatmap, a top-k table, per-role totals.

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
from .segments import context, footer_parts, message_texts, pieces

BAR_WIDTH = 10
MAX_MARKS = 5  # units marked with their score when colour is off: the strongest few


@lru_cache(maxsize=1)
def stderr_console() -> Console:
    return Console(stderr=True)


def _style(normalized: float) -> str:
    rgb = score_rgb(normalized)
    return f"{text_hex(rgb)} on rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def heatmap(result: AttributionResult, *, marks: int = 0) -> Group:
    """Every message with its role, every unit's background coloured by its score.

    ``marks``: where colour is off (a pipe, a log file, NO_COLOR), the ``marks`` strongest
    units are followed by their normalized score, e.g. ``France[+1.00]``, so the view still
    says which units mattered and in which direction.
    """
    marked = {a.position for a in result.get_top_k(marks)}
    blocks = []
    for i, (role, content) in enumerate(message_texts(result)):
        text = Text()
        for piece, attribution in pieces(result, i, content):
            if attribution is None:
                text.append(piece)
                continue
            # a unit of an unrefined coarse unit was not scored at this granularity
            unrefined = attribution.refined is False
            text.append(piece, style="dim" if unrefined else _style(attribution.normalized_score))
            if attribution.position in marked:
                text.append(f"[{attribution.normalized_score:+.2f}]", style="bold")
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
    if marked:
        sign = (
            "+ made the model prefer the target to the contrast, - the contrast"
            if result.contrastive
            else "+ raised the target's log-probability, - lowered it"
        )
        blocks.append(
            Text(
                f"[+n.nn] after the {len(marked)} strongest units: their normalized score ({sign})",
                style="dim",
            )
        )
    return Group(*blocks)


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _bar(normalized: float) -> Text:
    """Solid for a unit that raised the target, shaded for one that lowered it: the two differ
    without colour too."""
    cells = round(abs(normalized) * BAR_WIDTH)
    if normalized >= 0:
        return Text("█" * cells, style="red")
    return Text("░" * cells, style="blue")


def top_k_table(result: AttributionResult, k: int = 10, show_uncertainty: bool = False) -> Table:
    """The k strongest units. ``pos`` (the unit's index in the prompt), the message's role and a
    few words of context tell apart units whose text repeats; with ``show_uncertainty``, each
    score's standard error too ("-" for methods that do not sample)."""
    texts = message_texts(result)
    with_context = any(content for _, content in texts)
    title = f"top {k} units by |score|"
    if result.contrast is not None:
        title += f": for {_short(result.target)} rather than {_short(result.contrast)}"
    table = Table(title=title, title_justify="left")
    # Only the context may wrap: at 100 columns the numbers and bars keep their full width.
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column("unit", max_width=16, no_wrap=True, overflow="ellipsis")
    table.add_column("pos", justify="right", no_wrap=True)
    table.add_column("role", max_width=10, no_wrap=True, overflow="ellipsis")
    if with_context:
        table.add_column("context", overflow="fold")
    table.add_column("score", justify="right", no_wrap=True)
    if show_uncertainty:
        table.add_column("± s.e.", justify="right", no_wrap=True)
    table.add_column("norm.", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for rank, a in enumerate(result.get_top_k(k), 1):
        # Text, not str: a unit such as "[b]" must not be read as rich markup
        cells: list[Text | str] = [str(rank), Text(repr(a.text)), str(a.position), Text(a.role)]
        if with_context:
            content = texts[a.message_index][1] if a.message_index < len(texts) else ""
            cells.append(Text(context(content, a.char_start, a.char_end)))
        cells.append(f"{a.score:+.4f}")
        if show_uncertainty:
            cells.append("-" if a.std_error is None else f"{a.std_error:.4f}")
        cells += [f"{a.normalized_score:+.3f}", _bar(a.normalized_score)]
        table.add_row(*cells)
    return table


def role_table(result: AttributionResult) -> Table:
    """Per-role totals: units, summed score, and the role's share of the total |score|."""
    totals = result.role_totals
    whole = sum(t.abs_score for t in totals) or 1.0
    table = Table(title="per role", title_justify="left")
    table.add_column("role")
    table.add_column("units", justify="right")
    table.add_column("sum of scores", justify="right")
    table.add_column("share of |score|", justify="right")
    for t in totals:
        table.add_row(t.role, str(t.n_units), f"{t.score:+.4f}", f"{t.abs_score / whole:.0%}")
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
    colourless = console.no_color or console.color_system is None
    marks = min(top_k, MAX_MARKS) if top_k > 0 else MAX_MARKS
    console.print(heatmap(result, marks=marks if colourless else 0))
    if top_k > 0:  # 0 asks for no table (an empty one would only be a header)
        console.print(top_k_table(result, top_k, show_uncertainty))
    console.print(role_table(result))
    if per_target_token and result.per_target_token is not None:
        from .matrix import per_target_token_table

        console.print(per_target_token_table(result, console.width))
    if result.faithfulness is not None:
        from .faithfulness import faithfulness_table

        console.print(faithfulness_table(result.faithfulness))
    console.print(footer(result, model_note))
