"""The one registry: AttributionMethod -> what it is, what it costs, how to run it.

The API, the CLI's choices and ``ffattr methods`` all read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequestError, MethodNotAvailableError, UnknownChoiceError
from ..types import AttributionMethod
from . import gradient
from .perturbation import (
    KernelShapOptions,
    LimeOptions,
    OcclusionOptions,
    kernel_shap_masks,
    kernel_shap_scores,
    lime_masks,
    lime_scores,
    occlusion_masks,
    occlusion_scores,
)
from .sobol import SobolOptions, sobol_masks, sobol_scores


class Family(str, Enum):
    PERTURBATION = "perturbation"
    GRADIENT = "gradient"


@dataclass(frozen=True)
class PerturbationImpl:
    """sample(n_units, options, seed) -> bool masks; attribute(masks, values [n, k], options)
    -> scores [k, n_units]."""

    sample: Callable[[int, Any, int], torch.Tensor]
    attribute: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


@dataclass(frozen=True)
class MethodSpec:
    method: AttributionMethod
    family: Family
    options_model: type[BaseModel]
    summary: str
    cost: str  # in scored sequences (perturbation) or forward+backward passes (gradient)
    paper: str
    supports_per_target_token: bool
    has_convergence_delta: bool = False
    uses_seed: bool = True
    perturbation: PerturbationImpl | None = None
    gradient: Any = None  # a gradient implementation, see methods/gradient.py

    @property
    def available(self) -> bool:
        return self.perturbation is not None or self.gradient is not None

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


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


REGISTRY: dict[AttributionMethod, MethodSpec] = {}


def register(spec: MethodSpec) -> None:
    REGISTRY[spec.method] = spec


register(
    MethodSpec(
        method=AttributionMethod.OCCLUSION,
        family=Family.PERTURBATION,
        options_model=OcclusionOptions,
        summary="f(x) - f(x without the unit), one unit at a time",
        cost="n_units + 1 sequences",
        paper="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
        supports_per_target_token=True,
        uses_seed=False,
        perturbation=PerturbationImpl(
            sample=lambda n, o, seed: occlusion_masks(n),
            attribute=lambda masks, values, o: occlusion_scores(values),
        ),
    )
)
register(
    MethodSpec(
        method=AttributionMethod.LIME,
        family=Family.PERTURBATION,
        options_model=LimeOptions,
        summary="weighted ridge surrogate fitted on random unit removals",
        cost="n_samples sequences",
        paper='Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?"',
        supports_per_target_token=True,
        perturbation=PerturbationImpl(
            sample=lambda n, o, seed: lime_masks(n, o.n_samples, _generator(seed)),
            attribute=lime_scores,
        ),
    )
)
register(
    MethodSpec(
        method=AttributionMethod.KERNEL_SHAP,
        family=Family.PERTURBATION,
        options_model=KernelShapOptions,
        summary="Shapley values by Shapley-kernel weighted regression (exact for few units)",
        cost="min(n_samples, 2^n_units - 2) + 2 sequences",
        paper="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions",
        supports_per_target_token=True,
        perturbation=PerturbationImpl(
            sample=lambda n, o, seed: kernel_shap_masks(n, o.n_samples, _generator(seed)),
            attribute=kernel_shap_scores,
        ),
    )
)
register(
    MethodSpec(
        method=AttributionMethod.SOBOL,
        family=Family.PERTURBATION,
        options_model=SobolOptions,
        summary="total-order Sobol indices from quasi-Monte-Carlo masks (Jansen estimator); >= 0",
        cost="n_samples x (n_units + 2) sequences",
        paper="Fel et al. 2021, Look at the Variance! Sobol-based Sensitivity Analysis",
        supports_per_target_token=True,
        perturbation=PerturbationImpl(
            sample=lambda n, o, seed: sobol_masks(n, o.n_samples, seed),
            attribute=sobol_scores,
        ),
    )
)

# ------------------------------------------------------------------------ gradient
# Costs are in sequences through the model; passes hold as many as the token budget allows,
# of one item or (explain_batch) several. None depends on n_units. per_target_token multiplies
# the forward+backward rows by (n_target + 1) (one differentiated row per target token, plus f).
_PTT = " (x (n_target + 1) with per_target_token)"
for _method, _impl, _options, _summary, _cost, _paper in (
    (
        AttributionMethod.SALIENCY,
        gradient.SALIENCY,
        gradient.SaliencyOptions,
        "L2 norm of the gradient of f w.r.t. each token's embedding (>= 0)",
        "1 sequence forward+backward" + _PTT,
        "Simonyan, Vedaldi & Zisserman 2013, Deep Inside Convolutional Networks",
    ),
    (
        AttributionMethod.INTEGRATED_GRADIENTS,
        gradient.INTEGRATED_GRADIENTS,
        gradient.IntegratedGradientsOptions,
        "path integral of the gradient from a baseline embedding; sums to f(x) - f(baseline)",
        "n_steps sequences forward+backward" + _PTT + " + 2 forward only (f(x), f(baseline))",
        "Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks",
    ),
    (
        AttributionMethod.GRADIENT_SHAP,
        gradient.GRADIENT_SHAP,
        gradient.GradientShapOptions,
        "expected gradients at random points between a baseline and the (noisy) input",
        "n_samples sequences forward+backward" + _PTT + " + 1 forward only (f(x))",
        "Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions",
    ),
    (
        AttributionMethod.SMOOTH_GRAD,
        gradient.SMOOTH_GRAD,
        gradient.NoiseTunnelOptions,
        "L2 norm of the gradient averaged over noisy copies of the embeddings (>= 0)",
        "n_samples sequences forward+backward" + _PTT + " + 1 forward only (f(x))",
        "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise",
    ),
    (
        AttributionMethod.SQUARE_GRAD,
        gradient.SQUARE_GRAD,
        gradient.NoiseTunnelOptions,
        "root-mean-square gradient length over noisy copies of the embeddings (>= 0)",
        "n_samples sequences forward+backward" + _PTT + " + 1 forward only (f(x))",
        "Hooker et al. 2019, A Benchmark for Interpretability Methods in Deep Neural Networks",
    ),
    (
        AttributionMethod.VAR_GRAD,
        gradient.VAR_GRAD,
        gradient.NoiseTunnelOptions,
        "spread (RMS deviation) of the gradient over noisy copies of the embeddings (>= 0)",
        "n_samples sequences forward+backward" + _PTT + " + 1 forward only (f(x))",
        "Adebayo et al. 2018, Local Explanation Methods for Deep Neural Networks Lack Sensitivity "
        "to Parameter Values",
    ),
    (
        AttributionMethod.INPUT_X_GRADIENT,
        gradient.INPUT_X_GRADIENT,
        gradient.InputXGradientOptions,
        "embedding x gradient, summed over the hidden dimension (first-order share of f)",
        "1 sequence forward+backward" + _PTT,
        "Shrikumar et al. 2016, Not Just a Black Box: Learning Important Features Through "
        "Propagating Activation Differences",
    ),
):
    register(
        MethodSpec(
            method=_method,
            family=Family.GRADIENT,
            options_model=_options,
            summary=_summary,
            cost=_cost,
            paper=_paper,
            supports_per_target_token=True,
            has_convergence_delta=_impl.delta,
            uses_seed=not _impl.deterministic,
            gradient=_impl,
        )
    )


def get_method(method: AttributionMethod | str) -> MethodSpec:
    """The spec of a method given as enum or string; unknown names list the valid ones."""
    spec = REGISTRY[AttributionMethod.parse(method)]
    if not spec.available:
        raise MethodNotAvailableError(
            f"{spec.method.value} is not implemented in this version of fairforge_attr; "
            f"available: {', '.join(m.value for m, s in REGISTRY.items() if s.available)}"
        )
    return spec
