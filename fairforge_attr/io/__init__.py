"""Files in and out: the JSONL batch reader, result writers and readers, the resumable store,
and the batch pipeline that ties them to the explainer."""

from .batch import BatchJob, count_items
from .jsonl import BatchItem, JsonLine, count_nonblank_lines, iter_jsonl, parse_batch_item, read_messages
from .partial import PartialStore
from .results import ResultFile, open_results
from .writers import JsonlAppender, output_format, write_rows, write_text

__all__ = [
    "BatchItem",
    "BatchJob",
    "JsonLine",
    "JsonlAppender",
    "PartialStore",
    "ResultFile",
    "count_items",
    "count_nonblank_lines",
    "iter_jsonl",
    "open_results",
    "output_format",
    "parse_batch_item",
    "read_messages",
    "write_rows",
    "write_text",
]
