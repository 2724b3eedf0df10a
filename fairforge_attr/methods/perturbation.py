"""Perturbation methods as pure functions: masks out of a seed, scores out of masks + values.

Every ``sample`` returns a bool matrix [n_variants, n_units] (True = unit kept); the engine
turns it into values [n_variants, k] (k = 1 for the summed objective, k = n_target for
per-target-token scores); every ``attribute`` returns [k, n_units], and the sampled methods'
``std_error`` returns [n_units] for the summed objective. Occlusion lives here; LIME, KernelSHAP
and Sobol have their own modules (lime.py, kernel_shap.py, sobol.py).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field


class PerturbationOptions(BaseModel):
    """Options every perturbation method takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: str | int | None = Field(
        default=None,
        description="how a removed unit disappears: 'pad' (default: pad, else unk, else eos "
        "token), 'unk', 'eos', 'hide' (attention mask), a token id, or a one-token string",
    )


# ---------------------------------------------------------------- occlusion
class OcclusionOptions(PerturbationOptions):
    pass


def occlusion_masks(n_units: int) -> torch.Tensor:
    """Row 0 keeps everything; row i+1 removes unit i alone."""
    return torch.cat([torch.ones(1, n_units, dtype=torch.bool), ~torch.eye(n_units, dtype=torch.bool)])


def occlusion_scores(values: torch.Tensor) -> torch.Tensor:
    """score_i = f(x) - f(x without unit i)."""
    return (values[:1] - values[1:]).T
