"""Reading JSONL inputs one line at a time; every problem names its line and what to fix."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidRequestError
from ..request import REQUEST_FIELDS

_EXAMPLE = '{"id": "q1", "messages": [{"role": "user", "content": "..."}], "target": "..."}'


@dataclass
class JsonLine:
    """One non-blank line: its 1-based number and its value, or why it could not be read."""

    line: int
    value: Any = None
    error: str | None = None


@dataclass
class BatchItem:
    """One batch input line, split into what the library attributes and what is carried along.

    ``request`` holds only messages/prompt/target/contrast; every other field is kept in
    ``meta`` and written back untouched. ``error`` is set when the line cannot become a request.
    """

    line: int
    id: str
    request: dict[str, Any] | None = None
    meta: dict[str, Any] | None = field(default_factory=dict)
    error: str | None = None
    duplicate: bool = False  # its id was already used by an earlier line


def iter_jsonl(path: str | Path) -> Iterator[JsonLine]:
    """Yield every non-blank line of ``path`` parsed as JSON, lazily (memory stays flat)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield JsonLine(number, error=f"not valid UTF-8 (byte {exc.start}); save the file as UTF-8")
                continue
            try:
                yield JsonLine(number, value=json.loads(text.rstrip("\r\n")))
            except json.JSONDecodeError as exc:
                yield JsonLine(
                    number,
                    error=f"invalid JSON ({exc.msg} at column {exc.pos + 1}); each line must be one "
                    "complete JSON object",
                )


def count_nonblank_lines(path: str | Path) -> int:
    """How many items ``iter_jsonl`` will yield (a fast pass for the progress bar's total)."""
    with open(path, "rb") as f:
        return sum(1 for raw in f if raw.strip())


def parse_batch_item(entry: JsonLine, *, generate: bool = False) -> BatchItem:
    """A JSONL line -> a BatchItem. Accepted shapes: ``{"id", "messages", "target"}``,
    ``{"id", "prompt", "target"}``, or ``{"id", "messages"}`` whose last message is the
    assistant's (it becomes the target); any of them may add ``"contrast"``. ``id`` defaults to
    the line number. With ``generate``, a line with no target at all is kept (the model will
    answer it); without, it is an error."""
    default_id = str(entry.line)
    if entry.error is not None:
        return BatchItem(entry.line, default_id, meta=None, error=entry.error)
    obj = entry.value
    if not isinstance(obj, dict):
        return BatchItem(
            entry.line,
            default_id,
            meta=None,
            error=f"expected a JSON object, got {type(obj).__name__}; write e.g. {_EXAMPLE}",
        )
    meta = {k: v for k, v in obj.items() if k != "id" and k not in REQUEST_FIELDS}
    raw_id = obj.get("id")
    if raw_id is None:
        item_id = default_id
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id).strip():
        item_id = str(raw_id)
    else:
        return BatchItem(
            entry.line,
            default_id,
            meta=meta,
            error=f"'id' must be a non-empty string or an integer, got {json.dumps(raw_id)}",
        )
    request = {k: obj[k] for k in REQUEST_FIELDS if obj.get(k) is not None}
    if "target" not in request:
        messages = request.get("messages")
        last = messages[-1] if isinstance(messages, list) and messages else None
        if isinstance(last, dict) and last.get("role") == "assistant":
            request["messages"] = messages[:-1]
            request["target"] = last.get("content")
        elif not generate:
            return BatchItem(
                entry.line,
                item_id,
                meta=meta,
                error='no target: add a "target" field, end "messages" with the assistant\'s '
                "message to explain, or run with --generate to explain the model's own answer",
            )
    return BatchItem(entry.line, item_id, request=request, meta=meta)


def read_messages(source: str) -> list[dict[str, Any]]:
    """``--messages FILE``: a JSON list of {role, content}; ``-`` reads stdin."""
    where = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequestError(f"cannot read messages from {where}: {exc.strerror}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        ) from exc
    if not isinstance(value, list):
        raise InvalidRequestError(
            f'{where}: expected a JSON list of messages like [{{"role": "user", "content": "..."}}], '
            f"got {type(value).__name__}"
        )
    return value
