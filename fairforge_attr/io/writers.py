"""Writing results: whole files appear atomically, append-only logs are flushed per line.

The writers of each output format; which one a file name gets is decided by the format
table (``formats.py``)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ..errors import OutputError
from .schema import SCHEMAS, long_rows, to_arrow

ROW_GROUP_ITEMS = 1000  # items per Parquet row group (wide layout)
ROW_GROUP_ROWS = 50_000  # rows per Parquet row group (long layout)
PART_ITEMS = 10_000  # items per Parquet part of a folder output (OUT/)
FSYNC_EVERY_S = 5.0


def dumps(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds,
    so readers see the old file or the complete new one, never half a file."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if tmp.is_dir() and path.exists():
            # a folder cannot replace a folder in one rename: the old one steps aside first,
            # so OUT is missing for the moment between two renames, never half written
            old = path.with_name(f"{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def ensure_writable(path: str | Path) -> None:
    """Create the folder of ``path`` if needed and check that a file can be created in it, so a
    command refuses an output it cannot write before any work, not after it."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{Path(path).name}.probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc} ({exc.filename or folder}); nothing was computed"
        ) from exc


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _expand(row: dict[str, Any], layout: str) -> list[dict[str, Any]]:
    return [row] if layout == "wide" else list(long_rows(row))


def write_parquet_rows(tmp: Path, rows: Iterable[dict[str, Any]], layout: str) -> int:
    """Wide rows -> Parquet of the layout's schema, one row group per ROW_GROUP_ITEMS items
    (ROW_GROUP_ROWS long rows). Returns the number of items."""
    import pyarrow.parquet as pq

    n_items = 0
    buffer: list[dict[str, Any]] = []
    limit = ROW_GROUP_ITEMS if layout == "wide" else ROW_GROUP_ROWS
    with pq.ParquetWriter(tmp, SCHEMAS[layout], compression="zstd") as writer:
        for row in rows:
            n_items += 1
            buffer.extend(_expand(row, layout))
            if len(buffer) >= limit:
                writer.write_table(to_arrow(buffer, layout))
                buffer = []
        if buffer or n_items == 0:
            writer.write_table(to_arrow(buffer, layout))
    return n_items


def write_parquet_parts(tmp: Path, rows: Iterable[dict[str, Any]], layout: str) -> int:
    """Wide rows -> a folder of Parquet files (``part-00000.parquet``, ...) of PART_ITEMS
    items each, all of the layout's schema: many readers (Ray Data, Spark, DuckDB, pyarrow
    datasets) read such a folder in parallel. Returns the number of items."""
    tmp.mkdir()
    n_items = 0
    rows = iter(rows)
    while True:
        first = next(rows, None)
        if first is None and n_items:
            return n_items
        part = tmp / f"part-{n_items // PART_ITEMS:05d}.parquet"
        chunk = [] if first is None else itertools.chain([first], itertools.islice(rows, PART_ITEMS - 1))
        written = write_parquet_rows(part, chunk, layout)
        n_items += written
        if written < PART_ITEMS:
            return n_items


def write_jsonl_rows(tmp: Path, rows: Iterable[dict[str, Any]], layout: str) -> int:
    """Wide rows -> one JSON object per line. Returns the number of items."""
    return _write_json(tmp, rows, layout, as_lines=True)


def write_json_rows(tmp: Path, rows: Iterable[dict[str, Any]], layout: str) -> int:
    """Wide rows -> one JSON array. Returns the number of items."""
    return _write_json(tmp, rows, layout, as_lines=False)


def _write_json(tmp: Path, rows: Iterable[dict[str, Any]], layout: str, as_lines: bool) -> int:
    n_items = 0
    first = True
    with open(tmp, "w", encoding="utf-8") as f:
        if not as_lines:
            f.write("[")
        for row in rows:
            n_items += 1
            for out in _expand(row, layout):
                if as_lines:
                    f.write(dumps(out) + "\n")
                else:
                    f.write(("\n" if first else ",\n") + dumps(out))
                    first = False
        if not as_lines:
            f.write("\n]\n")
    return n_items


class JsonlAppender:
    """Append-only JSONL: each line is flushed as it is written (a killed process loses at most
    the line it was writing), and fsync'ed every few seconds (a crashed machine loses little)."""

    def __init__(self, path: str | Path, mode: str = "a") -> None:
        self.path = Path(path)
        self._file: TextIO = open(self.path, mode, encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._synced = time.monotonic()

    def write(self, value: Any) -> None:
        self._file.write(dumps(value) + "\n")  # one write call: a signal cannot split the line
        self._file.flush()
        if time.monotonic() - self._synced > FSYNC_EVERY_S:
            os.fsync(self._file.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:  # closed even when the disk is full (the flush then raises)
                self._file.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
