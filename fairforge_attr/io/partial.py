"""Where a batch run keeps finished items until the output file is complete.

``OUT.partial/`` holds one append-only JSONL file per run (``run-000.jsonl``, ``run-001.jsonl``
after a ``--resume``, ...), one wide row per finished item, flushed as each item finishes. A
killed run loses at most the line it was writing; a torn last line is ignored when read back.
At the end the runs are merged (input order, each id once, the newest row of an id wins) into
OUT, and the folder is removed.

A row that cannot be trusted (not UTF-8, not JSON, no status, an id that is not a string, a
line that is not a number) is skipped as damaged, and ``damage_note()`` says so in one line:
its item counts as not done, so a resumed run computes it again. A ``superseded`` row is a
tombstone: the item it names (an unreadable line that has since been fixed) is left out.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .schema import ERROR, OK
from .writers import JsonlAppender

SUPERSEDED = "superseded"  # a tombstone row: its id is no longer an item (never written to OUT)
STATUSES = (OK, ERROR, SUPERSEDED)
RUN_GLOB = "run-*.jsonl"


class PartialStore:
    def __init__(self, out: str | Path) -> None:
        out = Path(out)
        self.dir = out.with_name(out.name + ".partial")
        self._run: JsonlAppender | None = None
        self._damaged: dict[str, int] = {}  # run file name -> rows skipped at its last reading

    def exists(self) -> bool:
        return self.dir.is_dir()

    def runs(self) -> list[Path]:
        """The run files, oldest first (a folder that happens to match the name is not one)."""
        return sorted(p for p in self.dir.glob(RUN_GLOB) if p.is_file()) if self.exists() else []

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every stored row, run after run, unmerged."""
        for path in self.runs():
            yield from self._read(path)

    def winners(self) -> dict[str, tuple[int, str]]:
        """id -> (index of the run whose row counts, that row's status)."""
        latest: dict[str, tuple[int, str]] = {}
        for run, path in enumerate(self.runs()):
            for row in self._read(path):
                latest[row["id"]] = (run, row["status"])
        return latest

    def done_ids(self) -> set[str]:
        """Ids whose row counts and succeeded: a resumed run skips these and retries the rest."""
        return {i for i, (_, status) in self.winners().items() if status == OK}

    def count(self) -> int:
        """How many distinct items are stored."""
        return sum(status != SUPERSEDED for _, status in self.winners().values())

    def damage_note(self) -> str | None:
        """One line about the damaged rows met at the last reading, or None."""
        if not any(self._damaged.values()):
            return None
        where = ", ".join(f"{n} in {name}" for name, n in self._damaged.items() if n)
        total = sum(self._damaged.values())
        return f"{self.dir}: skipped {total} damaged rows ({where}); those items are computed again"

    def seed(self, rows: Iterable[dict[str, Any]]) -> None:
        """Start from the rows of an earlier, finished output (resuming after it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with JsonlAppender(self.dir / "run-000.jsonl", mode="x") as run:
            for row in rows:
                run.write(row)

    def start_run(self) -> None:
        """Open a new run file. Created exclusively: an existing run file (another writer's,
        or one a stale handle still points at) is never truncated."""
        self.dir.mkdir(parents=True, exist_ok=True)
        index = len(list(self.dir.glob(RUN_GLOB)))
        while self._run is None:
            try:
                self._run = JsonlAppender(self.dir / f"run-{index:03d}.jsonl", mode="x")
            except FileExistsError:
                index += 1

    def append(self, row: dict[str, Any]) -> None:
        if self._run is None:
            raise RuntimeError("start_run() first")
        self._run.write(row)

    def supersede(self, item_id: str, line: int) -> None:
        """Leave ``item_id`` out from now on (an unreadable line's error row, now that the line
        reads as another item)."""
        self.append({"id": item_id, "line": line, "status": SUPERSEDED})

    def close_run(self) -> None:
        if self._run is not None:
            self._run.close()
            self._run = None

    def merged(self) -> Iterator[dict[str, Any]]:
        """Every item once, in input-line order. The local loop writes each run in that order;
        a distributed backend writes rows in the order they come back, and such a run is read
        back through an index of (line, byte offset) sorted by line (memory: the index only)."""
        winners = self.winners()
        streams = [self._in_line_order(run, path) for run, path in enumerate(self.runs())]
        emitted: set[str] = set()
        for _, run, row in heapq.merge(*streams, key=lambda t: (t[0], t[1])):
            # .get: a row appended after winners() was read (a run still writing) counts as is
            if winners.get(row["id"], (run,))[0] == run and row["id"] not in emitted:
                emitted.add(row["id"])
                if row["status"] != SUPERSEDED:
                    yield row

    def remove(self) -> None:
        """Rename first, then delete: a kill in the middle never leaves a store that has lost
        some of its runs (which --resume would take for the truth)."""
        self.close_run()
        if self.exists():
            trash = self.dir.with_name(f"{self.dir.name}.removing-{os.getpid()}")
            os.replace(self.dir, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def _in_line_order(self, run: int, path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """(line, run, row) for every trusted row of a run, by line. The local loop writes a
        run in line order already; a distributed backend's run is read back through an index
        of (line, byte offset) sorted by line (memory: the index only)."""
        index = [(row.get("line") or 0, offset) for offset, row in self._read_at(path)]
        if all(a[0] <= b[0] for a, b in itertools.pairwise(index)):
            for _, row in self._read_at(path):
                yield row.get("line") or 0, run, row
            return
        with open(path, "rb") as f:
            for line, offset in sorted(index):
                f.seek(offset)
                row = _valid_row(f.readline())
                if row is not None:  # trusted when indexed; a row changed since is skipped
                    yield line, run, row

    def _read(self, path: Path) -> Iterator[dict[str, Any]]:
        for _, row in self._read_at(path):
            yield row

    def _read_at(self, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
        """(byte offset, row) of every complete, trusted row of a run file; damaged rows are
        counted for ``damage_note``."""
        damaged = 0
        offset = 0
        with open(path, "rb") as f:
            for raw in f:
                start, offset = offset, offset + len(raw)
                if not raw.endswith(b"\n"):
                    break  # torn write of a killed run: that item was not finished
                row = _valid_row(raw)
                if row is None:
                    damaged += 1
                else:
                    yield start, row
        self._damaged[path.name] = damaged


def _valid_row(raw: bytes) -> dict[str, Any] | None:
    """The row of one stored line, or None when the line cannot be trusted."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(row, dict) or row.get("status") not in STATUSES:
        return None
    item_id, line = row.get("id"), row.get("line")
    if not isinstance(item_id, str) or not item_id:
        return None
    if line is not None and (not isinstance(line, int) or isinstance(line, bool)):
        return None
    return row
