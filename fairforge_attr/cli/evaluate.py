"""ffattr evaluate: which method should I trust on MY model and data? Several methods on the
same items, ranked by faithfulness next to their cost."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..types import AttributionMethod, Granularity
from . import options as o
from .common import (
    cli_command,
    faithfulness_options,
    load_explainer,
    model_spec,
    stderr_console,
    stdout_console,
)

if TYPE_CHECKING:
    from ..analysis.evaluate import EvaluateReport
    from ..api import AttributionExplainer
    from ..io import BatchItem

EPILOG = """\
Examples:

  ffattr evaluate questions.jsonl                              # every method, word units
  ffattr evaluate questions.jsonl --methods occlusion,lime,integrated_gradients --limit 50
  ffattr evaluate questions.jsonl -g word -g sentence --output evaluate.parquet
  ffattr evaluate questions.jsonl --items all.parquet          # every item's results, for check/report

For each granularity: one table ranking the methods by faithfulness (LDS, deletion and insertion gain over random, comprehensiveness: the rank is the mean of the four ranks) next to their cost (forward passes, sequences, seconds per item), and a recommendation. The faithfulness checks cost forward passes on top (ffattr methods); an item's random orderings and ablations are shared by all methods. Methods run with their default options.

--output writes one row per (granularity, method): .json (with the recommendations), .jsonl or .parquet.
"""


def _methods(value: str) -> list[str]:
    from ..methods.registry import REGISTRY

    if value.strip().lower() == "all":
        return [m.value for m in REGISTRY]
    names = [AttributionMethod.parse(v).value for v in value.split(",") if v.strip()]
    if not names:
        raise typer.BadParameter("name at least one method, or all", param_hint="--methods")
    return list(dict.fromkeys(names))


def _granularities(values: list[str] | None) -> list[str]:
    names = [
        Granularity.parse(v).value for value in values or ["word"] for v in value.split(",") if v.strip()
    ]
    return list(dict.fromkeys(names))


@cli_command
def evaluate(
    input_file: o.InputJsonl,
    methods: Annotated[
        str,
        typer.Option(
            metavar="all|M1,M2", help="Methods to compare (comma-separated).", rich_help_panel=o.METHOD_PANEL
        ),
    ] = "all",
    granularity: Annotated[
        list[str] | None,
        typer.Option(
            "--granularity",
            "-g",
            metavar="token|word|sentence",
            help="Unit size; repeat (or comma-separate) for one table each.",
            show_default="word",
            rich_help_panel=o.METHOD_PANEL,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N items.", show_default=False)
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            help="Write the tables for machines: .json, .jsonl or .parquet.",
            show_default=False,
            rich_help_panel=o.OUTPUT_PANEL,
        ),
    ] = None,
    items_file: Annotated[
        Path | None,
        typer.Option(
            "--items",
            dir_okay=False,
            help="Also write every item's results (one row per item and method, with faithfulness), "
            "as ffattr batch would: for ffattr check and ffattr report.",
            show_default=False,
            rich_help_panel=o.OUTPUT_PANEL,
        ),
    ] = None,
    model: o.Model = None,
    revision: o.Revision = None,
    trust_remote_code: o.TrustRemoteCode = False,
    device: o.Device = None,
    dtype: o.Dtype = None,
    max_length: o.MaxLength = None,
    seed: o.Seed = 0,
    faithfulness_option: o.FaithfulnessOptions = None,
    fmt: o.FormatOpt = o.Format.text,
) -> None:
    """Rank attribution methods by faithfulness on your own model and data, next to their cost."""
    from ..io import output_format
    from ..io.writers import ensure_writable

    names = _methods(methods)
    grans = _granularities(granularity)
    check = faithfulness_options(True, faithfulness_option)
    for path in (output, items_file):
        if path is not None:
            output_format(path)
            ensure_writable(path)  # before the model loads
    items, bad = _read_items(input_file, limit)
    explainer = load_explainer(model_spec(model, device, dtype, max_length, revision, trust_remote_code))
    report = _run(
        explainer, items, names, grans, seed, check, str(input_file), keep_rows=items_file is not None
    )
    _write(report, output, items_file)
    if fmt is o.Format.json:
        payload = report.to_dict()
        payload["unreadable_lines"] = bad
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return
    _print(report, bad)


def _read_items(path: Path, limit: int | None) -> tuple[list[Any], list[dict[str, Any]]]:
    from ..io.jsonl import iter_jsonl, parse_batch_item

    items, bad = [], []
    for entry in iter_jsonl(path):
        if limit is not None and len(items) + len(bad) >= limit:
            break
        item = parse_batch_item(entry)
        if item.error is not None:
            bad.append({"line": item.line, "id": item.id, "error": item.error})
        else:
            items.append(item)
    if not items:
        from ..errors import InvalidRequestError

        raise InvalidRequestError(
            f"{path} holds no readable item" + (f" (first error: {bad[0]['error']})" if bad else "")
        )
    return items, bad


def _run(
    explainer: AttributionExplainer,
    items: list[BatchItem],
    names: list[str],
    grans: list[str],
    seed: int,
    check: dict[str, Any] | bool,
    source: str,
    *,
    keep_rows: bool,
) -> EvaluateReport:
    from ..analysis.evaluate import evaluate as run_evaluate
    from .progress import BatchProgress

    total = len(items) * (len(names) + 1) * len(grans)
    progress = BatchProgress(total, stderr_console(), label="ffattr evaluate", unit="steps")
    try:
        report = run_evaluate(
            explainer,
            items,
            names,
            grans,
            source=source,
            seed=seed,
            faithfulness=check if isinstance(check, dict) else {},
            keep_rows=keep_rows,
            progress=lambda what, n: progress.update(ok=n),
        )
    finally:
        progress.stop()
    progress.console.print(progress.line(), soft_wrap=True, highlight=False)
    return report


def _write(report: EvaluateReport, output: Path | None, items_file: Path | None) -> None:
    from ..io import output_format, write_rows, write_text

    if items_file is not None:
        write_rows(items_file, iter(report.rows), "wide")
    if output is None:
        return
    fmt = output_format(output)
    if fmt == "json":
        write_text(output, json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    elif fmt == "jsonl":
        write_text(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.table_rows()))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ..io.writers import atomic_path

        table = pa.Table.from_pylist(report.table_rows())
        with atomic_path(output) as tmp:
            pq.write_table(table, tmp)


def _f(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _print(report: EvaluateReport, bad: list[dict[str, Any]]) -> None:
    console = stdout_console()
    for gran, table_rows in report.tables.items():
        table = Table(
            title=f"faithfulness by method · {gran} units · {report.n_items} items · {report.model}",
            title_justify="left",
            caption="rank: mean of the ranks on LDS, deletion gain, insertion gain and comprehensiveness; "
            "gains are over random orderings (> 0 beats random); cost per item, of the method alone",
            caption_justify="left",
        )
        for name in (
            "rank",
            "method",
            "LDS",
            "del. gain",
            "ins. gain",
            "compr.",
            "suff.",
            "fwd",
            "seq",
            "s/item",
            "err",
        ):
            table.add_column(name, justify="left" if name == "method" else "right", no_wrap=True)
        for r in table_rows:
            table.add_row(
                _f(r.rank, ".1f"),
                r.method,
                _f(r.lds),
                _f(r.deletion_gain, "+.3f"),
                _f(r.insertion_gain, "+.3f"),
                _f(r.comprehensiveness, ".2f"),
                _f(r.sufficiency, ".2f"),
                _f(r.n_forward, ".1f"),
                _f(r.n_sequences, ".0f"),
                _f(r.seconds, ".3f"),
                str(r.n_errors) if r.n_errors else "",
            )
        random_lds = [r.random_lds for r in table_rows if r.random_lds is not None]
        if random_lds:
            table.add_row(
                "",
                Text("random ordering", style="dim"),
                _f(sum(random_lds) / len(random_lds)),
                "0",
                "0",
                "",
                "",
                "",
                "",
                "",
                "",
            )
        console.print(table)
        console.print(Text(report.recommendations[gran], style="bold"), soft_wrap=True)
    console.print(Text(f"faithfulness checks took {report.faithfulness_seconds:.1f}s", style="dim"))
    if bad:
        console.print(
            Text(
                f"{len(bad)} unreadable line(s) skipped, first: line {bad[0]['line']}: {bad[0]['error']}",
                style="yellow",
            ),
            soft_wrap=True,
        )
