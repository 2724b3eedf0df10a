"""Reading result files back: batch outputs (Parquet/JSONL/JSON, wide or long) and the JSON
that ``ffattr explain --output`` writes. Everything comes back as wide rows.

The readers of each format: ``inspect_*`` says which layout a file holds, ``read_*`` streams
its raw rows. Which pair a file name gets is decided by the format table (``formats.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidRequestError
from .schema import from_arrow, layout_of, result_row, wide_from_long

BATCH_SIZE = 1024


@dataclass
class ResultFile:
    """A result file on disk. ``layout`` is ``wide``, ``long`` or ``result`` (one explain
    result); ``rows()`` streams wide rows (long files are regrouped by item)."""

    path: Path
    format: str  # a name in the format table (formats.py)
    layout: str

    def rows(self, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
        from .formats import format_named  # the table imports this module's readers

        raw = format_named(self.format).read_rows(self.path, columns, self.layout)
        if self.layout == "long":
            return _group_long(raw)
        return raw


# ------------------------------------------------------------------------- Parquet
def inspect_parquet(path: Path) -> str:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-Parquet files
        raise InvalidRequestError(f"{str(path)!r} is not a readable Parquet file: {exc}") from exc
    return layout_of(names)


def read_parquet(path: Path, columns: list[str] | None, layout: str) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if columns is not None and layout == "long":
        columns = sorted(set(columns) | {"id"})
    for batch in pf.iter_batches(batch_size=BATCH_SIZE, columns=columns):
        yield from from_arrow(batch)


def part_files(folder: Path) -> list[Path]:
    """The Parquet parts of a folder output, in order (``part-00000.parquet``, ...)."""
    parts = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".parquet", ".pq"))
    if not parts:
        raise InvalidRequestError(f"{str(folder)!r} is a folder but holds no Parquet parts (*.parquet)")
    return parts


def inspect_parquet_parts(folder: Path) -> str:
    layouts = {inspect_parquet(part) for part in part_files(folder)}
    if len(layouts) > 1:
        raise InvalidRequestError(f"the parts in {str(folder)!r} mix the wide and the long layout")
    return layouts.pop()


def read_parquet_parts(folder: Path, columns: list[str] | None, layout: str) -> Iterator[dict[str, Any]]:
    for part in part_files(folder):
        yield from read_parquet(part, columns, layout)


# --------------------------------------------------------------------------- JSONL
def inspect_jsonl(path: Path) -> str:
    with open(path, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), None)
    keys = list(_loads(first, path, 1)) if first else ["units"]
    return layout_of(keys)


def read_jsonl(path: Path, columns: list[str] | None, layout: str) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if text.strip():
                yield _loads(text, path, number)


# ---------------------------------------------------------------------------- JSON
def inspect_json(path: Path) -> str:
    value = _load_json(path)
    if isinstance(value, dict) and "attributions" in value:
        return "result"
    if isinstance(value, list):
        keys = list(value[0]) if value and isinstance(value[0], dict) else ["units"]
        return layout_of(keys)
    raise InvalidRequestError(
        f"{str(path)!r} holds neither a result (ffattr explain --output) nor a list of rows (ffattr batch)"
    )


def read_json(path: Path, columns: list[str] | None, layout: str) -> Iterator[dict[str, Any]]:
    value = _load_json(path)
    if layout == "result":
        from ..results import AttributionResult

        result = AttributionResult.model_validate(value)
        yield result_row(result, item_id="1", line=None, meta={})
    else:
        yield from value


# ------------------------------------------------------------------------- helpers
def _loads(text: str, path: Path, number: int) -> dict[str, Any]:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"{path}, line {number}: invalid JSON ({exc.msg})") from exc


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from exc


def _group_long(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    group: list[dict[str, Any]] = []
    for row in rows:
        if group and row["id"] != group[0]["id"]:
            yield wide_from_long(group)
            group = []
        group.append(row)
    if group:
        yield wide_from_long(group)
