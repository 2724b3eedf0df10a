"""``ffattr batch --backend ray``: the same job as the local loop, its items attributed by a pool
of Ray Data actors.

Who does what:

- The driver (this process) reads the JSONL itself, so every line keeps its number and a bad
  line becomes an error row exactly as in the local loop (``BatchJob._items``: shard, limit,
  resume skips, repeated ids). It loads the tokenizer only, to build the Plan, never the
  weights.
- Ray Data gets the readable items, numbered, and runs ``map_batches`` over them with a fixed
  pool of actors (:class:`RowMaker`): each actor loads the model once, keeps it on its device
  and turns each block of ``rows_per_task`` items into rows with
  :func:`~fairforge_attr.batch.rows.attribute_rows`, the function the local loop calls, so the
  engine still packs the variants of several items into one forward.
- Rows come back to the driver as blocks finish, in any order, and are appended to the same
  partial store as the local loop's (``OUT.partial/``), flushed one by one. A Ctrl-C, a
  SIGTERM or a crash keeps every row that came back; ``--resume`` computes the rest. A worker
  that dies is restarted by Ray and its block retried (a row that arrives twice is kept once).
  OUT is written from the store at the end, in input order, like the local loop's.

Ray is imported only here, and only when a job runs: ``pip install 'fairforge-attr[ray]'``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api import PACK_ITEMS
from ..errors import InvalidRequestError
from ..io.jsonl import BatchItem
from ..model_spec import ModelSpec
from ..plan import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SEED, Plan, build_plan
from ..types import AttributionMethod, Granularity
from .job import BatchJob, Shard
from .ray_address import check_reachable
from .rows import attribute_rows, failure_row

if TYPE_CHECKING:
    import pyarrow as pa


INSTALL_HINT = "pip install 'fairforge-attr[ray]'"
RAY_LOG = "ray.log"  # in OUT.partial/: what Ray printed natively (kept if the run stops)
DEFAULT_ROWS_PER_TASK = PACK_ITEMS  # items per Ray task: as many as the local loop packs


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or an InvalidRequestError that says how to install it."""
    try:
        import ray
        import ray.data  # the extra installs ray[data]; plain ray lacks it
    except ImportError as exc:
        raise InvalidRequestError(
            f"--backend ray needs Ray Data, which is not installed ({exc}); install it with: {INSTALL_HINT}"
        ) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: ``address`` of a running cluster (None: start a local Ray sized to
    this machine, shut down at the end), the actor pool (``num_workers``, default: as many as
    the resources hold), each actor's GPUs and CPUs, and the items per task."""

    address: str | None = None
    num_workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    rows_per_task: int = DEFAULT_ROWS_PER_TASK
    verbose: bool = False  # Ray's own progress bars and logs

    def workers_for(self, resources: dict[str, float]) -> int:
        """The pool size: ``num_workers``, else what the cluster's resources hold. On a Ray this
        job starts itself (no ``address``), a pool that cannot fit is refused: Ray would wait
        for resources that never come. A cluster may autoscale, so there it is Ray's call."""
        kind, per_worker = (
            ("GPU", self.gpus_per_worker) if self.gpus_per_worker > 0 else ("CPU", self.cpus_per_worker)
        )
        have = resources.get(kind, 0.0)
        fit = int(have // per_worker)
        flag = "--gpus-per-worker" if kind == "GPU" else "--cpus-per-worker"
        if self.num_workers is None and fit < 1:
            raise InvalidRequestError(
                f"no worker fits: {per_worker:g} {kind} per worker, Ray has {have:g}; lower {flag}"
            )
        if self.num_workers is None:
            return fit
        if self.address is None and self.num_workers > fit:
            raise InvalidRequestError(
                f"--num-workers {self.num_workers} x {per_worker:g} {kind} each needs "
                f"{self.num_workers * per_worker:g} {kind}s; this machine has {have:g}: lower --num-workers or {flag}"
            )
        return self.num_workers


class DriverModel:
    """The model as the driver sees it: its name (recorded in every row, compared on
    ``--resume``), its tokenizer and vocabulary size (to build the Plan); the weights stay
    with the workers."""

    def __init__(self, worker: ModelSpec) -> None:
        from transformers import AutoConfig

        from ..models import _resolve_source, load_tokenizer, resolved_model_name

        source, _ = _resolve_source(worker.model)
        self.model_name = resolved_model_name(worker.model)
        trust = {"revision": worker.revision, "trust_remote_code": worker.trust_remote_code}
        self.tokenizer = load_tokenizer(source, **trust)
        config = AutoConfig.from_pretrained(source, **trust).get_text_config()
        self.vocab_size = int(getattr(config, "vocab_size", None) or len(self.tokenizer))


class RowMaker:
    """One Ray Data actor: loads the model once, then turns each block of numbered items into
    output rows with ``attribute_rows`` (rows travel as JSON text: their columns vary)."""

    def __init__(self, worker: ModelSpec, plan: Plan, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.explainer = worker.load(quiet=True)
        self.plan = plan

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        rows = []
        for task in batch.column("items").to_pylist():  # one task per call (batch_size=1)
            rows += attribute_rows(self.explainer, self.plan, [_item_from_ray(i) for i in json.loads(task)])
        return pa.table(
            {"line": [r["line"] for r in rows], "row": [json.dumps(r, ensure_ascii=False) for r in rows]}
        )


def _item_to_ray(item: BatchItem) -> dict[str, Any]:
    return {"line": item.line, "id": item.id, "request": item.request, "meta": item.meta}


def _item_from_ray(fields: dict[str, Any]) -> BatchItem:
    return BatchItem(fields["line"], fields["id"], request=fields["request"], meta=fields["meta"])


class RayBatchJob(BatchJob):
    """A :class:`BatchJob` whose items are attributed by Ray Data actors; everything else
    (refusing an existing OUT, ``resume``, ``start_over``, the partial store, ``finish``) is
    the local job's.

    Args:
        worker: how each actor loads the model.
        output: as for BatchJob.
        ray: where and how wide to run.
        method, granularity, seed, per_target_token, generate, max_new_tokens, options,
            coarse_granularity, refine_top_k, screen, plan, fail_fast, faithfulness: as for BatchJob
            (the workers generate missing targets).
    """

    def __init__(
        self,
        worker: ModelSpec,
        output: str | Path,
        *,
        ray: RayOptions | None = None,
        method: AttributionMethod | str | None = None,
        granularity: Granularity | str | None = None,
        seed: int = DEFAULT_SEED,
        per_target_token: bool = False,
        generate: bool = False,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        options: dict[str, Any] | None = None,
        coarse_granularity: Granularity | str | None = None,
        refine_top_k: int | None = None,
        screen: AttributionMethod | str | None = None,
        plan: Plan | None = None,
        fail_fast: bool = False,
        faithfulness: bool | dict[str, Any] = False,
    ) -> None:
        if ray is not None and ray.address:  # a cluster that is not there: said now, not after a long wait
            check_reachable(ray.address)
        driver = DriverModel(worker)
        if plan is None:  # the explainer's defaults, from the tokenizer alone
            plan = build_plan(
                driver.tokenizer,
                driver.vocab_size,
                method=method or AttributionMethod.LIME,
                granularity=granularity or Granularity.WORD,
                seed=seed,
                per_target_token=per_target_token,
                generate=generate,
                max_new_tokens=max_new_tokens,
                faithfulness=faithfulness,
                options=options,
                coarse_granularity=coarse_granularity,
                refine_top_k=refine_top_k,
                screen=screen,
            )
        # the driver stands in for the explainer: its model_name is all the job asks of it
        super().__init__(driver, output, plan=plan, fail_fast=fail_fast)  # type: ignore[arg-type]
        self.worker = worker
        self.ray = ray or RayOptions()
        self.on_status: Callable[[str], None] = lambda message: None

    def _loop(self, input_file: Path, shard: Shard, limit: int | None) -> None:
        items = list(self._items(input_file, shard, limit, deque()))
        unreadable = [item for item in items if item.error is not None]
        if not self.fail_fast:  # reported at once: they need no model
            for item in unreadable:
                self._failed(item, failure_row(self.model_name, self.plan, item))
        readable = [item for item in items if item.error is None]
        if readable:
            self._attribute(readable)
        if self.fail_fast and unreadable and not self.stopped:  # the items before it came first
            self._failed(unreadable[0], failure_row(self.model_name, self.plan, unreadable[0]))

    def _attribute(self, items: Sequence[BatchItem]) -> None:
        pending = {item.line: item for item in items}
        with ray_session(self.ray, log=self.store.dir / RAY_LOG) as ray:
            # no more workers than tasks: a worker without a task would only load the model
            tasks = math.ceil(len(items) / self.ray.rows_per_task)
            workers = min(self.ray.workers_for(ray.cluster_resources()), tasks)
            self.on_status(
                f"Ray: {len(items)} items in tasks of {self.ray.rows_per_task} on {workers} worker(s) "
                f"({self.ray.cpus_per_worker:g} CPU, {self.ray.gpus_per_worker:g} GPU each); "
                "every worker loads the model first"
            )
            for row in _attributed_rows(ray, items, self.worker, self.plan, self.ray, workers):
                item = pending.pop(row["line"], None)
                if item is None:  # a retried block sent this item again: it is stored already
                    continue
                if not self._take(item, row):
                    return


def _attributed_rows(
    ray: Any, items: Sequence[BatchItem], worker: ModelSpec, plan: Plan, options: RayOptions, workers: int
) -> Iterator[dict[str, Any]]:
    """The rows of ``items``, block by block as the actors finish them (in any order)."""
    # One Ray row per task, holding its items: the tasks are exactly the runs of rows_per_task
    # consecutive items. With the default (PACK_ITEMS, the local loop's group), every task
    # packs the very passes the local loop packs, and the scores are bit-identical to it.
    per_task = options.rows_per_task
    tasks = [
        {"items": json.dumps([_item_to_ray(item) for item in items[start : start + per_task]])}
        for start in range(0, len(items), per_task)
    ]
    dataset = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    rows = dataset.map_batches(
        RowMaker,
        fn_constructor_kwargs={
            "worker": worker,
            "plan": plan,
            "threads": max(1, math.floor(options.cpus_per_worker)),
        },
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=options.cpus_per_worker,
        num_gpus=options.gpus_per_worker or None,
    )
    for block in rows.iter_batches(batch_size=None, batch_format="pyarrow"):
        for text in block.column("row").to_pylist():
            yield json.loads(text)


@contextmanager
def ray_session(options: RayOptions, log: Path | None = None) -> Iterator[Any]:
    """Ray, ready: joined at ``options.address``, else the Ray this process already runs,
    else a local one sized to this machine (all its CPUs and GPUs), shut down on the way out.
    Without ``options.verbose``, what Ray's native code prints on this process's stderr goes
    to ``log`` instead (Python-level output, the job's progress included, stays on stderr)."""
    ray = import_ray()
    _quiet(ray, options.verbose)
    with _native_stderr_to(None if options.verbose else log):
        if ray.is_initialized():
            yield ray
            return
        settings: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": options.verbose,
            "logging_level": logging.INFO if options.verbose else logging.ERROR,
        }
        with _keep_sigterm_handler():
            if options.address:
                ray.init(address=options.address, **settings)
            else:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, num_gpus=_local_gpus(), **settings)
        try:
            yield ray
        finally:
            ray.shutdown()


@contextmanager
def _keep_sigterm_handler() -> Iterator[None]:
    """``ray.init`` makes SIGTERM a ``sys.exit`` in the driver; the caller's handler (the CLI
    stops the job where it is and keeps what it has) is put back."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def _native_stderr_to(log: Path | None) -> Iterator[None]:
    """Point file descriptor 2 at ``log`` (Ray's C++ core writes warnings there that are no
    business of a user watching a progress bar), and ``sys.stderr`` at the terminal it was."""
    if log is None:
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 2)
    os.close(target)
    previous = sys.stderr
    swapped = _is_fd2(previous)
    if swapped:  # a real stderr (not a test runner's buffer): keep writing to the terminal
        sys.stderr = open(os.dup(terminal), "w", encoding=previous.encoding, errors="replace", buffering=1)  # noqa: SIM115
    try:
        yield
    finally:
        if swapped:
            sys.stderr.close()
            sys.stderr = previous
        os.dup2(terminal, 2)
        os.close(terminal)


def _is_fd2(stream: Any) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _quiet(ray: Any, verbose: bool) -> None:
    """Ray Data's progress bars and execution banners on stderr only with --verbose: the job
    draws its own progress."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = verbose
    context.print_on_execution_start = verbose
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(level)
