"""The one table of file formats: which names a format answers to, how it writes batch rows,
how it reads them back, how it writes one explain result. Every choice of a format by file
name (``ffattr batch OUT``, ``ffattr show FILE``, ``ffattr explain --output``, ``BatchJob``)
is a lookup here; adding a format is adding a record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequestError, OutputError
from . import readers, writers
from .readers import ResultFile
from .schema import SCHEMAS

if TYPE_CHECKING:
    from ..results import AttributionResult

PARTS_SUFFIX = "/"  # the "suffix" of a folder output: OUT/ as typed

# write_rows(temporary path, wide rows, layout) -> items written
RowWriter = Callable[[Path, Iterable[dict[str, Any]], str], int]
# read_rows(path, columns or None, layout) -> raw rows
RowReader = Callable[[Path, "list[str] | None", str], Iterator[dict[str, Any]]]
# write_result(result, top_k) -> the file's text
ResultWriter = Callable[["AttributionResult", int], str]


@dataclass(frozen=True)
class Format:
    """One file format. ``suffixes`` are the names it writes and reads (the first one is the
    one error messages suggest); ``read_suffixes`` are other spellings it only reads."""

    name: str
    suffixes: tuple[str, ...]
    read_suffixes: tuple[str, ...] = ()
    write_rows: RowWriter | None = None  # batch output (ffattr batch OUT)
    inspect: Callable[[Path], str] | None = None  # the layout a file holds (wide, long, result)
    read_rows: RowReader | None = None  # ffattr show
    write_result: ResultWriter | None = None  # one explain result (ffattr explain --output)


def _result_json(result: AttributionResult, top_k: int) -> str:
    return result.model_dump_json(indent=2) + "\n"


def _result_html(result: AttributionResult, top_k: int) -> str:
    from ..render import to_html

    return to_html(result, top_k=top_k)


FORMATS: tuple[Format, ...] = (
    Format(
        "parquet",
        (".parquet",),
        (".pq",),
        write_rows=writers.write_parquet_rows,
        inspect=readers.inspect_parquet,
        read_rows=readers.read_parquet,
    ),
    Format(
        "jsonl",
        (".jsonl",),
        (".ndjson",),
        write_rows=writers.write_jsonl_rows,
        inspect=readers.inspect_jsonl,
        read_rows=readers.read_jsonl,
    ),
    Format(
        "json",
        (".json",),
        write_rows=writers.write_json_rows,
        inspect=readers.inspect_json,
        read_rows=readers.read_json,
        write_result=_result_json,
    ),
    Format("html", (".html", ".htm"), write_result=_result_html),
    Format(
        "parquet-parts",
        (PARTS_SUFFIX,),
        write_rows=writers.write_parquet_parts,
        inspect=readers.inspect_parquet_parts,
        read_rows=readers.read_parquet_parts,
    ),
)


def is_parts_folder(path: str | Path) -> bool:
    """A folder output: a name ending in ``/`` (as typed; a Path drops it), or a folder that
    exists."""
    return str(path).endswith(("/", os.sep)) or Path(path).is_dir()


def _suffix(path: str | Path) -> str:
    """What picks a format: the extension, or PARTS_SUFFIX for a folder."""
    return PARTS_SUFFIX if is_parts_folder(path) else Path(path).suffix.lower()


def format_named(name: str) -> Format:
    return next(f for f in FORMATS if f.name == name)


def _lookup(path: str | Path, can: Callable[[Format], bool], *, reading: bool) -> Format | None:
    """The format that answers to the name of ``path`` and can do what ``can`` asks."""
    suffix = _suffix(path)
    for fmt in FORMATS:
        names = fmt.suffixes + (fmt.read_suffixes if reading else ())
        if can(fmt) and suffix in names:
            return fmt
    return None


def _names(can: Callable[[Format], bool]) -> list[str]:
    """How error messages name the formats: ``*.parquet``, ..., ``DIR/``."""
    return [("DIR" if f.suffixes[0] == PARTS_SUFFIX else "*") + f.suffixes[0] for f in FORMATS if can(f)]


def _either(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def _row_writer(path: str | Path) -> tuple[str, RowWriter]:
    suffix = _suffix(path)
    for fmt in FORMATS:
        if fmt.write_rows is not None and suffix in fmt.suffixes:
            return fmt.name, fmt.write_rows
    names = _names(lambda f: f.write_rows is not None)
    raise InvalidRequestError(
        f"cannot tell the output format of {str(path)!r} from its extension; name it {_either(names)} "
        "(a folder of Parquet parts)"
    )


def output_format(path: str | Path) -> str:
    """The name of the format batch rows are written in, from the file name (a name ending in
    ``/``: a folder of Parquet parts); anything else is a usage error."""
    return _row_writer(path)[0]


def write_rows(
    path: str | Path,
    rows: Iterable[dict[str, Any]],
    layout: str = "wide",
    fmt: str | None = None,
    *,
    min_items: int = 0,
) -> int:
    """Stream wide rows into ``path`` (format ``fmt``, by default from its name; ``layout``
    wide or long), atomically. Memory holds one row group at most. Returns the number of items
    written. Give ``fmt`` (from :func:`output_format` on the name as typed) when ``path`` is a
    Path of a folder output: a Path has lost the trailing ``/``. Fewer than ``min_items`` items
    leave ``path`` as it was (OutputError)."""
    write = _row_writer(path)[1] if fmt is None else format_named(fmt).write_rows
    if write is None:
        raise InvalidRequestError(f"the {fmt} format holds no batch rows")
    if layout not in SCHEMAS:
        raise InvalidRequestError(f"unknown layout {layout!r}; use wide or long")
    with writers.atomic_path(path) as tmp:
        n_items = write(tmp, rows, layout)
        if n_items < min_items:
            raise OutputError(
                f"{path} would hold {n_items} items, fewer than the {min_items} to write; left as it was"
            )
        return n_items


def open_results(path: str | Path) -> ResultFile:
    """Inspect ``path`` and say how to read it; unreadable files raise InvalidRequestError."""
    path = Path(path)
    if not path.exists():
        raise InvalidRequestError(f"no such file: {str(path)!r}")
    fmt = _lookup(path, lambda f: f.read_rows is not None and f.inspect is not None, reading=True)
    if fmt is None or fmt.inspect is None:
        names = _names(lambda f: f.read_rows is not None)
        raise InvalidRequestError(f"cannot read {str(path)!r}: use a {_either(names)} result file")
    return ResultFile(path, fmt.name, fmt.inspect(path))


def result_format(path: str | Path) -> Format | None:
    """The format one explain result is written in for this file name, or None."""
    return _lookup(path, lambda f: f.write_result is not None, reading=False)


def result_names() -> str:
    """The file names an explain result can be written to, e.g. ``*.json or *.html``."""
    return _either(_names(lambda f: f.write_result is not None))


def write_result(path: str | Path, result: AttributionResult, top_k: int = 10) -> None:
    """Write one explain result in the format its file name says, atomically."""
    fmt = result_format(path)
    if fmt is None or fmt.write_result is None:
        raise InvalidRequestError(f"cannot tell the format of {str(path)!r}; name the file {result_names()}")
    writers.write_text(path, fmt.write_result(result, top_k))
