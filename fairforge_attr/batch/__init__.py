"""Batch attribution: many items under one Plan, rows out.

- :func:`attribute_rows` (``rows.py``): the pure seam, (explainer, plan, numbered items) -> one
  output row per item, error rows included. Every backend calls it.
- :class:`BatchJob` (``job.py``): the local backend: a JSONL file in, rows appended to a
  resumable partial store, OUT written atomically at the end; :class:`OutputLock`
  (``lock.py``) lets one run at a time write an output.
"""

from .job import BatchJob, Shard, count_items, refuse_existing_output, refuse_locked_output
from .lock import OutputLock
from .rows import attribute_rows, failure_row

__all__ = [
    "BatchJob",
    "OutputLock",
    "Shard",
    "attribute_rows",
    "count_items",
    "failure_row",
    "refuse_existing_output",
    "refuse_locked_output",
]
