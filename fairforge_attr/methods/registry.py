"""The one registry: AttributionMethod -> what it is, what it costs, how to run it.

The API, the CLI's choices and ``ffattr methods`` all read this table. Each spec carries its
own ``score`` (run the engine under a Plan) and ``baseline`` rule, so no caller asks which
family a method belongs to; ``family`` only describes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequestError, UnknownChoiceError
from ..types import AttributionMethod
from . import gradient
from .base import BaselineRule, Scorer, no_baseline
from .gradient_scorer import GradientScorer, embedding_baseline
from .kernel_shap import KernelShapOptions, kernel_shap_masks, kernel_shap_scores, kernel_shap_std_error
from .lime import LimeOptions, lime_masks, lime_scores, lime_std_error
from .perturbation import OcclusionOptions, occlusion_masks, occlusion_scores
from .perturbation_scorer import PerturbationScorer, removal_baseline
from .sobol import SobolOptions, sobol_masks, sobol_scores, sobol_std_error


class Family(str, Enum):
    PERTURBATION = "perturbation"
    GRADIENT = "gradient"


@dataclass(frozen=True)
class MethodSpec:
    """One method: what it is (for people), what it takes, and how it runs.

    ``score(engine, plan, items)`` returns one RawScores per encoded item; ``baseline(tokenizer,
    options, vocab_size)`` resolves the ``baseline`` option (see ``methods/base.py``). Both are
    module-level callables, so a spec (and a Plan naming it) pickles.
    """

    method: AttributionMethod
    family: Family
    options_model: type[BaseModel]
    summary: str
    cost: str  # in scored sequences (perturbation) or forward+backward passes (gradient)
    paper: str
    score: Scorer
    baseline: BaselineRule = no_baseline
    has_convergence_delta: bool = False
    uses_seed: bool = True

    def defaults(self) -> dict[str, Any]:
        return self.options_model().model_dump()

    def parse_options(self, options: dict[str, Any]) -> BaseModel:
        """Validate user options; unknown names list the valid ones."""
        valid = sorted(self.options_model.model_fields)
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise UnknownChoiceError(
                f"{self.method.value} does not take option(s) {', '.join(unknown)}; "
                f"valid options: {', '.join(valid) or 'none'}"
            )
        try:
            return self.options_model(**options)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise InvalidRequestError(f"invalid options for {self.method.value}: {problems}") from exc


# ------------------------------------------------------------ perturbation adapters
# The pure functions take what they need; these give them the one shape the scorer calls.
def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _occlusion_sample(n_units: int, options: OcclusionOptions, seed: int) -> torch.Tensor:
    return occlusion_masks(n_units)


def _occlusion_attribute(
    masks: torch.Tensor, values: torch.Tensor, options: OcclusionOptions
) -> torch.Tensor:
    return occlusion_scores(values)


def _lime_sample(n_units: int, options: LimeOptions, seed: int) -> torch.Tensor:
    return lime_masks(n_units, options.n_samples, _generator(seed), options.sampler)


def _kernel_shap_sample(n_units: int, options: KernelShapOptions, seed: int) -> torch.Tensor:
    return kernel_shap_masks(n_units, options.n_samples, _generator(seed))


def _sobol_sample(n_units: int, options: SobolOptions, seed: int) -> torch.Tensor:
    return sobol_masks(n_units, options.n_samples, seed)


# Gradient costs are in sequences through the model; passes hold as many as the token budget
# allows, of one item or (explain_batch) several. None depends on n_units. per_target_token
# multiplies the forward+backward rows by (n_target + 1) (one differentiated row per target
# token, plus f).
_PTT = " (x (n_target + 1) with per_target_token)"
_PERTURBATION = {"family": Family.PERTURBATION, "baseline": removal_baseline}


def _gradient(impl: gradient.GradientMethod) -> dict[str, Any]:
    """The fields every gradient spec derives from its implementation."""
    return {
        "family": Family.GRADIENT,
        "score": GradientScorer(impl),
        "baseline": embedding_baseline if impl.baseline else no_baseline,
        "has_convergence_delta": impl.delta,
        "uses_seed": not impl.deterministic,
    }


SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        method=AttributionMethod.OCCLUSION,
        options_model=OcclusionOptions,
        summary="f(x) - f(x without the unit), one unit at a time",
        cost="n_units + 1 sequences",
        paper="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
        score=PerturbationScorer(_occlusion_sample, _occlusion_attribute),
        uses_seed=False,
        **_PERTURBATION,
    ),
    MethodSpec(
        method=AttributionMethod.LIME,
        options_model=LimeOptions,
        summary="linear surrogate (ridge, or lasso for hundreds of units) fitted on random unit removals",
        cost="n_samples + 1 sequences",
        paper='Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?"',
        score=PerturbationScorer(_lime_sample, lime_scores, lime_std_error),
        **_PERTURBATION,
    ),
    MethodSpec(
        method=AttributionMethod.KERNEL_SHAP,
        options_model=KernelShapOptions,
        summary="Shapley values by Shapley-kernel weighted regression (sizes enumerated when they fit)",
        cost="min(n_samples, 2^n_units - 2) + 2 sequences",
        paper="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions",
        score=PerturbationScorer(_kernel_shap_sample, kernel_shap_scores, kernel_shap_std_error),
        **_PERTURBATION,
    ),
    MethodSpec(
        method=AttributionMethod.SOBOL,
        options_model=SobolOptions,
        summary="total-order Sobol indices from quasi-Monte-Carlo masks (Jansen estimator); >= 0",
        cost="n_samples x (n_units + 1) sequences",
        paper="Fel et al. 2021, Look at the Variance! Sobol-based Sensitivity Analysis",
        score=PerturbationScorer(_sobol_sample, sobol_scores, sobol_std_error),
        **_PERTURBATION,
    ),
    MethodSpec(
        method=AttributionMethod.SALIENCY,
        options_model=gradient.SaliencyOptions,
        summary="L2 norm of the gradient of f w.r.t. each token's embedding (>= 0)",
        cost="1 sequence forward+backward" + _PTT,
        paper="Simonyan, Vedaldi & Zisserman 2013, Deep Inside Convolutional Networks",
        **_gradient(gradient.SALIENCY),
    ),
    MethodSpec(
        method=AttributionMethod.INTEGRATED_GRADIENTS,
        options_model=gradient.IntegratedGradientsOptions,
        summary="path integral of the gradient from a baseline embedding; sums to f(x) - f(baseline)",
        cost="n_steps sequences forward+backward" + _PTT + " + 2 forward only (f(x), f(baseline))",
        paper="Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks",
        **_gradient(gradient.INTEGRATED_GRADIENTS),
    ),
    MethodSpec(
        method=AttributionMethod.GRADIENT_SHAP,
        options_model=gradient.GradientShapOptions,
        summary="expected gradients at random points between a baseline and the (noisy) input",
        cost="n_samples sequences forward+backward" + _PTT + " + 1 forward only (f(x))",
        paper="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions",
        **_gradient(gradient.GRADIENT_SHAP),
    ),
    MethodSpec(
        method=AttributionMethod.SMOOTH_GRAD,
        options_model=gradient.NoiseTunnelOptions,
        summary="L2 norm of the gradient averaged over noisy copies of the embeddings (>= 0)",
        cost="n_samples sequences forward+backward" + _PTT + " + 1 forward only (f(x))",
        paper="Smilkov et al. 2017, SmoothGrad: removing noise by adding noise",
        **_gradient(gradient.SMOOTH_GRAD),
    ),
    MethodSpec(
        method=AttributionMethod.SQUARE_GRAD,
        options_model=gradient.NoiseTunnelOptions,
        summary="root-mean-square gradient length over noisy copies of the embeddings (>= 0)",
        cost="n_samples sequences forward+backward" + _PTT + " + 1 forward only (f(x))",
        paper="Hooker et al. 2019, A Benchmark for Interpretability Methods in Deep Neural Networks",
        **_gradient(gradient.SQUARE_GRAD),
    ),
    MethodSpec(
        method=AttributionMethod.VAR_GRAD,
        options_model=gradient.NoiseTunnelOptions,
        summary="spread (RMS deviation) of the gradient over noisy copies of the embeddings (>= 0)",
        cost="n_samples sequences forward+backward" + _PTT + " + 1 forward only (f(x))",
        paper="Adebayo et al. 2018, Local Explanation Methods for Deep Neural Networks Lack Sensitivity "
        "to Parameter Values",
        **_gradient(gradient.VAR_GRAD),
    ),
    MethodSpec(
        method=AttributionMethod.INPUT_X_GRADIENT,
        options_model=gradient.InputXGradientOptions,
        summary="embedding x gradient, summed over the hidden dimension (first-order share of f)",
        cost="1 sequence forward+backward" + _PTT,
        paper="Shrikumar et al. 2016, Not Just a Black Box: Learning Important Features Through "
        "Propagating Activation Differences",
        **_gradient(gradient.INPUT_X_GRADIENT),
    ),
)

REGISTRY: dict[AttributionMethod, MethodSpec] = {spec.method: spec for spec in SPECS}


def get_method(method: AttributionMethod | str) -> MethodSpec:
    """The spec of a method given as enum or string; unknown names list the valid ones."""
    return REGISTRY[AttributionMethod.parse(method)]
