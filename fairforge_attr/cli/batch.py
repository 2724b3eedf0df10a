"""ffattr batch: attribute every line of a JSONL file, streaming, resumable and shardable.

The pipeline is ``fairforge_attr.batch.BatchJob``; this command checks the flags, turns
SIGTERM into a clean stop (every finished item stays in ``OUT.partial/`` for ``--resume``),
shows progress and sets the exit code.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..types import AttributionMethod, Granularity
from . import options as o
from . import scale
from .common import (
    EXIT_FAILED,
    cli_command,
    faithfulness_options,
    load_explainer,
    method_options,
    model_spec,
    refinement,
    stderr_console,
)

if TYPE_CHECKING:
    from ..batch import BatchJob
    from ..io import BatchItem
    from ..model_spec import ModelSpec
    from .progress import BatchProgress

RUN_PANEL = o.RUN_PANEL
MAX_ERRORS_LOGGED = 20

EPILOG = """\
Examples:

  ffattr batch questions.jsonl results.parquet
  ffattr batch in.jsonl out.jsonl --method occlusion --errors bad.jsonl
  ffattr batch in.jsonl out.parquet --resume       # after a kill: the rest
  ffattr batch in.jsonl part-2.parquet --shard 2/8   # CI job 2 of 8
  ffattr batch in.jsonl out.parquet --faithfulness    # + a faithfulness column
  make_items | ffattr batch - out.parquet            # items from stdin, as they come
  ffattr merge part-*.parquet all.parquet --input in.jsonl   # join the shards
  ffattr batch in.jsonl out/ --backend ray --num-workers 4   # parts in out/
  ffattr batch in.jsonl out.parquet --backend ray --address auto
  ffattr batch questions.jsonl answers.parquet --generate   # explain the model's own answers

Each input line is one JSON object, one of:

  {"id": 1, "messages": \\[{"role": "user", "content": "Hi"}], "target": "Hey"}
  {"id": 2, "prompt": "2 + 2 =", "target": " 4"}
  {"id": 3, "messages": \\[{"role": "user", ...}, {"role": "assistant", ...}]}
  {"id": 4, "messages": \\[...], "target": "Paris.", "contrast": "Berlin."}
  {"id": 5, "messages": \\[{"role": "user", "content": "Hi"}]}     # with --generate

"id" is optional (default: the line number); "contrast" explains why the model prefers the target to that answer (log p(target) - log p(contrast)); other fields are copied to the meta column. A bad line becomes an error row (status "error", with its line number) and the run goes on.

Exit code: 0 when every item succeeded (or --allow-errors), 1 when some failed, 2 for usage errors, 130/143 when interrupted (finished items are kept for --resume).
"""


class Layout(str, Enum):
    wide = "wide"
    long = "long"


class OnError(str, Enum):
    skip = "continue"
    fail = "fail"


class Terminated(BaseException):
    """SIGTERM, turned into an exception so the run stops where it is and keeps what it has.
    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way (in the
    library or its dependencies) can mistake it for an item's error and swallow it."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@cli_command
