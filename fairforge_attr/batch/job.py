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

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FairForgeError, InvalidRequestError, OutputError
from ..io.formats import open_results, output_format, write_rows
from ..io.jsonl import BatchItem, count_nonblank_lines, iter_jsonl, parse_batch_item, unreadable_id
from ..io.partial import PartialStore
from ..io.schema import ERROR, OK
from ..io.writers import JsonlAppender
from ..plan import DEFAULT_MAX_NEW_TOKENS, Plan
from ..types import AttributionMethod, Granularity
from .lock import OutputLock
from .rows import attribute_rows, recorded_plan

if TYPE_CHECKING:
    from ..api import AttributionExplainer

Shard = tuple[int, int]  # (0-based index, count)


def count_items(input_file: str | Path, shard: Shard = (0, 1), limit: int | None = None) -> int | None:
    """How many items a job over ``input_file`` will see (for a progress bar's total); None
    when that cannot be known beforehand (stdin)."""
    index, count = shard
    lines = count_nonblank_lines(input_file)
    if lines is None:
        return limit
    total = max(lines - index + count - 1, 0) // count
    return min(total, limit) if limit else total


def refuse_existing_output(
    output: str | Path, *, to_resume: str = "add --resume", to_overwrite: str = "add --overwrite"
) -> None:
    """Raise InvalidRequestError when ``output`` exists or holds an unfinished run: neither is
    touched unless the caller chose to resume or to start over (``to_resume`` and
    ``to_overwrite`` say how, in the caller's words)."""
    refuse_locked_output(output)
    store = PartialStore(output)
    if store.exists():
        raise InvalidRequestError(
            f"{store.dir} holds an unfinished run; {to_resume} to finish it or {to_overwrite} to start over"
        )
    if Path(output).exists():
        raise InvalidRequestError(
            f"{output} exists; {to_overwrite} to replace it or {to_resume} to compute only missing ids"
        )


def refuse_locked_output(output: str | Path) -> None:
    """Raise InvalidRequestError when another batch run is writing ``output`` now."""
    lock = OutputLock(output)
    holder = lock.holder()
    if holder is not None:
        raise lock.refusal(holder)


