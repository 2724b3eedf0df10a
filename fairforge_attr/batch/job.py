"""The local batch loop behind ``ffattr batch``: JSONL in, one row per item out, resumable.

Where finished items live: each one is appended (and flushed) to ``OUT.partial/`` as soon as
it is done (see :mod:`fairforge_attr.io.partial`). OUT itself is written only by
:meth:`BatchJob.finish`, from that store, under a temporary name renamed into place. A Ctrl-C,
a SIGTERM or a crash leaves every finished item in ``OUT.partial/``, and a resumed job
computes only the rest. An existing OUT (or an unfinished run of it) is never touched unless
the job was told to ``resume()`` or ``start_over()``.

Rows come from :func:`~fairforge_attr.batch.rows.attribute_rows`, the function every backend
shares; this module reads, routes, skips and stores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FairForgeError, InvalidRequestError
from ..io.formats import open_results, output_format, write_rows
from ..io.jsonl import BatchItem, count_nonblank_lines, iter_jsonl, parse_batch_item
from ..io.partial import PartialStore
from ..io.schema import OK
from ..io.writers import JsonlAppender
from ..plan import DEFAULT_MAX_NEW_TOKENS, Plan
from ..types import AttributionMethod, Granularity
from .rows import attribute_rows, recorded_plan

if TYPE_CHECKING:
    from ..api import AttributionExplainer

Shard = tuple[int, int]  # (0-based index, count)


def count_items(input_file: str | Path, shard: Shard = (0, 1), limit: int | None = None) -> int:
    """How many items a job over ``input_file`` will see (for a progress bar's total)."""
    index, count = shard
    total = max(count_nonblank_lines(input_file) - index + count - 1, 0) // count
    return min(total, limit) if limit else total


def refuse_existing_output(
    output: str | Path, *, to_resume: str = "add --resume", to_overwrite: str = "add --overwrite"
) -> None:
    """Raise InvalidRequestError when ``output`` exists or holds an unfinished run: neither is
    touched unless the caller chose to resume or to start over (``to_resume`` and
    ``to_overwrite`` say how, in the caller's words)."""
    store = PartialStore(output)
    if store.exists():
        raise InvalidRequestError(
            f"{store.dir} holds an unfinished run; {to_resume} to finish it or {to_overwrite} to start over"
        )
    if Path(output).exists():
        raise InvalidRequestError(
            f"{output} exists; {to_overwrite} to replace it or {to_resume} to compute only missing ids"
        )


class BatchJob:
    """Attribute every line of a JSONL file into ``output`` (.parquet, .jsonl or .json, or a
    folder of Parquet parts when the name ends with ``/``).

    The settings are one Plan: give ``plan`` (e.g. one built by ``explainer.plan(...)``), or
    ``method``, ``granularity``, ``seed``, ``per_target_token``, ``faithfulness``,
    ``generate``, ``max_new_tokens`` and ``options`` to build it (defaults: the explainer's).
    With ``generate``, a line without a target is explained with the model's own greedy
    answer, stored in its row (``target_generated``); a resumed job keeps the answers it
    stored. Call ``resume()`` to keep what an earlier run of ``output``
    finished, or ``start_over()`` to replace it; without either, ``run`` refuses an existing
    ``output``.

    ``on_progress(kind)`` is called once per item with ``"ok"``, ``"failed"`` or ``"skipped"``
    (already done: resume); ``on_error(item, message)`` once per failed item.
    """

    def __init__(
        self,
        explainer: AttributionExplainer,
        output: str | Path,
        *,
        method: AttributionMethod | str | None = None,
        granularity: Granularity | str | None = None,
        seed: int = 0,
        per_target_token: bool = False,
        generate: bool = False,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        options: dict[str, Any] | None = None,
        plan: Plan | None = None,
        fail_fast: bool = False,
        faithfulness: bool | dict[str, Any] = False,
    ) -> None:
        self.format = output_format(output)  # a name without a format fails before any work
        if plan is None:
            plan = explainer.plan(
                method,
                granularity,
                seed=seed,
                per_target_token=per_target_token,
                faithfulness=faithfulness,
                generate=generate,
                max_new_tokens=max_new_tokens,
                **(options or {}),
            )
        self.explainer = explainer
        self.model_name = explainer.model_name
        self.plan = plan
        self.output = Path(output)
        self.store = PartialStore(self.output)
        self.fail_fast = fail_fast
        self.done: set[str] = set()
        self.stopped = False  # fail_fast met a bad item
        self.on_progress: Callable[[str], None] = lambda kind: None
        self.on_error: Callable[[BatchItem, str], None] = lambda item, message: None
        self._errlog: JsonlAppender | None = None
        self._claimed = False  # resume() or start_over() decided what happens to an existing OUT

    # -------------------------------------------------------------- before a run
    def start_over(self) -> None:
        """Forget any unfinished run of this output; ``finish`` replaces an existing one."""
        self.store.remove()
        self._claimed = True

    def resume(self) -> None:
        """Keep the items already done (in ``OUT.partial/``, else in an existing OUT); refuse
        when they were computed with other settings."""
        if not self.store.exists() and self.output.exists():
            self.store.seed(open_results(self.output).rows())
        self._check_settings()
        self.done = self.store.done_ids()
        self._claimed = True

    def _check_settings(self) -> None:
        """The Plan the stored rows were computed with must be this job's (and the model)."""
        earlier = next((r for r in self.store.rows() if r["status"] == OK), None)
        if earlier is None:
            return
        changed = []
        if earlier.get("model") != self.model_name:
            changed.append(f"model {earlier.get('model')} -> {self.model_name}")
        try:
            recorded = recorded_plan(earlier)
        except FairForgeError as exc:
            changed.append(f"the stored rows' settings are not valid now: {exc}")
        else:
            changed += self.plan.changes_from(recorded)
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
        if not self._claimed:
            refuse_existing_output(self.output, to_resume="call resume()", to_overwrite="call start_over()")
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

        def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            nonlocal errors
            for row in rows:
                errors += row["status"] != OK
                yield row

        n_items = write_rows(self.output, counted(self.store.merged()), layout, fmt=self.format)
        self.store.remove()
        return n_items, errors

    def _loop(self, input_file: Path, shard: Shard, limit: int | None) -> None:
        sent: deque[BatchItem] = deque()  # items handed to attribute_rows, row not yet back
        for row in attribute_rows(self.explainer, self.plan, self._items(input_file, shard, limit, sent)):
            if not self._take(sent.popleft(), row):
                return

    def _take(self, item: BatchItem, row: dict[str, Any]) -> bool:
        """Keep the row of a finished item; False when the job stops here (fail_fast)."""
        if row["status"] == OK:
            self.store.append(row)
            self.on_progress("ok")
            return True
        self._failed(item, row)
        return not self.stopped

    def _items(
        self, input_file: Path, shard: Shard, limit: int | None, sent: deque[BatchItem]
    ) -> Iterator[BatchItem]:
        """The items of this shard that are not done yet; a repeated id becomes an unreadable
        item in its place."""
        index, count = shard
        seen: dict[str, int] = {}
        for ordinal, entry in enumerate(iter_jsonl(input_file)):
            if ordinal % count != index:
                continue
            if limit is not None and ordinal // count >= limit:
                return
            item = parse_batch_item(entry, generate=self.plan.generate)
            if item.id in self.done:
                self.on_progress("skipped")
                continue
            if item.error is None and item.id in seen:
                item.error = (
                    f"id {item.id!r} is used again (first on line {seen[item.id]}); ids must be unique"
                )
                item.duplicate = True  # reported, but gets no row: OUT holds each id once
            seen.setdefault(item.id, item.line)
            sent.append(item)
            yield item
            if item.error is not None and self.fail_fast:
                return

    def _failed(self, item: BatchItem, row: dict[str, Any]) -> None:
        message = row["error"]
        if not item.duplicate:
            self.store.append(row)
        if self._errlog is not None:
            self._errlog.write({"line": item.line, "id": item.id, "error": message})
        self.on_progress("failed")
        self.on_error(item, message)
        if self.fail_fast:
            self.stopped = True
