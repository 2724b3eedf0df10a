"""ffattr batch: attribute every line of a JSONL file, streaming, resumable and shardable.

Where finished items live: each one is appended (and flushed) to ``OUT.partial/`` as soon as
it is done. OUT itself is written only at the end, from the partial store, under a temporary
name that is renamed into place. A Ctrl-C, a SIGTERM or a crash therefore leaves every finished
item in ``OUT.partial/``, and ``--resume`` computes only the rest.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..types import AttributionMethod, Granularity
from . import options as o
from .common import EXIT_FAILED, cli_command, load_explainer, method_options, stderr_console

RUN_PANEL = "Run"
MAX_ERRORS_LOGGED = 20

EPILOG = """\
Examples:

  ffattr batch questions.jsonl results.parquet
  ffattr batch in.jsonl out.jsonl --method occlusion --errors bad.jsonl
  ffattr batch in.jsonl out.parquet --resume       # after a kill: the rest
  ffattr batch in.jsonl part-2.parquet --shard 2/8   # CI job 2 of 8

Each input line is one JSON object, one of:

  {"id": 1, "messages": \\[{"role": "user", "content": "Hi"}], "target": "Hey"}
  {"id": 2, "prompt": "2 + 2 =", "target": " 4"}
  {"id": 3, "messages": \\[{"role": "user", ...}, {"role": "assistant", ...}]}

"id" is optional (default: the line number); other fields are copied to the meta column. A bad line becomes an error row (status "error", with its line number) and the run goes on.

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


def _parse_shard(shard: str | None) -> tuple[int, int]:
    if shard is None:
        return 0, 1
    index, sep, count = shard.partition("/")
    if sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count):
        return int(index) - 1, int(count)
    raise typer.BadParameter(f"expected I/N with 1 <= I <= N (e.g. 2/8), got {shard!r}", param_hint="--shard")


@cli_command
def batch(
    input_file: Annotated[
        Path,
        typer.Argument(
            metavar="IN.jsonl",
            exists=True,
            dir_okay=False,
            help="One JSON object per line.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Argument(
            metavar="OUT", dir_okay=False, help="Results: .parquet, .jsonl or .json.", show_default=False
        ),
    ],
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    max_length: o.MaxLength = None,
    method: o.Method = AttributionMethod.LIME,
    granularity: o.GranularityOpt = Granularity.WORD,
    seed: o.Seed = 0,
    n_samples: o.NSamples = None,
    n_steps: o.NSteps = None,
    baseline: o.Baseline = None,
    option: o.ExtraOptions = None,
    per_target_token: o.PerTargetToken = False,
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
) -> None:
    """Attribute every item of a JSONL file; write one row per item as it finishes."""
    from ..io import PartialStore, output_format

    output_format(output)
    shard_index, shard_count = _parse_shard(shard)
    if resume and overwrite:
        raise typer.BadParameter(
            "--resume keeps OUT, --overwrite replaces it: give one", param_hint="--resume"
        )
    store = PartialStore(output)
    if not resume and not overwrite:
        if store.exists():
            raise typer.BadParameter(
                f"{store.dir} holds an unfinished run; add --resume to finish it or --overwrite to start over",
                param_hint="OUT",
            )
        if output.exists():
            raise typer.BadParameter(
                f"{output} exists; add --overwrite to replace it or --resume to compute only missing ids",
                param_hint="OUT",
            )
    for path in (output, errors):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    opts = method_options(
        method,
        n_samples=n_samples,
        n_steps=n_steps,
        baseline=baseline,
        extra=option,
        per_target_token=per_target_token,
    )

    explainer = load_explainer(model, device=device, dtype=dtype, max_length=max_length)
    run = BatchRun(
        explainer,
        store,
        method=method,
        granularity=granularity,
        seed=seed,
        per_target_token=per_target_token,
        options=opts,
        fail_fast=on_error is OnError.fail,
    )
    if resume:
        run.prepare_resume(output)
    else:
        store.remove()
    failed = run.execute(
        input_file, output, layout.value, errors, shard=(shard_index, shard_count), limit=limit
    )
    if run.stopped or (failed and not allow_errors):
        raise typer.Exit(EXIT_FAILED)


