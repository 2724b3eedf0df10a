"""What a user may ask: validated requests, whatever shape they arrived in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .errors import InvalidRequestError
from .results import Message

REQUEST_FIELDS = ("messages", "prompt", "target", "contrast")
CONTRAST_PER_TARGET_TOKEN = (
    "per-target-token scores are not defined for a contrastive item: the target's and the "
    "contrast's tokens do not pair up, so no row of a matrix is the share of one token; drop "
    "per_target_token (--per-target-token) or the contrast"
)


class ExplainRequest(BaseModel):
    """One item to explain: chat ``messages`` or a raw ``prompt``, and the ``target`` response.

    ``target=None`` means: generate the response greedily, then explain it (when the call
    allows generation). ``contrast``: another answer; the item then explains
    log p(target) - log p(contrast), "why this answer and not that one".
    """

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] | None = None
    prompt: str | None = None
    target: str | None = None
    contrast: str | None = None

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
        if self.contrast is not None and not self.contrast.strip():
            raise ValueError("'contrast' is empty; give the other answer to compare with, or none")
        if self.contrast is not None and self.contrast == self.target:
            raise ValueError("'contrast' equals 'target'; give a different answer to compare with")
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
    contrast: str | None = None,
) -> ExplainRequest:
    try:
        return ExplainRequest(messages=messages, prompt=prompt, target=target, contrast=contrast)
    except ValidationError as exc:
        raise InvalidRequestError(f"invalid request: {_readable(exc)}") from exc


def coerce_request(item: Any) -> ExplainRequest:
    """A batch item: a ``(messages, target)`` pair, a ``(messages, target, contrast)`` triple,
    a dict with messages/prompt/target/contrast, or an ExplainRequest."""
    if isinstance(item, ExplainRequest):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - set(REQUEST_FIELDS)
        if unknown:
            raise InvalidRequestError(f"unknown field(s) {sorted(unknown)}; use {', '.join(REQUEST_FIELDS)}")
        return make_request(
            item.get("messages"), item.get("target"), item.get("prompt"), item.get("contrast")
        )
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        source, target, *contrast = item
        if isinstance(source, str):
            return make_request(None, target, prompt=source, contrast=next(iter(contrast), None))
        return make_request(source, target, contrast=next(iter(contrast), None))
    raise InvalidRequestError(
        f"cannot read a batch item of type {type(item).__name__}; give (messages, target) pairs, "
        "(messages, target, contrast) triples or dicts with messages/prompt and target"
    )
