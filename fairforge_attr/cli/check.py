"""ffattr check: gate a result file on rules; exit 0 when all hold, 1 when one fails, 2 when a
rule or the file is malformed."""

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
    from ..analysis.check import CheckReport

EPILOG = """\
Examples:

  ffattr check results.parquet --rule "mean:lds >= 0.3" --rule "share:error <= 0.01"
  ffattr check results.parquet --rule "rank:gender > 5"          # for every item
  ffattr check results.jsonl --rule "p10:deletion_gain > 0" --junit check.xml
  ffattr check results.parquet --rule "role_share:system <= 0.5" --format json

A rule is [AGG:]METRIC OP NUMBER. OP: >= > <= < == !=. Without AGG the rule must hold for every ok item on its own; AGG (mean, min, max, median, p10, p90, share) aggregates over the items first ("share": the fraction of items whose value is non-zero, e.g. share:error).

METRIC: lds, deletion_auc, insertion_auc, deletion_gain, insertion_gain, comprehensiveness, sufficiency (these need ffattr batch --faithfulness), objective (f(x), what the scores explain: target_log_prob, minus contrast_log_prob for a contrastive row), target_log_prob (log p(target) alone), n_units, role_share:ROLE (share of sum |score| on units of that role), rank:WORD (best rank by |score| of a unit equal to WORD, case-insensitive; 1000000 when absent), error (1 for error rows).

Exit code: 0 every rule holds, 1 a rule failed, 2 a malformed rule or an unreadable file.
"""


@cli_command
def check(
    results: o.ResultsFile,
    rules: Annotated[
        list[str],
        typer.Option(
            "--rule",
            "-r",
            metavar="RULE",
            help='A rule such as "mean:lds >= 0.3" (repeatable; all must hold).',
            show_default=False,
        ),
    ],
    junit: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            metavar="FILE",
            help="Also write JUnit XML (one testcase per rule) for a CI test report.",
            show_default=False,
        ),
    ] = None,
    max_ids: Annotated[
        int, typer.Option("--max-ids", min=1, help="Failing ids shown per rule in the table.")
    ] = 10,
    fmt: o.FormatOpt = o.Format.text,
) -> None:
    """Check a result file against rules: the verdict a CI job gates on."""
    from ..analysis.check import check_rows
    from ..analysis.rules import parse_rule
    from ..io import open_results

    parsed = [parse_rule(text) for text in rules]  # a malformed rule stops here, before reading
    report = check_rows(open_results(results).rows(), parsed, source=str(results))
    if junit is not None:
        from ..analysis.junit import junit_xml
        from ..io import write_text

        junit.parent.mkdir(parents=True, exist_ok=True)
        write_text(junit, junit_xml(report))
    if fmt is o.Format.json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        _print(report, max_ids)
    if not report.passed:
        raise typer.Exit(EXIT_FAILED)


def _print(report: CheckReport, max_ids: int) -> None:
    from ..analysis.check import show_value

    console = stdout_console()
    failed = [x for x in report.outcomes if not x.passed]
    table = Table(
        title=f"ffattr check {report.source}: {report.n_rows} items ({report.n_ok} ok)",
        title_justify="left",
    )
    table.add_column("rule", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("failing ids (value)", overflow="fold")
    for x in report.outcomes:
        shown = ", ".join(f"{i} ({show_value(x.rule, v)})" for i, v in x.failing[:max_ids])
        if len(x.failing) > max_ids:
            shown += f", ... {len(x.failing) - max_ids} more"
        verdict = Text("pass", style="green") if x.passed else Text("FAIL", style="bold red")
        value = show_value(x.rule, x.value) if x.rule.aggregate else f"{len(x.failing)}/{x.n_items} fail"
        table.add_row(x.rule.text, verdict, value, shown if not x.passed else "")
    console.print(table)
    for x in failed:
        console.print(Text(f"FAIL {x.rule.text}: {x.reason}", style="red"), soft_wrap=True)
    line = "all rules hold" if not failed else f"{len(failed)} of {len(report.outcomes)} rules failed"
    console.print(Text(line, style="bold green" if not failed else "bold red"))
