"""ffattr show: draw items of a result file again, and summarise the whole file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from ..errors import InvalidRequestError
from . import options as o
from .common import cli_command, stdout_console

if TYPE_CHECKING:
    from ..render.summary import Summary

EPILOG = """\
Examples:

  ffattr show results.parquet              # the first item, then the summary
  ffattr show results.parquet --id q7 --id q9
  ffattr show results.jsonl --first 5 --top-k 5
  ffattr show results.parquet --first 0    # the summary only
  ffattr show result.json                  # from: ffattr explain --output
  ffattr show out/                         # a folder of Parquet parts

A file of the long layout (ffattr batch --layout long) keeps no prompt: its items are drawn as top-k tables.
"""


@cli_command
def show(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            exists=True,
            help="A result file (.parquet, .jsonl or .json) or a folder of Parquet parts.",
            show_default=False,
        ),
    ],
    ids: Annotated[
        list[str] | None,
        typer.Option(
            "--id", metavar="ID", help="Draw the item with this id (repeatable).", show_default=False
        ),
    ] = None,
    first: Annotated[
        int, typer.Option("--first", "-n", min=0, help="Without --id: draw the first N items.")
    ] = 1,
    top_k: o.TopK = 10,
    show_uncertainty: o.ShowUncertainty = False,
    per_target_token: o.PerTargetToken = False,
    summary: Annotated[bool, typer.Option("--summary/--no-summary", help="The table over all items.")] = True,
    fmt: o.FormatOpt = o.Format.text,
) -> None:
    """Draw items of a result file again, then a summary of all its items.

    Reads what ffattr batch writes (.parquet, .jsonl, .json; wide or long layout) and the JSON
    that ffattr explain --output writes.
    """
    from ..io import open_results
    from ..render.summary import Summary

    results = open_results(file)
    wanted = list(dict.fromkeys(ids or []))
    chosen: dict[str, dict[str, Any]] = {}
    totals = Summary()
    for row in results.rows():
        totals.add(row)
        if wanted:
            if row["id"] in wanted and row["id"] not in chosen:
                chosen[row["id"]] = row
        elif len(chosen) < first:
            chosen.setdefault(row["id"], row)
    missing = [i for i in wanted if i not in chosen]
    if missing:
        raise InvalidRequestError(f"no item with id {', '.join(map(repr, missing))} in {file}")
    selected = [chosen[i] for i in wanted] if wanted else list(chosen.values())

    if fmt is o.Format.json:
        payload = {"items": selected, "summary": _summary_dict(totals)}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return
    console = stdout_console()
    for row in selected:
        _draw(console, row, results.layout, top_k, per_target_token, show_uncertainty)
    if summary:
        from ..render.summary import summary_table

        console.print(Rule(f"summary of {file.name}"))
        console.print(summary_table(totals))


def _draw(
    console: Console,
    row: dict[str, Any],
    layout: str,
    top_k: int,
    per_target_token: bool,
    show_uncertainty: bool,
) -> None:
    from ..io.schema import OK, row_to_result
    from ..render.terminal import footer, render, role_table, top_k_table

    where = f"id {row['id']}" + (f" · line {row['line']}" if row.get("line") is not None else "")
    if row.get("meta"):
        where += " · " + json.dumps(row["meta"], ensure_ascii=False)
    console.print(Rule(Text(where), align="left"))
    if row.get("status") != OK:
        console.print(
            Panel(Text(row.get("error") or "unknown error", style="red"), title="failed", title_align="left")
        )
        return
    result = row_to_result(row)
    if layout == "long":  # the long layout keeps units but not the prompt they came from
        console.print(Text(f"target: {result.target}"))
        if result.contrast is not None:
            console.print(Text(f"contrast: {result.contrast}"))
        if top_k > 0:
            console.print(top_k_table(result, top_k, show_uncertainty))
        console.print(role_table(result))
        console.print(footer(result))
        return
    render(result, console, top_k, per_target_token=per_target_token, show_uncertainty=show_uncertainty)


def _summary_dict(s: Summary) -> dict[str, Any]:
    return {
        "items": s.items,
        "ok": s.ok,
        "errors": s.errors,
        "mean_compute_time_s": s.seconds / s.ok if s.ok else None,
        "mean_n_forward": s.forward / s.ok if s.ok else None,
        "methods": dict(s.methods),
        "models": dict(s.models),
        "top_units": dict(s.top_units.most_common(20)),
        "faithfulness_checked": s.checked,
        "faithfulness_means": {name: s.faithfulness_mean(name) for name in sorted(s.faithfulness_counts)},
    }
