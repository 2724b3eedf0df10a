"""Reading JSONL inputs one line at a time; every problem names its line and what to fix."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InvalidRequestError
from ..request import REQUEST_FIELDS, split_last_assistant, unpaired_surrogate

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

    @property
    def unreadable(self) -> bool:
        """Its id could not be read (see ``unreadable_id``)."""
        return self.id == unreadable_id(self.line)


def unreadable_id(line: int) -> str:
    """The id of a line whose own id cannot be known (not JSON, not an object, an invalid id):
    ``line-N``. Not the bare line number, which is the default id of a readable line without
    one and may well be another line's explicit id: sharing it made an error row vanish."""
    return f"line-{line}"


class JsonProblem(ValueError):
    """Why a JSON text cannot be used; the message is written for the user."""


def _no_constant(name: str) -> Any:
    raise JsonProblem(f"{name} is not valid JSON; write null or a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonProblem(f"the number {text[:30]} is out of range for a 64-bit float")
    return value


def first_unpaired_surrogate(value: Any) -> str | None:
    """Where the first lone surrogate of a parsed JSON value is (keys and strings, at any depth;
    walked without recursion), as ``"\\ud800 in meta.k[0]"``, or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, str):
            bad = unpaired_surrogate(v)
            if bad:
                return f"{bad} in {where or 'the value'}"
        elif isinstance(v, dict):
            for k, item in v.items():
                path = f"{where}.{k}" if where else str(k)
                stack.append((path, item))
                stack.append((f"the key {path!r}", k))
        elif isinstance(v, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(v))
    return None


def loads_strict(text: str) -> Any:
    """``json.loads`` for input we did not write. Raises JsonProblem, never anything else, for
    what plain ``json.loads`` lets through or dies on: NaN and Infinity (accepted by Python,
    not JSON; written back they make invalid JSON), numbers beyond float range or with more than
    4300 digits, nesting deeper than the parser's recursion limit, and lone surrogates
    (``"\\ud800"``), which no tokenizer and no UTF-8 file accepts."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except JsonProblem:
        raise
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"invalid JSON ({exc.msg} at column {exc.pos + 1})") from None
    except RecursionError:
        raise JsonProblem("nesting too deep: arrays/objects nested beyond what the parser allows") from None
    except ValueError as exc:  # int() refuses more than sys.get_int_max_str_digits() digits
        raise JsonProblem(f"number too long ({exc})") from None
    where = first_unpaired_surrogate(value)
    if where:
        raise JsonProblem(f"unpaired surrogate {where}; text must be valid Unicode")
    return value


STDIN = "-"


@contextmanager
def open_input(path: str | Path) -> Iterator[BinaryIO]:
    """The input file in binary mode; ``-`` is stdin, read as a stream (never closed here)."""
    if str(path) == STDIN:
        yield getattr(sys.stdin, "buffer", sys.stdin)  # type: ignore[misc]
        return
    with open(path, "rb") as f:
        yield f


def iter_jsonl(path: str | Path) -> Iterator[JsonLine]:
    """Yield every non-blank line of ``path`` (``-``: stdin) parsed as JSON, lazily (memory stays
    flat). A UTF-8 byte-order mark before the first line is skipped."""
    with open_input(path) as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield JsonLine(number, error=f"not valid UTF-8 (byte {exc.start}); save the file as UTF-8")
                continue
            try:
                yield JsonLine(number, value=loads_strict(text.rstrip("\r\n")))
            except JsonProblem as exc:
                message = str(exc)
                if message.startswith("invalid JSON"):
                    message += "; each line must be one complete JSON object"
                yield JsonLine(number, error=message)


def count_nonblank_lines(path: str | Path) -> int | None:
    """How many items ``iter_jsonl`` will yield (a fast pass for the progress bar's total);
    None for stdin, which can be read only once."""
    if str(path) == STDIN:
        return None
    with open(path, "rb") as f:
        return sum(1 for raw in f if raw.strip())


def parse_batch_item(entry: JsonLine, *, generate: bool = False) -> BatchItem:
    """A JSONL line -> a BatchItem. Accepted shapes: ``{"id", "messages", "target"}``,
    ``{"id", "prompt", "target"}``, or ``{"id", "messages"}`` whose last message is the
    assistant's (it becomes the target); any of them may add ``"contrast"``. ``id`` defaults to
    the line number; a line whose id cannot be read gets ``unreadable_id``. With ``generate``, a
    line with no target at all is kept (the model will answer it); without, it is an error."""
    default_id, lost_id = str(entry.line), unreadable_id(entry.line)
    if entry.error is not None:
        return BatchItem(entry.line, lost_id, meta=None, error=entry.error)
    obj = entry.value
    if not isinstance(obj, dict):
        return BatchItem(
            entry.line,
            lost_id,
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
            lost_id,
            meta=meta,
            error=f"'id' must be a non-empty string or an integer, got {json.dumps(raw_id)}",
        )
    request = {k: obj[k] for k in REQUEST_FIELDS if obj.get(k) is not None}
    if "target" not in request:
        messages, target = split_last_assistant(request.get("messages"), None)
        if target is not None:
            request["messages"], request["target"] = messages, target
        elif not generate:
            return BatchItem(
                entry.line,
                item_id,
                meta=meta,
                error='no target: add a "target" field, end "messages" with the assistant\'s '
                "message to explain, or run with --generate to explain the model's own answer",
            )
    return BatchItem(entry.line, item_id, request=request, meta=meta)


def read_text_file(source: str, what: str) -> str:
    """A UTF-8 text file (``-``: stdin), BOM allowed; anything else is an InvalidRequestError
    that names the file and what it is not."""
    where = "stdin" if source == "-" else source
    try:
        if source == "-":
            stream = getattr(sys.stdin, "buffer", None)
            data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
        else:
            data = Path(source).read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {what} from {where}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"{where} is not UTF-8 text (byte {exc.start}); save the {what} as UTF-8"
        ) from None


def read_messages(source: str) -> list[dict[str, Any]]:
    """``--messages FILE``: a JSON list of {role, content}; ``-`` reads stdin."""
    where = "stdin" if source == "-" else source
    text = read_text_file(source, "messages")
    try:
        value = loads_strict(text)
    except JsonProblem as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None
    if not isinstance(value, list):
        raise InvalidRequestError(
            f'{where}: expected a JSON list of messages like [{{"role": "user", "content": "..."}}], '
            f"got {type(value).__name__}"
        )
    return value
