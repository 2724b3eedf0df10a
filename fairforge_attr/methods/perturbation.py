"""Perturbation methods as pure functions: masks out of a seed, scores out of masks + values.

Every ``sample`` returns a bool matrix [n_variants, n_units] (True = unit kept); the engine
turns it into values [n_variants, k] (k = 1 for the summed objective, k = n_target for
per-target-token scores); every ``attribute`` returns [k, n_units]. The solvers are linear in
the values, so per-target-token rows sum to the totals.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
from pydantic import BaseModel, ConfigDict, Field

EXACT_SHAPLEY_MAX_UNITS = 16


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


# --------------------------------------------------------------------- LIME
class LimeOptions(PerturbationOptions):
    n_samples: int = Field(
        default=200, ge=2, description="perturbed prompts scored (the first is the original)"
    )
    kernel_width: float = Field(
        default=0.25, gt=0, description="width of the exponential kernel on cosine distance"
    )
    alpha: float = Field(
        default=1.0, ge=0, description="ridge penalty of the surrogate (LIME's default Ridge(alpha=1))"
    )


def lime_masks(n_units: int, n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """LIME's text sampler: row 0 is the original; every other row removes a uniformly drawn
    number (1..n_units) of uniformly chosen units."""
    n_remove = torch.randint(1, n_units + 1, (n_samples - 1, 1), generator=generator)
    ranks = torch.rand(n_samples - 1, n_units, generator=generator).argsort(1).argsort(1)
    perturbed = ranks >= n_remove
    return torch.cat([torch.ones(1, n_units, dtype=torch.bool), perturbed])


def lime_weights(masks: torch.Tensor, kernel_width: float) -> torch.Tensor:
    """sqrt(exp(-d^2 / w^2)) with d the cosine distance between the mask and the original."""
    kept = masks.double().sum(1)
    distance = 1.0 - torch.sqrt(kept / masks.shape[1])
    return torch.sqrt(torch.exp(-(distance**2) / kernel_width**2))


def weighted_ridge(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float) -> torch.Tensor:
    """Coefficients of a weighted ridge regression with an unpenalised intercept.

    x [n, d], y [n, k], w [n] -> [k, d]. Same estimator as scikit-learn's Ridge(alpha) with
    sample_weight: centre by weighted means, then solve the penalised normal equations.
    """
    mean_w = w / w.sum()
    xc = x - (mean_w[:, None] * x).sum(0)
    yc = y - (mean_w[:, None] * y).sum(0)
    gram = xc.T @ (w[:, None] * xc) + alpha * torch.eye(x.shape[1], dtype=x.dtype)
    rhs = xc.T @ (w[:, None] * yc)
    # gelsd (SVD) is deterministic here; the default gelsy is not from run to run on MKL
    return torch.linalg.lstsq(gram, rhs, driver="gelsd").solution.T


def lime_scores(masks: torch.Tensor, values: torch.Tensor, options: LimeOptions) -> torch.Tensor:
    return weighted_ridge(
        masks.double(), values.double(), lime_weights(masks, options.kernel_width), options.alpha
    )


# -------------------------------------------------------------- KernelSHAP
class KernelShapOptions(PerturbationOptions):
    n_samples: int = Field(
        default=256,
        ge=2,
        description="coalitions scored; when 2^n_units - 2 <= n_samples every coalition is "
        "enumerated and the result is the exact Shapley value",
    )


def kernel_shap_is_exact(n_units: int, n_samples: int) -> bool:
    return n_units <= EXACT_SHAPLEY_MAX_UNITS and 2**n_units - 2 <= n_samples


def kernel_shap_masks(n_units: int, n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """Rows 0 and 1 are the full and the empty coalition; then either every other coalition,
    or coalitions drawn from the Shapley kernel (sizes with p(s) ~ (d-1)/(s(d-s)), members
    uniform), each followed by its complement (paired sampling halves the variance)."""
    d = n_units
    fixed = torch.stack([torch.ones(d, dtype=torch.bool), torch.zeros(d, dtype=torch.bool)])
    if d < 2:
        return fixed
    if kernel_shap_is_exact(d, n_samples):
        rows = [
            torch.isin(torch.arange(d), torch.tensor(c))
            for s in range(1, d)
            for c in combinations(range(d), s)
        ]
        return torch.cat([fixed, torch.stack(rows)])
    sizes = torch.arange(1, d, dtype=torch.float64)
    size_p = (d - 1) / (sizes * (d - sizes))
    n_pairs = max(1, n_samples // 2)
    drawn = torch.multinomial(size_p, n_pairs, replacement=True, generator=generator) + 1
    ranks = torch.rand(n_pairs, d, generator=generator).argsort(1).argsort(1)
    coalitions = ranks < drawn[:, None]
    return torch.cat([fixed, torch.stack([coalitions, ~coalitions], 1).reshape(-1, d)])


def shapley_kernel(n_units: int, sizes: torch.Tensor) -> torch.Tensor:
    d = n_units
    binom = torch.tensor([math.comb(d, int(s)) for s in sizes], dtype=torch.float64)
    return (d - 1) / (binom * sizes * (d - sizes))


def kernel_shap_scores(masks: torch.Tensor, values: torch.Tensor, options: KernelShapOptions) -> torch.Tensor:
    """Weighted least squares with the efficiency constraint sum(phi) = f(x) - f(empty)
    solved exactly by eliminating the last unit (Lundberg & Lee 2017)."""
    d = masks.shape[1]
    values = values.double()
    v_full, v_empty = values[0], values[1]
    delta = v_full - v_empty
    if d == 1:
        return delta[:, None]
    z = masks[2:].double()
    y = values[2:]
    if kernel_shap_is_exact(d, options.n_samples):
        w = shapley_kernel(d, z.sum(1))
    else:  # drawn from the kernel already: every draw counts once
        w = torch.ones(z.shape[0], dtype=torch.float64)
    y_adj = y - v_empty - z[:, -1:] * delta
    x_adj = z[:, :-1] - z[:, -1:]
    sw = w.sqrt()[:, None]
    head = torch.linalg.lstsq(x_adj * sw, y_adj * sw, driver="gelsd").solution.T  # [k, d-1]
    last = delta - head.sum(1)
    return torch.cat([head, last[:, None]], 1)
