"""The batch pipeline behind ``ffattr batch``: JSONL in, one row per item out, resumable.

Where finished items live: each one is appended (and flushed) to ``OUT.partial/`` as soon as
it is done (see :mod:`.partial`). OUT itself is written only by :meth:`BatchJob.finish`, from
that store, under a temporary name renamed into place. A Ctrl-C, a SIGTERM or a crash leaves
every finished item in ``OUT.partial/``, and a resumed job computes only the rest.

Items are attributed by ``AttributionExplainer.iter_explain``, which packs the perturbations
of several items into shared forward passes; this module only reads, routes and writes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidRequestError
from ..schema import OK, error_row, result_row
from .jsonl import BatchItem, count_nonblank_lines, iter_jsonl, parse_batch_item
from .partial import PartialStore
from .results import open_results
from .writers import JsonlAppender, write_rows

Shard = tuple[int, int]  # (0-based index, count)


def count_items(input_file: str | Path, shard: Shard = (0, 1), limit: int | None = None) -> int:
    """How many items a job over ``input_file`` will see (for a progress bar's total)."""
    index, count = shard
    total = max(count_nonblank_lines(input_file) - index + count - 1, 0) // count
    return min(total, limit) if limit else total


class BatchJob:
    """Attribute every line of a JSONL file into ``output`` (.parquet, .jsonl or .json).

    ``on_progress(kind)`` is called once per item with ``"ok"``, ``"failed"`` or ``"skipped"``
    (already done: resume); ``on_error(item, message)`` once per failed item.
    """

    def __init__(
        self,
        explainer: Any,
        output: str | Path,
        *,
        method: Any,
        granularity: Any,
        seed: int = 0,
        per_target_token: bool = False,
        options: dict[str, Any] | None = None,
        fail_fast: bool = False,
    ) -> None:
        from ..methods.registry import get_method
        from ..types import Granularity

        self.explainer = explainer
        self.output = Path(output)
        self.store = PartialStore(self.output)
        self.spec = get_method(method)
        self.granularity = Granularity.parse(granularity)
        self.seed = seed
        self.per_target_token = per_target_token
        self.options = dict(options or {})
        self.fail_fast = fail_fast
        self.done: set[str] = set()
        self.stopped = False  # fail_fast met a bad item
        self.on_progress: Callable[[str], None] = lambda kind: None
        self.on_error: Callable[[BatchItem, str], None] = lambda item, message: None
        self._errlog: JsonlAppender | None = None

    # -------------------------------------------------------------- before a run
    def start_over(self) -> None:
        """Forget any unfinished run of this output."""
        self.store.remove()

    def resume(self) -> None:
        """Keep the items already done (in ``OUT.partial/``, else in an existing OUT); refuse
        when they were computed with other settings."""
        if not self.store.exists() and self.output.exists():
            self.store.seed(open_results(self.output).rows())
        self._check_settings()
        self.done = self.store.done_ids()

    def _check_settings(self) -> None:
        earlier = next((r for r in self.store.rows() if r["status"] == OK), None)
        if earlier is None:
            return
        now = {
            "model": self.explainer.model_name,
            "method": self.spec.method.value,
            "granularity": self.granularity.value,
        }
        params = earlier.get("params") or {}
        options = self.spec.parse_options(self.options).model_dump()  # the defaults count too
        changed = [f"{k} {earlier.get(k)} -> {v}" for k, v in now.items() if earlier.get(k) != v]
        changed += [f"{k} {params.get(k)!r} -> {v!r}" for k, v in options.items() if params.get(k) != v]
        if earlier.get("seed") is not None and earlier["seed"] != self.seed:
            changed.append(f"seed {earlier['seed']} -> {self.seed}")
        if changed:
            raise InvalidRequestError(
                f"--resume would mix settings in one output ({'; '.join(changed)}); "
                "resume with the same settings, or use --overwrite to start over"
            )

    # ------------------------------------------------------------------- the run
    def run(
        self,
        input_file: str | Path,
        *,
        shard: Shard = (0, 1),
        limit: int | None = None,
        errors_path: str | Path | None = None,
    ) -> None:
        """Attribute the items; every finished one is in the partial store when this returns
        or raises (an interruption included)."""
        self.store.start_run()
        self._errlog = JsonlAppender(errors_path, mode="w") if errors_path else None
        try:
            self._loop(Path(input_file), shard, limit)
        finally:
            self.store.close_run()
            if self._errlog is not None:
                self._errlog.close()

    def finish(self, layout: str = "wide") -> tuple[int, int]:
        """Write OUT from the partial store (atomically), then drop the store. Returns
        (items written, of which failed)."""
        errors = 0

        def counted(rows):
            nonlocal errors
            for row in rows:
                errors += row["status"] != OK
                yield row

        n_items = write_rows(self.output, counted(self.store.merged()), layout)
        self.store.remove()
        return n_items, errors

    def _loop(self, input_file: Path, shard: Shard, limit: int | None) -> None:
        pending: deque[BatchItem] = deque()  # in input order; unreadable ones are not sent
        outcomes = self.explainer.iter_explain(
            self._requests(input_file, shard, limit, pending),
            method=self.spec.method,
            granularity=self.granularity,
            seed=self.seed,
            per_target_token=self.per_target_token,
            **self.options,
        )
        for outcome in outcomes:
            if not self._drain_unsent(pending):
                return
            item = pending.popleft()
            if outcome.error is not None:
                self._failed(item, str(outcome.error))
                if self.stopped:
                    return
            else:
                self.store.append(result_row(outcome.result, item_id=item.id, line=item.line, meta=item.meta))
                self.on_progress("ok")
        self._drain_unsent(pending)

    def _requests(self, input_file, shard, limit, pending) -> Iterator[dict[str, Any]]:
        """The requests for the library; unreadable lines are queued as failures in their place."""
        index, count = shard
        seen: dict[str, int] = {}
        for ordinal, entry in enumerate(iter_jsonl(input_file)):
            if ordinal % count != index:
                continue
            if limit is not None and ordinal // count >= limit:
                return
            item = parse_batch_item(entry)
            if item.id in self.done:
                self.on_progress("skipped")
                continue
            if item.error is None and item.id in seen:
                item.error = (
                    f"id {item.id!r} is used again (first on line {seen[item.id]}); ids must be unique"
                )
                item.duplicate = True  # reported, but gets no row: OUT holds each id once
            seen.setdefault(item.id, item.line)
            pending.append(item)
            if item.error is None:
                yield item.request
            elif self.fail_fast:
                return

    def _drain_unsent(self, pending: deque[BatchItem]) -> bool:
        """Report the unreadable items at the head of the queue; False once fail_fast stops."""
        while pending and pending[0].error is not None:
            item = pending.popleft()
            self._failed(item, item.error)
            if self.stopped:
                return False
        return True

    def _failed(self, item: BatchItem, message: str) -> None:
        if not item.duplicate:
            self.store.append(
                error_row(
                    item_id=item.id,
                    line=item.line,
                    error=message,
                    model=self.explainer.model_name,
                    method=self.spec.method.value,
                    granularity=self.granularity.value,
                    seed=self.seed if self.spec.uses_seed else None,
                    meta=item.meta,
                )
            )
        if self._errlog is not None:
            self._errlog.write({"line": item.line, "id": item.id, "error": message})
        self.on_progress("failed")
        self.on_error(item, message)
        if self.fail_fast:
            self.stopped = True
