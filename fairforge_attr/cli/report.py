"""ffattr report: one self-contained HTML file for a whole result file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as o
from .common import cli_command, stderr_console

EPILOG = """\
Examples:

  ffattr report results.parquet report.html
  ffattr report results.jsonl report.html --top-k 5 --page-size 100

The file needs no network (no CDN, no fonts): open it in any browser, attach it to a CI run. A summary (model, method, counts, errors, the faithfulness distribution, the most frequent top units), then every item: heatmap, top-k with positions, the target, the per-target-token matrix when there is one, faithfulness. Search by id or text, filter by status; items are drawn when opened, a page at a time, so files of thousands of items stay fast.
"""


@cli_command
def report(
    results: o.ResultsFile,
    output: Annotated[
        Path,
        typer.Argument(
            metavar="REPORT.html", dir_okay=False, help="The HTML file to write.", show_default=False
        ),
    ],
    top_k: o.TopK = 10,
    page_size: Annotated[int, typer.Option(min=1, help="Items per page of the list.")] = 50,
) -> None:
    """Write one self-contained HTML report of a result file (summary, then every item)."""
    from ..io import open_results
    from ..io.writers import atomic_path
    from ..render.report import write_report

    if output.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter("name the report *.html", param_hint="REPORT.html")
    source = open_results(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as out:
        n = write_report(
            source.rows, out, source=str(results), layout=source.layout, top_k=top_k, page_size=page_size
        )
    stderr_console().print(f"wrote {output}: {n} items", highlight=False, soft_wrap=True)
