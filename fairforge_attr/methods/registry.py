"""The one registry: AttributionMethod -> what it is, what it costs, how to run it.

The API, the CLI's choices and ``ffattr methods`` all read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import InvalidRequestError, MethodNotAvailableError, UnknownChoiceError
from ..types import AttributionMethod
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


class _NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


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

# Gradient methods are registered by methods/gradient.py when it is available; until then
# they are listed (the enum has them) and asking for one raises MethodNotAvailableError.
for _m in (
    AttributionMethod.SALIENCY,
    AttributionMethod.INTEGRATED_GRADIENTS,
    AttributionMethod.GRADIENT_SHAP,
    AttributionMethod.SMOOTH_GRAD,
    AttributionMethod.SQUARE_GRAD,
    AttributionMethod.VAR_GRAD,
    AttributionMethod.INPUT_X_GRADIENT,
):
    register(
        MethodSpec(
            method=_m,
            family=Family.GRADIENT,
            options_model=_NoOptions,
            summary="not implemented yet",
            cost="-",
            paper="-",
            supports_per_target_token=False,
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
