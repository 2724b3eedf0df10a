"""ffattr merge: join the outputs of sharded batch runs (or Ray part folders) into one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as o
from .common import EXIT_FAILED, cli_command, stderr_console

MISSING_SHOWN = 20

EPILOG = """\
Examples:

  ffattr merge part-1.parquet part-2.parquet part-3.parquet all.parquet
  ffattr merge part-*.parquet all.parquet --input questions.jsonl   # and say what is missing
  ffattr merge ray-out/ more.parquet all.jsonl                     # folders of parts too

A CI matrix runs `ffattr batch IN part-$I.parquet --shard $I/$N` in N jobs; one last job merges the parts. The parts must share their columns, model, method, granularity, options and seed; an id in two parts is refused. OUT is written atomically, in input order.

Exit code: 0 when merged, 1 when --input holds ids that no part has (OUT is written all the same), 2 for usage errors (parts that disagree, a repeated id, an existing OUT without --overwrite).
"""


@cli_command
def merge(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PART... OUT",
            help="The parts (.parquet, .jsonl, .json or folders of Parquet parts), then the output "
            "(.parquet, .jsonl, .json or DIR/).",
            show_default=False,
        ),
    ],
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            metavar="IN.jsonl",
            exists=True,
            dir_okay=False,
            help="The batch input the parts came from: list the ids no part holds (exit 1 if any).",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUT.")] = False,
    layout: Annotated[
        str | None,
        typer.Option(
            metavar="wide|long",
            help="Layout of OUT.",
            show_default="the parts'",
            rich_help_panel=o.OUTPUT_PANEL,
        ),
    ] = None,
) -> None:
    """Join the outputs of `ffattr batch --shard I/N` runs into one output."""
    from ..batch.merge import merge_outputs
    from ..io import output_format

    if len(paths) < 2:
        raise typer.BadParameter("give at least one PART and the OUT to write", param_hint="PART... OUT")
    *parts, output = paths
    output_format(output)
    if Path(output).exists() and not overwrite:
        raise typer.BadParameter(f"{output} exists; add --overwrite to replace it", param_hint="OUT")
    if layout not in (None, "wide", "long"):
        raise typer.BadParameter(f"expected wide or long, got {layout!r}", param_hint="--layout")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    report = merge_outputs(parts, output, input_file=input_file, layout=layout)
    console = stderr_console()
    console.print(
        f"wrote {output}: {report.items} items ({report.items - report.failed} ok, {report.failed} failed) "
        f"from {len(parts)} parts",
        soft_wrap=True,
        highlight=False,
    )
    if report.not_in_input:
        console.print(
            f"{report.not_in_input} ids of the parts are not in {input_file}: is it the input they came from?",
            style="yellow",
            soft_wrap=True,
            highlight=False,
        )
    if report.missing:
        shown = ", ".join(report.missing[:MISSING_SHOWN])
        more = (
            f" and {len(report.missing) - MISSING_SHOWN} more" if len(report.missing) > MISSING_SHOWN else ""
        )
        console.print(
            f"{len(report.missing)} ids of {input_file} are in no part: {shown}{more}. Run the missing "
            "shard (or ffattr batch ... --resume), then merge again.",
            style="red",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(EXIT_FAILED)
