"""Where a batch run keeps finished items until the output file is complete.

``OUT.partial/`` holds one append-only JSONL file per run (``run-000.jsonl``, ``run-001.jsonl``
after a ``--resume``, ...), one wide row per finished item, flushed as each item finishes. A
killed run loses at most the line it was writing; a torn last line is ignored when read back.
At the end the runs are merged (input order, each id once, the newest row of an id wins) into
OUT, and the folder is removed.
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

from .schema import OK
from .writers import JsonlAppender


class PartialStore:
    def __init__(self, out: str | Path) -> None:
        out = Path(out)
        self.dir = out.with_name(out.name + ".partial")
        self._run: JsonlAppender | None = None

    def exists(self) -> bool:
        return self.dir.is_dir()

    def runs(self) -> list[Path]:
        return sorted(self.dir.glob("run-*.jsonl")) if self.exists() else []

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every stored row, run after run, unmerged."""
        for path in self.runs():
            yield from _read_run(path)

    def winners(self) -> dict[str, tuple[int, str]]:
        """id -> (index of the run whose row counts, that row's status)."""
        latest: dict[str, tuple[int, str]] = {}
        for run, path in enumerate(self.runs()):
            for row in _read_run(path):
                latest[row["id"]] = (run, row["status"])
        return latest

    def done_ids(self) -> set[str]:
        """Ids whose row counts and succeeded: a resumed run skips these and retries the rest."""
        return {i for i, (_, status) in self.winners().items() if status == OK}

    def count(self) -> int:
        """How many distinct items are stored."""
        return len(self.winners())

    def seed(self, rows: Iterable[dict[str, Any]]) -> None:
        """Start from the rows of an earlier, finished output (resuming after it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with JsonlAppender(self.dir / "run-000.jsonl", mode="w") as run:
            for row in rows:
                run.write(row)

    def start_run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._run = JsonlAppender(self.dir / f"run-{len(self.runs()):03d}.jsonl", mode="w")

    def append(self, row: dict[str, Any]) -> None:
        if self._run is None:
            raise RuntimeError("start_run() first")
        self._run.write(row)

    def close_run(self) -> None:
        if self._run is not None:
            self._run.close()
            self._run = None

    def merged(self) -> Iterator[dict[str, Any]]:
        """Every item once, in input-line order. The local loop writes each run in that order;
        a distributed backend writes rows in the order they come back, and such a run is read
        back through an index of (line, byte offset) sorted by line (memory: the index only)."""
        winners = self.winners()
        streams = [_in_line_order(run, path) for run, path in enumerate(self.runs())]
        emitted: set[str] = set()
        for _, run, row in heapq.merge(*streams, key=lambda t: (t[0], t[1])):
            # .get: a row appended after winners() was read (a run still writing) counts as is
            if winners.get(row["id"], (run,))[0] == run and row["id"] not in emitted:
                emitted.add(row["id"])
                yield row

    def remove(self) -> None:
        """Rename first, then delete: a kill in the middle never leaves a store that has lost
        some of its runs (which --resume would take for the truth)."""
        self.close_run()
        if self.exists():
            trash = self.dir.with_name(f"{self.dir.name}.removing-{os.getpid()}")
            os.replace(self.dir, trash)
            shutil.rmtree(trash, ignore_errors=True)


def _in_line_order(run: int, path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line, run, row) for every row of a run, by line."""
    index = [(row.get("line") or 0, offset) for offset, row in _read_run_at(path)]
    if all(a[0] <= b[0] for a, b in itertools.pairwise(index)):
        for row in _read_run(path):
            yield row.get("line") or 0, run, row
        return
    with open(path, "rb") as f:
        for line, offset in sorted(index):
            f.seek(offset)
            yield line, run, json.loads(f.readline())


def _read_run(path: Path) -> Iterator[dict[str, Any]]:
    for _, row in _read_run_at(path):
        yield row


def _read_run_at(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(byte offset, row) of every complete row of a run file."""
    offset = 0
    with open(path, "rb") as f:
        for raw in f:
            start, offset = offset, offset + len(raw)
            if not raw.endswith(b"\n"):
                return  # torn write of a killed run: that item was not finished
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(row, dict) and "id" in row:
                yield start, row
