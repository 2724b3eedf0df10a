"""Files in and out: the JSONL batch reader, the batch row schema, the table of output formats
with their writers and readers, and the resumable partial store. The batch pipeline that ties
them to the explainer is the ``fairforge_attr.batch`` package."""

from typing import Any

from .formats import FORMATS, Format, open_results, output_format, write_result, write_rows
from .jsonl import BatchItem, JsonLine, count_nonblank_lines, iter_jsonl, parse_batch_item, read_messages
from .partial import PartialStore
from .readers import ResultFile
from .writers import JsonlAppender, write_text

__all__ = [
    "FORMATS",
    "BatchItem",
    "Format",
    "JsonLine",
    "JsonlAppender",
    "PartialStore",
    "ResultFile",
    "count_nonblank_lines",
    "iter_jsonl",
    "open_results",
    "output_format",
    "parse_batch_item",
    "read_messages",
    "write_result",
    "write_rows",
    "write_text",
]


def __getattr__(name: str) -> Any:
    # The batch pipeline moved to fairforge_attr.batch; these names keep earlier imports
    # (``from fairforge_attr.io import BatchJob``) working without io importing it eagerly.
    if name in ("BatchJob", "count_items"):
        from .. import batch

        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
