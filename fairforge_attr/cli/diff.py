"""ffattr diff: compare two result files item by item (model or prompt versions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from . import options as o
from .common import EXIT_FAILED, cli_command, stdout_console

if TYPE_CHECKING:
    from ..analysis.diff import DiffReport

EPILOG = """\
Examples:

  ffattr diff base.parquet new.parquet
  ffattr diff base.parquet new.parquet --max-drift 0.2      # exit 1 above it
  ffattr diff v1.jsonl v2.jsonl --top-k 3 --worst 20 --format json

Per id present in both files: Spearman correlation of the unit scores (units matched by message, offsets and text), drift = 1 - Spearman, overlap of the two top-k sets, sign flips, change of target_log_prob (new - base). For contrastive rows (ffattr explain --contrast, a batch line's "contrast"), also the change of the objective the scores explain, f = target_log_prob - contrast_log_prob, and the ids whose two rows have different contrasts. Ids found in one file only are listed.

Exit code: 0, or 1 when --max-drift is given and the mean drift exceeds it (or no item could be compared); 2 for unreadable files.
"""


def _f(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


@cli_command
def diff(
    base: Annotated[Path, typer.Argument(metavar="BASE", dir_okay=False, help="The reference result file.")],
    new: Annotated[Path, typer.Argument(metavar="NEW", dir_okay=False, help="The result file to compare.")],
    max_drift: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=2.0,
            help="Exit 1 when the mean drift (1 - Spearman, 0..2) exceeds this.",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Size of the top-k sets compared.")] = 5,
    worst: Annotated[int, typer.Option(min=0, help="Rows of the worst-ids table.")] = 10,
    fmt: o.FormatOpt = o.Format.text,
) -> None:
    """Compare two result files item by item: how much did the explanations move?"""
    from ..analysis.diff import diff_rows
    from ..io import open_results

    report = diff_rows(
        open_results(base).rows(),
        open_results(new).rows(),
        top_k=top_k,
        base_name=str(base),
        new_name=str(new),
    )
    drift = report.mean_drift
    too_far = max_drift is not None and (drift is None or drift > max_drift)
    if fmt is o.Format.json:
        payload = report.to_dict(worst)
        payload["max_drift"] = max_drift
        payload["passed"] = not too_far
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    else:
        _print(report, worst, max_drift, too_far)
    if too_far:
        raise typer.Exit(EXIT_FAILED)


def _print(report: DiffReport, worst: int, max_drift: float | None, too_far: bool) -> None:
    console = stdout_console()
    s = report.summary()
    table = Table(title=f"ffattr diff {report.base} -> {report.new}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("ids in both", f"{s['common']} ({s['compared']} compared, {s['errors']} with errors)")
    table.add_row("only in base / new", f"{s['only_in_base']} / {s['only_in_new']}")
    table.add_row("mean Spearman", _f(s["mean_spearman"]))
    table.add_row("mean drift (1 - Spearman)", _f(s["mean_drift"]))
    table.add_row(f"mean top-{report.top_k} overlap", _f(s["mean_top_k_overlap"], ".0%"))
    table.add_row("sign flips", f"{s['sign_flips']} units in {s['items_with_sign_flips']} items")
    table.add_row("mean change of log p(target)", _f(s["mean_delta_target_log_prob"], "+.4f"))
    if s["contrastive"]:  # f(x) is not log p(target) there: say which number moved
        table.add_row(
            "mean change of f = log p(target) - log p(contrast)", _f(s["mean_delta_objective"], "+.4f")
        )
        table.add_row("contrastive ids", f"{s['contrastive']} ({s['other_objective']} with another contrast)")
    console.print(table)
    if worst and report.items:
        rows = Table(
            title=f"the {min(worst, len(report.items))} ids with the largest drift", title_justify="left"
        )
        delta = "Δ f" if s["contrastive"] else "Δ log p"
        for name in ("id", "drift", "Spearman", f"top-{report.top_k}", "flips", "matched", delta):
            rows.add_column(name, justify="left" if name == "id" else "right")
        for i in report.worst(worst):
            rows.add_row(
                i.id,
                _f(i.drift),
                _f(i.spearman),
                _f(i.top_k_overlap, ".0%"),
                str(i.sign_flips),
                f"{i.n_matched}/{max(i.n_base, i.n_new)}",
                _f(i.delta_objective if s["contrastive"] else i.delta_target_log_prob, "+.3f"),
            )
        console.print(rows)
    for label, ids in (("only in base", report.only_base), ("only in new", report.only_new)):
        if ids:
            shown = ", ".join(ids[:20]) + (f", ... {len(ids) - 20} more" if len(ids) > 20 else "")
            console.print(Text(f"{label}: {shown}"), soft_wrap=True)
    if report.errors:
        shown = ", ".join(f"{e['id']} ({e['in']})" for e in report.errors[:20])
        console.print(Text(f"failed (not compared): {shown}", style="yellow"), soft_wrap=True)
    if max_drift is not None:
        verdict = "exceeds" if too_far else "within"
        line = f"mean drift {_f(report.mean_drift)} {verdict} --max-drift {max_drift:g}"
        console.print(Text(line, style="bold red" if too_far else "bold green"))