class BatchJob:
    """Attribute every line of a JSONL file into ``output`` (.parquet, .jsonl or .json, or a
    folder of Parquet parts when the name ends with ``/``).

    The settings are one Plan: give ``plan`` (e.g. one built by ``explainer.plan(...)``), or
    ``method``, ``granularity``, ``seed``, ``per_target_token``, ``faithfulness``,
    ``generate``, ``max_new_tokens``, ``options`` and the refinement settings
    (``coarse_granularity`` or ``screen``, ``refine_top_k``) to build it (defaults: the explainer's).
    With ``generate``, a line without a target is explained with the model's own greedy
    answer, stored in its row (``target_generated``); a resumed job keeps the answers it
    stored. Call ``resume()`` to keep what an earlier run of ``output``
    finished, or ``start_over()`` to replace it; without either, ``run`` refuses an existing
    ``output``.

    ``resume()`` and ``start_over()`` take the output's lock (``OUT.lock``): a second job on
    the same output is refused, naming the run that holds it. ``finish()`` and ``close()`` give
    it back (use the job as a context manager). ``notes`` collects what a caller should tell
    the user (a stale lock taken over, damaged rows skipped in the store).

    ``on_progress(kind)`` is called once per item with ``"ok"``, ``"failed"`` or ``"skipped"``
    (already done: resume); ``on_error(item, message)`` once per failed item. ``refused``
    counts this run's items that failed without a row (a repeated id).
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
        coarse_granularity: Granularity | str | None = None,
        refine_top_k: int | None = None,
        screen: AttributionMethod | str | None = None,
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
                coarse_granularity=coarse_granularity,
                refine_top_k=refine_top_k,
                screen=screen,
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
        self.lock = OutputLock(self.output)
        self.notes: list[str] = []
        self.refused = 0
        self._stale_unreadable: dict[int, str] = {}  # line -> "line-N" id of its stored error row

    # -------------------------------------------------------------- before a run
    def start_over(self) -> None:
        """Forget any unfinished run of this output; ``finish`` replaces an existing one."""
        with self._claiming():
            self.store.remove()

    def resume(self) -> None:
        """Keep the items already done (in ``OUT.partial/``, else in an existing OUT); refuse
        when they were computed with other settings (checked before the store is touched, so a
        refused resume leaves nothing behind)."""
        with self._claiming():
            if not self.store.exists() and self.output.exists():
                self._check_settings(open_results(self.output).rows())
                self.store.seed(open_results(self.output).rows())
            else:
                self._check_settings(self.store.rows())
            self.done = self.store.done_ids()
            damage = self.store.damage_note()
            if damage:
                self.notes.append(damage)
            winners = self.store.winners()
            self._stale_unreadable = {
                row["line"]: row["id"]
                for row in self.store.rows()
                if row["line"] is not None
                and row["id"] == unreadable_id(row["line"])
                and winners.get(row["id"], (0, ""))[1] == ERROR
            }

    def close(self) -> None:
        """Give the output's lock back (a finished, failed or interrupted job alike)."""
        self.store.close_run()
        self.lock.release()

    def __enter__(self) -> BatchJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _claiming(self) -> Iterator[None]:
        """Take the lock for the block; a block that fails (settings refused, a store that cannot
        be removed) gives it back, so a refused job never keeps others out."""
        note = self.lock.acquire()
        if note:
            self.notes.append(note)
        try:
            yield
        except BaseException:
            self.lock.release()
            raise
        self._claimed = True

    def _check_settings(self, rows: Iterator[dict[str, Any]]) -> None:
        """The Plan the stored rows were computed with must be this job's (and the model)."""
        earlier = next((r for r in rows if r["status"] == OK), None)
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
        or raises (an interruption included). A file that cannot be written raises
        OutputError, saying how many finished items the store keeps."""
        if not self._claimed:
            refuse_existing_output(self.output, to_resume="call resume()", to_overwrite="call start_over()")
        try:
            self.store.start_run()
            self._errlog = JsonlAppender(errors_path, mode="w") if errors_path else None
        except OSError as exc:
            self.store.close_run()
            raise self._output_error(f"cannot start writing ({exc.filename or self.store.dir})", exc) from exc
        try:
            self._loop(Path(input_file), shard, limit)
        except BaseException:
            with contextlib.suppress(OSError):  # the error in flight says more than these would
                self._close_files()
            raise
        try:
            self._close_files()
        except OSError as exc:
            raise self._output_error("could not finish writing", exc) from exc

    def _close_files(self) -> None:
        try:
            self.store.close_run()
        finally:
            if self._errlog is not None:
                self._errlog.close()

    def finish(self, layout: str = "wide") -> tuple[int, int]:
        """Write OUT from the partial store (atomically), then drop the store and the lock.
        Returns (items written, of which failed). OUT is never replaced by a file holding fewer
        items than the store; if it cannot be written, the store stays for ``--resume``."""
        errors = 0

        def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            nonlocal errors
            for row in rows:
                errors += row["status"] != OK
                yield row

        stored = self.store.count()
        try:
            n_items = write_rows(
                self.output, counted(self.store.merged()), layout, fmt=self.format, min_items=stored
            )
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(
                f"could not write {self.output}: {exc.strerror or exc}; all {stored} items are kept in "
                f"{self.store.dir}: make room, then rerun with --resume to write it"
            ) from exc
        self.store.remove()
        self.lock.release()
        return n_items, errors

    def _output_error(self, what: str, exc: OSError) -> OutputError:
        """What failed, why, and (read back from the store) what is kept."""
        try:
            kept = self.store.count()
        except OSError:
            kept = 0
        where = (
            f"{kept} finished items are kept in {self.store.dir}: make room, then rerun with --resume"
            if kept
            else "nothing was kept"
        )
        return OutputError(f"{what}: {exc.strerror or exc}; {where}")

    def _append(self, item: BatchItem, row: dict[str, Any]) -> None:
        try:
            self.store.append(row)
        except OSError as exc:
            raise self._output_error(
                f"could not save line {item.line} (id {item.id}) to {self.store.dir}", exc
            ) from exc

    def _loop(self, input_file: Path, shard: Shard, limit: int | None) -> None:
        sent: deque[BatchItem] = deque()  # items handed to attribute_rows, row not yet back
        for row in attribute_rows(self.explainer, self.plan, self._items(input_file, shard, limit, sent)):
            if not self._take(sent.popleft(), row):
                return

    def _take(self, item: BatchItem, row: dict[str, Any]) -> bool:
        """Keep the row of a finished item; False when the job stops here (fail_fast)."""
        if row["status"] == OK:
            self._append(item, row)
            self.on_progress("ok")
            return True
        self._failed(item, row)
        return not self.stopped

    def _items(
        self, input_file: Path, shard: Shard, limit: int | None, sent: deque[BatchItem]
    ) -> Iterator[BatchItem]:
        """The items of this shard that are not done yet; a repeated id becomes an unreadable
        item in its place. A line whose id cannot be read is never skipped and claims no id."""
        index, count = shard
        seen: dict[str, int] = {}
        for ordinal, entry in enumerate(iter_jsonl(input_file)):
            if ordinal % count != index:
                continue
            if limit is not None and ordinal // count >= limit:
                return
            item = parse_batch_item(entry, generate=self.plan.generate)
            if not item.unreadable:
                self._retire_stale(item)
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

    def _retire_stale(self, item: BatchItem) -> None:
        """An earlier run could not read this line and stored an error under ``line-N``; the
        line now reads as a real item, so that row is left out of OUT."""
        stale = self._stale_unreadable.pop(item.line, None)
        if stale is not None and stale != item.id:
            try:
                self.store.supersede(stale, item.line)
            except OSError as exc:
                raise self._output_error(f"could not update {self.store.dir}", exc) from exc

    def _failed(self, item: BatchItem, row: dict[str, Any]) -> None:
        message = row["error"]
        if item.duplicate:
            self.refused += 1
        else:
            self._append(item, row)
        if self._errlog is not None:
            try:
                self._errlog.write({"line": item.line, "id": item.id, "error": message})
            except OSError as exc:
                raise self._output_error(f"could not write the error log {self._errlog.path}", exc) from exc
        self.on_progress("failed")
        self.on_error(item, message)
        if self.fail_fast:
            self.stopped = True
