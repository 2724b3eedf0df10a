"""Reading result files back: batch outputs (Parquet/JSONL/JSON, wide or long) and the JSON
that ``ffattr explain --output`` writes. Everything comes back as wide rows.

The readers of each format: ``inspect_*`` says which layout a file holds, ``read_*`` streams
its raw rows. Which pair a file name gets is decided by the format table (``formats.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidRequestError
from .jsonl import JsonProblem, loads_strict
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
    if not {"id", "status"} <= set(names):
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise InvalidRequestError(
            f"{str(path)!r} is not a result file of ffattr (no id and status columns; its columns: {shown})"
        )
    return layout_of(names)


def read_parquet(path: Path, columns: list[str] | None, layout: str) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    if columns is not None and layout == "long":
        columns = sorted(set(columns) | {"id"})
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=BATCH_SIZE, columns=columns):
            yield from from_arrow(batch)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError, IO/thrift errors OSError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidRequestError(f"{str(path)!r} is damaged: a page cannot be read ({first})") from exc


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
def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if raw.strip():
                yield _row(_loads(_text(raw, path, number), path, f"line {number}"), path, f"line {number}")


def inspect_jsonl(path: Path) -> str:
    first = next(_jsonl_rows(path), None)
    return layout_of(list(first) if first else ["units"])


def read_jsonl(path: Path, columns: list[str] | None, layout: str) -> Iterator[dict[str, Any]]:
    return _jsonl_rows(path)


# ---------------------------------------------------------------------------- JSON
def inspect_json(path: Path) -> str:
    value = _load_json(path)
    if isinstance(value, dict) and "attributions" in value:
        return "result"
    if isinstance(value, list):
        rows = [_row(v, path, f"item {i}") for i, v in enumerate(value)]
        return layout_of(list(rows[0]) if rows else ["units"])
    raise InvalidRequestError(
        f"{str(path)!r} holds neither a result (ffattr explain --output) nor a list of rows (ffattr batch)"
    )


def read_json(path: Path, columns: list[str] | None, layout: str) -> Iterator[dict[str, Any]]:
    value = _load_json(path)
    if layout == "result":
        from pydantic import ValidationError

        from ..results import AttributionResult

        try:
            result = AttributionResult.model_validate(value)
        except ValidationError as exc:
            raise InvalidRequestError(
                f"{str(path)!r} is not a result of ffattr explain: {exc.errors()[0]['msg']}"
            ) from None
        yield result_row(result, item_id="1", line=None, meta={})
    else:
        yield from value


# ------------------------------------------------------------------------- helpers
def _text(raw: bytes, path: Path, number: int) -> str:
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"{str(path)!r}, line {number} is not UTF-8 text (byte {exc.start})"
        ) from None


def _row(value: Any, path: Path, where: str) -> dict[str, Any]:
    """A row as ffattr writes it, or an InvalidRequestError saying what the file is not."""
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or "status" not in value:
        what = type(value).__name__ if not isinstance(value, dict) else "an object without id and status"
        raise InvalidRequestError(
            f"{str(path)!r}, {where} is not a result row of ffattr (got {what}): "
            "not a list of result rows written by ffattr batch"
        )
    return value


def _loads(text: str, path: Path, where: str) -> Any:
    try:
        return loads_strict(text)
    except JsonProblem as exc:
        raise InvalidRequestError(f"{str(path)!r}, {where}: {exc}") from None


def _load_json(path: Path) -> Any:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"{str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    return _loads(text, path, "its JSON")


def _group_long(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    group: list[dict[str, Any]] = []
    for row in rows:
        if group and row["id"] != group[0]["id"]:
            yield wide_from_long(group)
            group = []
        group.append(row)
    if group:
        yield wide_from_long(group)