def batch(
    ctx: typer.Context,
    input_file: o.InputJsonlOrStdin,
    output: Annotated[
        str,
        typer.Argument(
            metavar="OUT",
            help="Results: .parquet, .jsonl or .json, or DIR/ (a folder of Parquet parts).",
            show_default=False,
        ),
    ],
    model: o.Model = None,
    revision: o.Revision = None,
    trust_remote_code: o.TrustRemoteCode = False,
    device: o.Device = None,
    device_map: scale.DeviceMap = None,
    dtype: o.Dtype = None,
    max_length: o.MaxLength = None,
    method: o.Method = AttributionMethod.LIME,
    granularity: o.GranularityOpt = Granularity.WORD,
    coarse: o.Coarse = None,
    refine_top: o.RefineTop = None,
    screen: o.Screen = None,
    seed: o.Seed = 0,
    n_samples: o.NSamples = None,
    n_steps: o.NSteps = None,
    baseline: o.Baseline = None,
    option: o.ExtraOptions = None,
    per_target_token: o.PerTargetToken = False,
    faithfulness: o.Faithfulness = False,
    faithfulness_option: o.FaithfulnessOptions = None,
    generate: o.Generate = False,
    max_new_tokens: o.GenerateMaxNewTokens = None,
    layout: Annotated[
        Layout,
        typer.Option(
            help="wide: one row per item; long: one row per (item, unit).", rich_help_panel=o.OUTPUT_PANEL
        ),
    ] = Layout.wide,
    errors: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Also write every failed item (line, id, error) to this JSONL file.",
            show_default=False,
            rich_help_panel=o.OUTPUT_PANEL,
        ),
    ] = None,
    on_error: Annotated[
        OnError,
        typer.Option(
            help="continue: report bad items and go on; fail: stop at the first one.",
            rich_help_panel=RUN_PANEL,
        ),
    ] = OnError.skip,
    allow_errors: Annotated[
        bool,
        typer.Option("--allow-errors", help="Exit 0 even when some items failed.", rich_help_panel=RUN_PANEL),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace an existing OUT (and any unfinished run of it).", rich_help_panel=RUN_PANEL
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Keep the items already in OUT (or OUT.partial) and compute only the rest.",
            rich_help_panel=RUN_PANEL,
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="I/N",
            help="Process only the I-th of N interleaved slices (1-based).",
            show_default=False,
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Process only the first N items (of the shard).",
            show_default=False,
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    backend: scale.BackendOpt = scale.Backend.local,
    address: scale.Address = None,
    num_workers: scale.NumWorkers = None,
    gpus_per_worker: scale.GpusPerWorker = 0.0,
    cpus_per_worker: scale.CpusPerWorker = 1.0,
    rows_per_task: scale.RowsPerTask = None,
    verbose: scale.Verbose = False,
) -> None:
    """Attribute every item of a JSONL file; write one row per item as it finishes."""
    from ..io import output_format

    if str(input_file) != "-" and not input_file.is_file():
        what = "is a folder" if input_file.is_dir() else "does not exist"
        raise typer.BadParameter(
            f"{input_file} {what}; give a JSONL file, or - for stdin", param_hint="IN.jsonl"
        )
    output_format(output)
    scale.check_backend_flags(ctx, backend)
    ray_args = {
        "address": address,
        "num_workers": num_workers,
        "gpus_per_worker": gpus_per_worker,
        "cpus_per_worker": cpus_per_worker,
        "rows_per_task": rows_per_task,
        "verbose": verbose,
    }
    shard_index, shard_count = scale.parse_shard(shard)
    o.check_generate(generate, max_new_tokens)
    _check_output(output, errors, resume=resume, overwrite=overwrite)
    opts = method_options(
        method,
        n_samples=n_samples,
        n_steps=n_steps,
        baseline=baseline,
        extra=option,
    )
    check = faithfulness_options(faithfulness, faithfulness_option)
    refine = refinement(method, granularity, coarse, refine_top, screen)

    from ..batch import count_items
    from ..plan import DEFAULT_MAX_NEW_TOKENS

    spec = model_spec(
        model, device, dtype, max_length, revision, trust_remote_code, scale.parse_device_map(device_map)
    )
    job_args = {
        "method": method,
        "granularity": granularity,
        "seed": seed,
        "per_target_token": per_target_token,
        "generate": generate,
        "max_new_tokens": max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
        "options": opts,
        "fail_fast": on_error is OnError.fail,
        "faithfulness": check,
        **refine,
    }
    job = _make_job(backend, spec, output, job_args=job_args, ray_args=ray_args)
    with job:
        if resume:
            job.resume()
        else:
            job.start_over()
        for note in job.notes:
            stderr_console().print(
                f"note: {note}", style="yellow", soft_wrap=True, highlight=False, markup=False
            )
        shard_pair = (shard_index, shard_count)
        total = count_items(input_file, shard_pair, limit)
        failed = _run(job, input_file, layout.value, errors, total, shard_pair, limit)
    if job.stopped or (failed and not allow_errors):
        raise typer.Exit(EXIT_FAILED)


