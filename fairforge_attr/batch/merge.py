"""``ffattr merge``: join the outputs of ``ffattr batch --shard I/N`` runs (or folders of
Parquet parts) into one output, as if one run had made it.

Before a row is written, the parts must agree: one layout and one set of columns (the
schema), one model and one Plan (method, granularity, options, seed: as ``--resume``
compares them, through :meth:`Plan.recorded` and :meth:`Plan.changes_from`). While rows are
written, an id met twice stops the merge (OUT is written atomically: it stays as it was).
With the input file, the ids it holds and no part does are reported.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FairForgeError, InvalidRequestError
from ..io.formats import open_results, output_format, write_rows
from ..io.jsonl import iter_jsonl, parse_batch_item
from ..io.readers import ResultFile
from ..io.schema import OK
from ..plan import Plan
from .rows import recorded_plan


@dataclass
class MergeReport:
    """What a merge wrote: items (of which failed), and with an input file, the ids of the
    input that no part holds (in input order) and how many ids of the parts it lacks."""

    items: int = 0
    failed: int = 0
    missing: list[str] = field(default_factory=list)
    not_in_input: int = 0


@dataclass
class _Part:
    path: Path
    file: ResultFile
    columns: tuple[str, ...]
    first_ok: dict[str, Any] | None  # the row its Plan is read from


def merge_outputs(
    parts: Sequence[str | Path],
    output: str | Path,
    *,
    input_file: str | Path | None = None,
    layout: str | None = None,
) -> MergeReport:
    """Join ``parts`` into ``output`` (format from its name; layout: the parts', or
    ``layout``). Raises InvalidRequestError when the parts disagree on schema or Plan, or hold
    an id twice; ``output`` is then left as it was."""
    if not parts:
        raise InvalidRequestError("give at least one part to merge")
    fmt = output_format(output)
    opened = [_open(Path(p)) for p in parts]
    _check_same(opened)
    report = MergeReport()
    seen: dict[str, Path] = {}

    def rows() -> Iterator[dict[str, Any]]:
        for row, part in _by_line(opened):
            if row["id"] in seen:
                raise InvalidRequestError(
                    f"id {row['id']!r} is in {seen[row['id']]} and in {part.path}; each id must be in one "
                    "part only (were two shards run with the same --shard, or a part given twice?)"
                )
            seen[row["id"]] = part.path
            report.failed += row.get("status") != OK
            yield row

    report.items = write_rows(output, rows(), layout or opened[0].file.layout, fmt=fmt)
    if input_file is not None:
        expected = _input_ids(Path(input_file))
        report.missing = [i for i in expected if i not in seen]
        report.not_in_input = len(seen.keys() - set(expected))
    return report


def _open(path: Path) -> _Part:
    file = open_results(path)
    if file.layout == "result":
        raise InvalidRequestError(
            f"{path} is one explain result, not a batch output; merge the outputs of ffattr batch"
        )
    columns = _schema_of(file) or tuple(next(file.rows(), {}))  # JSON: the keys of a row
    first_ok = next((row for row in file.rows() if row.get("status") == OK), None)
    return _Part(path, file, columns, first_ok)


def _schema_of(file: ResultFile) -> tuple[str, ...] | None:
    """The columns as stored: the Parquet schema (of the first part of a folder), else None."""
    import pyarrow.parquet as pq

    from ..io.readers import part_files

    if file.format == "parquet":
        return tuple(f"{f.name}:{f.type}" for f in pq.read_schema(file.path))
    if file.format == "parquet-parts":
        return tuple(f"{f.name}:{f.type}" for f in pq.read_schema(part_files(file.path)[0]))
    return None


def _check_same(parts: Sequence[_Part]) -> None:
    """One layout, one schema, one model, one Plan; the first part is the reference."""
    first = parts[0]
    reference = _plan_of(first)
    for part in parts[1:]:
        if part.file.layout != first.file.layout:
            raise InvalidRequestError(
                f"{part.path} has the {part.file.layout} layout, {first.path} the {first.file.layout} one; "
                "merge outputs of one layout"
            )
        if part.columns != first.columns:
            only = sorted(set(part.columns) ^ set(first.columns))
            raise InvalidRequestError(
                f"{part.path} and {first.path} have different columns ({', '.join(only) or 'order'}); "
                "were they written by different versions of ffattr?"
            )
        plan = _plan_of(part)
        if plan is None or reference is None:
            continue
        changes = plan[1].changes_from(reference[1])
        if plan[0] != reference[0]:
            changes.insert(0, f"model {reference[0]} -> {plan[0]}")
        if changes:
            raise InvalidRequestError(
                f"{part.path} was computed with other settings than {first.path} ({'; '.join(changes)}); "
                "merge only parts of one run"
            )


def _plan_of(part: _Part) -> tuple[str, Plan] | None:
    """(model, Plan) recorded by the part's first finished row; None when it has none."""
    row = part.first_ok
    if row is None:
        return None
    try:
        plan = recorded_plan(row)
    except FairForgeError as exc:
        raise InvalidRequestError(f"{part.path}: its settings are not valid now: {exc}") from exc
    return str(row.get("model")), plan


def _by_line(parts: Sequence[_Part]) -> Iterator[tuple[dict[str, Any], _Part]]:
    """Every row of every part, by input line (each part is in line order, as batch writes
    it; rows without a line come last)."""

    def keyed(index: int, part: _Part) -> Iterator[tuple[float, int, dict[str, Any]]]:
        for row in part.file.rows():
            line = row.get("line")
            yield (math.inf if line is None else line), index, row

    streams = [keyed(i, part) for i, part in enumerate(parts)]
    for _, index, row in heapq.merge(*streams, key=lambda t: (t[0], t[1])):
        yield row, parts[index]


def _input_ids(path: Path) -> list[str]:
    """The id of every line of a batch input, as ``ffattr batch`` names them (the line number
    when a line has none or cannot be read), each once."""
    return list(dict.fromkeys(parse_batch_item(entry).id for entry in iter_jsonl(path)))
