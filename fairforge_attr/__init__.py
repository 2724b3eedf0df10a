"""fairforge_attr: which parts of the input made a language model say this?

Quick start::

    from fairforge_attr import AttributionExplainer, AttributionMethod, Granularity

    explainer = AttributionExplainer()          # the built-in demo model
    result = explainer.explain(
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        target="The capital of France is Paris.",
        method=AttributionMethod.OCCLUSION,
        granularity=Granularity.WORD,
    )
    for a in result.get_top_k(5):
        print(a.text, a.score)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Names are imported on first use: torch takes seconds to import, and `ffattr --help`,
# `ffattr show` or reading a result file should not pay for it.
_EXPORTS = {
    "AttributionExplainer": "api",
    "ItemOutcome": "api",
    "compute_attributions": "api",
    "EngineOutOfMemoryError": "errors",
    "FairForgeError": "errors",
    "InvalidRequestError": "errors",
    "ModelLoadError": "errors",
    "NumericalError": "errors",
    "OutputError": "errors",
    "PromptEncodingError": "errors",
    "PromptTooLongError": "errors",
    "TokenizerTooNewError": "errors",
    "UnknownChoiceError": "errors",
    "Faithfulness": "faithfulness",
    "FaithfulnessOptions": "faithfulness",
    "DEMO_MODEL_DIR": "models",
    "load_model": "models",
    "Plan": "plan",
    "ExplainRequest": "request",
    "Attribution": "results",
    "AttributionResult": "results",
    "BatchAttributionResult": "results",
    "Message": "results",
    "PerTargetToken": "results",
    "ResultMetadata": "results",
    "AttributionMethod": "types",
    "Granularity": "types",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fairforge_attr' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .api import AttributionExplainer, ItemOutcome, compute_attributions
    from .errors import (
        EngineOutOfMemoryError,
        FairForgeError,
        InvalidRequestError,
        ModelLoadError,
        NumericalError,
        OutputError,
        PromptEncodingError,
        PromptTooLongError,
        TokenizerTooNewError,
        UnknownChoiceError,
    )
    from .faithfulness import Faithfulness, FaithfulnessOptions
    from .models import DEMO_MODEL_DIR, load_model
    from .plan import Plan
    from .request import ExplainRequest
    from .results import (
        Attribution,
        AttributionResult,
        BatchAttributionResult,
        Message,
        PerTargetToken,
        ResultMetadata,
    )
    from .types import AttributionMethod, Granularity

__all__ = [
    "DEMO_MODEL_DIR",
    "Attribution",
    "AttributionExplainer",
    "AttributionMethod",
    "AttributionResult",
    "BatchAttributionResult",
    "EngineOutOfMemoryError",
    "ExplainRequest",
    "FairForgeError",
    "Faithfulness",
    "FaithfulnessOptions",
    "Granularity",
    "InvalidRequestError",
    "ItemOutcome",
    "Message",
    "ModelLoadError",
    "NumericalError",
    "OutputError",
    "PerTargetToken",
    "Plan",
    "PromptEncodingError",
    "PromptTooLongError",
    "ResultMetadata",
    "TokenizerTooNewError",
    "UnknownChoiceError",
    "__version__",
    "compute_attributions",
    "load_model",
]