def _check_output(output: str, errors: Path | None, *, resume: bool, overwrite: bool) -> None:
    """Everything about OUT is checked before the model loads: another run writing it, an
    earlier one that would be replaced, a folder that cannot be written."""
    from ..batch import refuse_existing_output, refuse_locked_output
    from ..errors import InvalidRequestError
    from ..io.writers import ensure_writable

    if resume and overwrite:
        raise typer.BadParameter(
            "--resume keeps OUT, --overwrite replaces it: give one", param_hint="--resume"
        )
    refuse_locked_output(output)
    if not resume and not overwrite:
        try:  # the job refuses too; asking here answers before the model loads
            refuse_existing_output(output)
        except InvalidRequestError as exc:
            raise typer.BadParameter(str(exc), param_hint="OUT") from None
    for path in (Path(output), errors):
        if path is not None:
            ensure_writable(path)


def _make_job(
    backend: scale.Backend,
    spec: ModelSpec,
    output: str,
    *,
    job_args: dict[str, Any],
    ray_args: dict[str, Any],
) -> BatchJob:
    """The local job loads the model here; the Ray job's workers load it from ``spec``."""
    from ..batch import BatchJob

    if backend is not scale.Backend.ray:
        return BatchJob(load_explainer(spec), output, **job_args)
    return scale.ray_job(output, spec=spec, ray_args=ray_args, job_args=job_args)


def _kept(job: BatchJob) -> str:
    """What the partial store holds, read back from it (never assumed)."""
    try:
        n = job.store.count() if job.store.exists() else 0
    except OSError:
        n = 0
    if not n:
        return "nothing was kept"
    return f"{n} finished items are kept in {job.store.dir}"


def _summary(job: BatchJob, n_items: int, n_errors: int, progress: BatchProgress, seconds: float) -> str:
    computed = progress.ok + progress.failed
    line = f"wrote {job.output}: {n_items} items ({n_items - n_errors} ok, {n_errors} failed)"
    if job.refused:
        line += f"; {job.refused} line left out" if job.refused == 1 else f"; {job.refused} lines left out"
        line += " (a repeated id, reported above)"
    line += f". This run: {computed} items in {seconds:.1f}s ({computed / max(seconds, 1e-9):.1f} items/s)"
    return line + (f", {progress.skipped} already done" if progress.skipped else "")


def _run(
    job: BatchJob,
    input_file: Path,
    layout: str,
    errors: Path | None,
    total: int | None,
    shard: tuple[int, int],
    limit: int | None,
) -> int:
    """Run the job with progress on stderr; returns how many items failed: the error rows of
    OUT plus the lines that got no row, so the summary and the exit code say the same."""
    from ..errors import FairForgeError
    from .progress import BatchProgress

    console = stderr_console()
    progress = BatchProgress(total, console)
    logged = 0

    def on_error(item: BatchItem, message: str) -> None:
        nonlocal logged
        logged += 1
        if logged <= MAX_ERRORS_LOGGED:
            progress.log(f"line {item.line} (id {item.id}): {message}", style="red")
        elif logged == MAX_ERRORS_LOGGED + 1:
            progress.log(
                "further errors are not printed; see --errors FILE or the status column", style="red"
            )

    job.on_progress = lambda kind: progress.update(**{kind: 1})
    if hasattr(job, "on_status"):  # the ray backend says what it starts
        job.on_status = lambda message: progress.log(message)
    job.on_error = on_error
    start = time.monotonic()
    try:
        with _sigterm_raises():
            job.run(input_file, shard=shard, limit=limit, errors_path=errors)
            progress.stop()
            if job.stopped:
                console.print(
                    f"stopped at the first bad item (--on-error fail); {_kept(job)}. Fix the line, then "
                    "rerun with --resume.",
                    style="red",
                    soft_wrap=True,
                )
                return progress.failed
            n_items, n_errors = job.finish(layout)
    except (KeyboardInterrupt, Terminated) as exc:
        progress.stop()
        console.print(
            f"interrupted after {progress.ok} items; {_kept(job)}. Rerun the same command with "
            "--resume to compute the rest.",
            style="yellow",
            soft_wrap=True,
        )
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
    except FairForgeError:
        progress.stop()  # its message says what was kept
        raise
    except BaseException:
        progress.stop()
        console.print(f"{_kept(job)}; rerun with --resume", soft_wrap=True)
        raise
    console.print(
        _summary(job, n_items, n_errors, progress, time.monotonic() - start), soft_wrap=True, highlight=False
    )
    return n_errors + job.refused
