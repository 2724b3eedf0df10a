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
