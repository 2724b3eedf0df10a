"""ffattr methods: what each attribution method is, costs and takes (read from the registry)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from . import options as o
from .common import cli_command, flag_of, stdout_console

EPILOG = """\
Examples:

  ffattr methods
  ffattr methods lime          # one method, every option explained
  ffattr methods --format json

Cost is counted in sequences the model scores (perturbation methods; the engine packs many into one forward pass) or in forward+backward passes (gradient methods).
"""


@cli_command
def methods(
    name: Annotated[str | None, typer.Argument(help="Show one method in detail.", show_default=False)] = None,
    fmt: o.FormatOpt = o.Format.text,
) -> None:
    """List every attribution method: family, cost, default options, paper."""
    from ..methods.catalog import load_catalog
    from ..types import AttributionMethod

    rows = load_catalog()  # the registry as data: no torch import for a table
    if name is not None:
        wanted = AttributionMethod.parse(name).value
        rows = [r for r in rows if r["method"] == wanted]
    if fmt is o.Format.json:
        sys.stdout.write(json.dumps(rows if name is None else rows[0], indent=2, default=str) + "\n")
        return
    console = stdout_console()
    if name is not None:
        console.print(_detail(rows[0]))
        return
    table = Table(title="attribution methods", title_justify="left", show_lines=True)
    table.add_column("method", no_wrap=True)
    table.add_column("cost", ratio=2)
    table.add_column("defaults", no_wrap=True)
    table.add_column("paper", ratio=3)
    for row in rows:
        name = f"[bold]{row['method']}[/bold]\n[dim]{row['family']}[/dim]"
        defaults = "\n".join(f"{k}={_short(v['default'])}" for k, v in row["options"].items()) or "-"
        table.add_row(name, row["cost"], defaults, row["paper"])
    console.print(table)
    console.print(_faithfulness_costs())
    console.print("[dim]ffattr methods NAME: one method, every option explained.[/dim]")


def _faithfulness_costs() -> Table:
    from ..faithfulness import METRIC_COSTS, cost_formula

    table = Table(
        title="faithfulness checks (--faithfulness, ffattr evaluate): cost per item, forward passes only",
        title_justify="left",
        caption=cost_formula() + "; identical masks are scored once, so short prompts cost less",
        caption_justify="left",
    )
    table.add_column("figure", no_wrap=True)
    table.add_column("sequences scored")
    for name, cost in METRIC_COSTS:
        table.add_row(name, cost)
    return table


def _short(value: Any) -> str:
    return "auto" if value is None else str(value)


def _detail(row: dict[str, Any]) -> Table:
    table = Table(title=f"{row['method']}: {row['summary']}", title_justify="left", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("family", row["family"])
    table.add_row("cost", row["cost"])
    table.add_row("paper", row["paper"])
    table.add_row("convergence delta", "yes" if row["has_convergence_delta"] else "no")
    table.add_row("uses --seed", "yes" if row["uses_seed"] else "no")
    for name, opt in row["options"].items():
        table.add_row(flag_of(name), f"default {_short(opt['default'])}: {opt['description']}")
    return table
