"""The two enums every layer speaks: which method, and what counts as one input unit."""

from __future__ import annotations

from enum import Enum

from .errors import UnknownChoiceError


class _ParsableEnum(str, Enum):
    """A string enum that accepts its value, its name, or itself, case-insensitively."""

    @classmethod
    def parse(cls, value: object) -> _ParsableEnum:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_").replace(" ", "_")
            for member in cls:
                if key in (member.value, member.name.lower()):
                    return member
        valid = ", ".join(m.value for m in cls)
        raise UnknownChoiceError(f"unknown {cls._label()} {value!r}; choose one of: {valid}")

    @classmethod
    def _label(cls) -> str:
        return cls.__name__


class AttributionMethod(_ParsableEnum):
    """Attribution methods. Gradient methods differentiate the objective with respect to the
    input embeddings; perturbation methods score masked variants of the prompt."""

    # gradient
    SALIENCY = "saliency"
    INTEGRATED_GRADIENTS = "integrated_gradients"
    GRADIENT_SHAP = "gradient_shap"
    SMOOTH_GRAD = "smooth_grad"
    SQUARE_GRAD = "square_grad"
    VAR_GRAD = "var_grad"
    INPUT_X_GRADIENT = "input_x_gradient"
    # perturbation
    LIME = "lime"
    KERNEL_SHAP = "kernel_shap"
    OCCLUSION = "occlusion"
    SOBOL = "sobol"

    @classmethod
    def _label(cls) -> str:
        return "method"


class Granularity(_ParsableEnum):
    """What one attributed unit is, finest to coarsest: a token, a word (or punctuation run),
    a sentence, a paragraph (text between blank lines), or a whole message's content."""

    TOKEN = "token"
    WORD = "word"
    SENTENCE = "sentence"
    PARAGRAPH = "paragraph"
    MESSAGE = "message"

    @property
    def level(self) -> int:
        """0 for TOKEN up to 4 for MESSAGE: a coarser granularity has a higher level."""
        return list(Granularity).index(self)

    @classmethod
    def _label(cls) -> str:
        return "granularity"