class BatchRun:
    """One invocation of ``ffattr batch``: feeds the library's ``iter_explain`` lazily and
    appends each outcome to the partial store in input order."""

    def __init__(self, explainer, store, *, method, granularity, seed, per_target_token, options, fail_fast):
        self.explainer = explainer
        self.store = store
        self.method = method
        self.granularity = granularity
        self.seed = seed
        self.per_target_token = per_target_token
        self.options = options
        self.fail_fast = fail_fast
        self.done: set[str] = set()
        self.stopped = False  # --on-error fail met a bad item
        self.progress = None
        self._errlog = None
        self._logged = 0

    # ------------------------------------------------------------------ resume
    def prepare_resume(self, output: Path) -> None:
        from ..io import open_results

        if not self.store.exists() and output.exists():
            self.store.seed(open_results(output).rows())
        self._check_settings()
        self.done = self.store.done_ids()

    def _check_settings(self) -> None:
        from ..errors import InvalidRequestError
        from ..schema import OK

        earlier = next((r for r in self.store.rows() if r["status"] == OK), None)
        if earlier is None:
            return
        now = {
            "model": self.explainer.model_name,
            "method": self.method.value,
            "granularity": self.granularity.value,
        }
        params = earlier.get("params") or {}
        changed = [f"{k} {earlier.get(k)} -> {v}" for k, v in now.items() if earlier.get(k) != v]
        from ..methods.registry import get_method

        options = get_method(self.method).parse_options(self.options).model_dump()  # defaults too
        changed += [f"{k} {params.get(k)!r} -> {v!r}" for k, v in options.items() if params.get(k) != v]
        if earlier.get("seed") is not None and earlier["seed"] != self.seed:
            changed.append(f"seed {earlier['seed']} -> {self.seed}")
        if changed:
            raise InvalidRequestError(
                f"--resume would mix settings in one output ({'; '.join(changed)}); "
                "resume with the same settings, or use --overwrite to start over"
            )

    # --------------------------------------------------------------------- run
    def execute(self, input_file, output, layout, errors_path, *, shard, limit) -> int:
        """Run, then write OUT; returns how many items failed (in OUT, or rejected as duplicates)."""
        from ..io import JsonlAppender, count_nonblank_lines
        from .progress import BatchProgress

        index, count = shard
        total = max(count_nonblank_lines(input_file) - index + count - 1, 0) // count
        total = min(total, limit) if limit else total
        console = stderr_console()
        self._errlog = JsonlAppender(errors_path, mode="w") if errors_path else None
        self.progress = BatchProgress(total, console)
        start = time.monotonic()
        self.store.start_run()
        try:
            with _sigterm_raises():
                self._loop(input_file, shard, limit)
                self._close()
                if self.stopped:
                    console.print(
                        f"stopped at the first bad item (--on-error fail); the {self.progress.ok} items "
                        f"before it are kept in {self.store.dir}. Fix the line, then rerun with --resume.",
                        style="red",
                        soft_wrap=True,
                    )
                    return self.progress.failed
                n_items, n_errors = self._finish(output, layout)
        except (KeyboardInterrupt, Terminated) as exc:
            self._close()
            console.print(
                f"interrupted: {self.progress.ok} items finished in this run; every finished item is kept in "
                f"{self.store.dir}. Rerun the same command with --resume to compute the rest.",
                style="yellow",
                soft_wrap=True,
            )
            raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
        except BaseException:
            self._close()
            console.print(f"finished items are kept in {self.store.dir}; rerun with --resume", soft_wrap=True)
            raise
        seconds = time.monotonic() - start
        p = self.progress
        console.print(
            f"wrote {output}: {n_items} items ({n_items - n_errors} ok, {n_errors} failed). This run: "
            f"{p.ok + p.failed} items in {seconds:.1f}s ({(p.ok + p.failed) / max(seconds, 1e-9):.1f} items/s)"
            + (f", {p.skipped} already done" if p.skipped else ""),
            soft_wrap=True,
            highlight=False,
        )
        return max(n_errors, p.failed)

    def _finish(self, output: Path, layout: str) -> tuple[int, int]:
        """Merge the partial store into OUT (atomically), then drop the store."""
        from ..io import write_rows
        from ..schema import OK

        errors = 0

        def counted(rows):
            nonlocal errors
            for row in rows:
                errors += row["status"] != OK
                yield row

        n_items = write_rows(output, counted(self.store.merged()), layout)
        self.store.remove()
        return n_items, errors

    def _close(self) -> None:
        self.store.close_run()
        if self._errlog is not None:
            self._errlog.close()
        if self.progress is not None:
            self.progress.stop()

    def _loop(self, input_file: Path, shard: tuple[int, int], limit: int | None) -> None:
        from ..schema import result_row

        pending: deque = deque()  # BatchItems in input order: (item, sent to the library)
        items = self._items(input_file, shard, limit, pending)
        outcomes = self.explainer.iter_explain(
            items,
            method=self.method,
            granularity=self.granularity,
            seed=self.seed,
            per_target_token=self.per_target_token,
            **self.options,
        )
        for outcome in outcomes:
            if not self._drain_failed(pending):
                return
            item, _ = pending.popleft()
            if outcome.error is not None:
                self._failed(item, str(outcome.error))
                if self.stopped:
                    return
            else:
                self.store.append(result_row(outcome.result, item_id=item.id, line=item.line, meta=item.meta))
                self.progress.update(ok=1)
        self._drain_failed(pending)

    def _items(self, input_file, shard, limit, pending) -> Iterator[dict[str, Any]]:
        """The requests for the library; unreadable lines are queued as failures in their place."""
        from ..io import iter_jsonl, parse_batch_item

        index, count = shard
        seen: dict[str, int] = {}
        for ordinal, entry in enumerate(iter_jsonl(input_file)):
            if ordinal % count != index:
                continue
            if limit is not None and ordinal // count >= limit:
                return
            item = parse_batch_item(entry)
            if item.id in self.done:
                self.progress.update(skipped=1)
                continue
            if item.error is None and item.id in seen:
                item.error = (
                    f"id {item.id!r} is used again (first on line {seen[item.id]}); ids must be unique"
                )
                item.duplicate = True  # reported, but gets no row: OUT holds each id once
            seen.setdefault(item.id, item.line)
            pending.append((item, item.error is None))
            if item.error is None:
                yield item.request
            elif self.fail_fast:
                return

    def _drain_failed(self, pending) -> bool:
        """Report the unreadable items at the head of the queue; False once --on-error fail stops."""
        while pending and not pending[0][1]:
            item, _ = pending.popleft()
            self._failed(item, item.error)
            if self.stopped:
                return False
        return True

    def _failed(self, item, message: str) -> None:
        from ..schema import error_row

        if not item.duplicate:
            self.store.append(
                error_row(
                    item_id=item.id,
                    line=item.line,
                    error=message,
                    model=self.explainer.model_name,
                    method=self.method.value,
                    granularity=self.granularity.value,
                    seed=self.seed,
                    meta=item.meta,
                )
            )
        if self._errlog is not None:
            self._errlog.write({"line": item.line, "id": item.id, "error": message})
        self.progress.update(failed=1)
        self._logged += 1
        if self._logged <= MAX_ERRORS_LOGGED:
            self.progress.log(f"line {item.line} (id {item.id}): {message}", style="red")
        elif self._logged == MAX_ERRORS_LOGGED + 1:
            self.progress.log(
                "further errors are not printed; see --errors FILE or the status column", style="red"
            )
        if self.fail_fast:
            self.stopped = True
