"""What a user may ask: validated requests, whatever shape they arrived in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .errors import InvalidRequestError
from .results import Message


class ExplainRequest(BaseModel):
    """One item to explain: chat ``messages`` or a raw ``prompt``, and the ``target`` response.

    ``target=None`` means: generate the response greedily, then explain it.
    """

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] | None = None
    prompt: str | None = None
    target: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ExplainRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' and 'prompt'")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' is empty; give at least one message")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' is empty")
        if self.target is not None and not self.target.strip():
            raise ValueError("'target' is empty; give the response to explain (or none to generate one)")
        return self


def _readable(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def make_request(
    messages: Sequence[Mapping[str, Any] | Message] | None = None,
    target: str | None = None,
    prompt: str | None = None,
) -> ExplainRequest:
    try:
        return ExplainRequest(messages=messages, prompt=prompt, target=target)
    except ValidationError as exc:
        raise InvalidRequestError(f"invalid request: {_readable(exc)}") from exc


def coerce_request(item: Any) -> ExplainRequest:
    """A batch item: a ``(messages, target)`` pair, a dict with messages/prompt/target, or an
    ExplainRequest."""
    if isinstance(item, ExplainRequest):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - {"messages", "prompt", "target"}
        if unknown:
            raise InvalidRequestError(f"unknown field(s) {sorted(unknown)}; use messages, prompt, target")
        return make_request(item.get("messages"), item.get("target"), item.get("prompt"))
    if isinstance(item, (tuple, list)) and len(item) == 2:
        source, target = item
        if isinstance(source, str):
            return make_request(None, target, prompt=source)
        return make_request(source, target)
    raise InvalidRequestError(
        f"cannot read a batch item of type {type(item).__name__}; give (messages, target) pairs "
        "or dicts with messages/prompt and target"
    )
