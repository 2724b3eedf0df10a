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

from .api import AttributionExplainer, ItemOutcome, compute_attributions
from .errors import (
    EngineOutOfMemoryError,
    FairForgeError,
    InvalidRequestError,
    MethodNotAvailableError,
    ModelLoadError,
    NumericalError,
    PromptEncodingError,
    PromptTooLongError,
    TokenizerTooNewError,
    UnknownChoiceError,
)
from .models import DEMO_MODEL_DIR, load_model
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

__version__ = "0.1.0"

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
    "Granularity",
    "InvalidRequestError",
    "ItemOutcome",
    "Message",
    "MethodNotAvailableError",
    "ModelLoadError",
    "NumericalError",
    "PerTargetToken",
    "PromptEncodingError",
    "PromptTooLongError",
    "ResultMetadata",
    "TokenizerTooNewError",
    "UnknownChoiceError",
    "__version__",
    "compute_attributions",
    "load_model",
]
