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


def unpaired_surrogate(text: str) -> str | None:
    """The first lone UTF-16 surrogate in ``text`` (as ``\\ud800``), or None. JSON may spell one
    (``"\\ud800"``) and Python keeps it, but no tokenizer or UTF-8 file can hold it."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"\\u{ord(text[exc.start]):04x}"
    return None


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
        texts = [("prompt", self.prompt), ("target", self.target), ("contrast", self.contrast)]
        texts += [(f"messages.{i}.content", m.content) for i, m in enumerate(self.messages or [])]
        for where, text in texts:
            bad = unpaired_surrogate(text) if text else None
            if bad:
                raise ValueError(f"{where}: unpaired surrogate {bad}; text must be valid Unicode")
        return self


def _readable(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def split_last_assistant(messages: Any, target: Any) -> tuple[Any, Any]:
    """The one rule for a conversation without a target (explain, batch and the API alike): when
    its last message is the assistant's, that message is the response to explain and the rest
    is the prompt. Anything else is returned unchanged."""
    if target is not None or not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        return messages, target
    last = messages[-1]
    role = last.role if isinstance(last, Message) else last.get("role") if isinstance(last, Mapping) else None
    if role != "assistant":
        return messages, target
    content = last.content if isinstance(last, Message) else last.get("content")
    return list(messages[:-1]), content


def make_request(
    messages: Sequence[Mapping[str, Any] | Message] | None = None,
    target: str | None = None,
    prompt: str | None = None,
    contrast: str | None = None,
) -> ExplainRequest:
    """A validated request; a conversation that ends with the assistant's message and has no
    target explains that message (see ``split_last_assistant``)."""
    messages, target = split_last_assistant(messages, target)
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
