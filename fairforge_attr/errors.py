"""One exception tree. Every message is written for the person who has to fix the input."""

from __future__ import annotations


class FairForgeError(Exception):
    """Base class of every error fairforge_attr raises on purpose."""


class InvalidRequestError(FairForgeError, ValueError):
    """The request (messages, prompt, target, options) cannot be attributed as given."""


class UnknownChoiceError(InvalidRequestError):
    """A method, granularity or option name that does not exist; the message lists valid ones."""


class PromptTooLongError(InvalidRequestError):
    """Prompt + target do not fit the model's context (or the user's max_length)."""


class PromptEncodingError(InvalidRequestError):
    """The chat template or tokenizer did not let us map tokens back onto message text."""


class ModelLoadError(FairForgeError, OSError):
    """A model or tokenizer could not be loaded; the message says why and what to do."""


class TokenizerTooNewError(ModelLoadError):
    """tokenizer.json was written by a newer `tokenizers` release than the one installed."""


class EngineOutOfMemoryError(FairForgeError, MemoryError):
    """Even a single sequence per forward pass does not fit in memory."""


class NumericalError(FairForgeError, ArithmeticError):
    """Scores stayed NaN/inf even after recomputing in float32."""


class OutputError(FairForgeError, OSError):
    """An output could not be written (no such folder, not writable, disk full); the message
    says what was kept."""


def item_error(exc: Exception) -> FairForgeError:
    """The error of one item. Our own errors pass as they are; anything else raised while that
    item was read or encoded (a tokenizer's TypeError on odd text, say) is wrapped, so it stops
    that item only and still says what happened."""
    if isinstance(exc, FairForgeError):
        return exc
    wrapped = PromptEncodingError(f"this item could not be encoded: {type(exc).__name__}: {exc}")
    wrapped.__cause__ = exc
    return wrapped
