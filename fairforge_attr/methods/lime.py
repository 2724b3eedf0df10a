"""LIME (Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?"): a linear surrogate of f
fitted on random unit removals; the scores are its coefficients.

Two samplers:

- ``keep_half`` (default): every unit is kept with probability 1/2, as in captum's Lime and
  ContextCite (Cohen-Wang et al. 2024, "ContextCite: Attributing Model Generation to Context").
  The masks are column-balanced: each unit is kept in exactly half of them (a random
  permutation per unit), which steadies the fit at small budgets. All masks weigh the same.
  The surrogate then predicts f on random ablations (measured as R^2 on fresh ones, see
  ``surrogate_r2``), which is what deletion curves and LDS test.
- ``lime``: the lime package's text sampler; every mask removes a uniformly drawn number of
  uniformly chosen units, weighted by an exponential kernel on the cosine distance to the
  original (``kernel_width``). Its surrogate is local: it fits masks near the original best.

Two solvers:

- ``ridge`` (default): weighted ridge with an unpenalised intercept (scikit-learn's
  ``Ridge(alpha)`` with sample weights); linear in the values, so per-target-token rows sum to
  the totals.
- ``lasso``: a sparse surrogate for hundreds of units on a budget of 32-128 masks (as
  ContextCite does); the penalty is ``lasso_alpha`` times the smallest one that zeroes every
  coefficient, so it does not depend on the scale of f. Solved by FISTA (Beck & Teboulle
  2009). Not linear in the values: per-target-token rows are fitted one by one.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from .perturbation import PerturbationOptions
from .uncertainty import sandwich_std_error

LASSO_ITERATIONS = 1000
LASSO_TOLERANCE = 1e-7
BOOTSTRAP_REPLICATES = 24


class LimeOptions(PerturbationOptions):
    n_samples: int = Field(default=200, ge=2, description="masks scored besides the original")
    sampler: Literal["keep_half", "lime"] = Field(
        default="keep_half",
        description="'keep_half': each unit kept with probability 1/2 (column-balanced), equal "
        "weights; 'lime': the lime package's text sampler with a locality kernel",
    )
    solver: Literal["ridge", "lasso"] = Field(
        default="ridge", description="'ridge', or 'lasso' for a sparse fit of hundreds of units"
    )
    kernel_width: float = Field(
        default=0.25, gt=0, description="sampler='lime': width of the exponential kernel on cosine distance"
    )
    alpha: float = Field(
        default=1.0, ge=0, description="solver='ridge': the ridge penalty (scikit-learn's Ridge(alpha))"
    )
    lasso_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="solver='lasso': the L1 penalty as a fraction of the smallest penalty that "
        "zeroes every coefficient",
    )


# ------------------------------------------------------------------ sampling
def lime_masks(
    n_units: int, n_samples: int, generator: torch.Generator, sampler: str = "lime"
) -> torch.Tensor:
    """[n_samples, n_units] masks (True = kept) of the chosen sampler."""
    if sampler == "keep_half":
        kept = torch.arange(n_samples) < (n_samples + 1) // 2  # half of the masks keep a unit...
        order = torch.rand(n_samples, n_units, generator=generator).argsort(0)
        return kept[order]  # ...a different, random half for every unit
    # lime: row 0 is the original, the others remove 1..n_units uniformly chosen units
    n_remove = torch.randint(1, n_units + 1, (n_samples - 1, 1), generator=generator)
    ranks = torch.rand(n_samples - 1, n_units, generator=generator).argsort(1).argsort(1)
    perturbed = ranks >= n_remove
    return torch.cat([torch.ones(1, n_units, dtype=torch.bool), perturbed])


def lime_weights(masks: torch.Tensor, kernel_width: float) -> torch.Tensor:
    """sqrt(exp(-d^2 / w^2)) with d the cosine distance between the mask and the original."""
    kept = masks.double().sum(1)
    distance = 1.0 - torch.sqrt(kept / masks.shape[1])
    return torch.sqrt(torch.exp(-(distance**2) / kernel_width**2))


def sample_weights(masks: torch.Tensor, options: LimeOptions) -> torch.Tensor:
    if options.sampler == "keep_half":
        return torch.ones(masks.shape[0], dtype=torch.float64)
    return lime_weights(masks, options.kernel_width)


# ------------------------------------------------------------------- solvers
def _centre(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    mean_w = w / w.sum()
    x_mean, y_mean = (mean_w[:, None] * x).sum(0), (mean_w[:, None] * y).sum(0)
    return x - x_mean, y - y_mean, x_mean, y_mean


def weighted_ridge(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float) -> torch.Tensor:
    """Coefficients of a weighted ridge regression with an unpenalised intercept.

    x [n, d], y [n, k], w [n] -> [k, d]. Same estimator as scikit-learn's Ridge(alpha) with
    sample_weight: centre by weighted means, then solve the penalised normal equations.
    """
    xc, yc, _, _ = _centre(x, y, w)
    gram = xc.T @ (w[:, None] * xc) + alpha * torch.eye(x.shape[1], dtype=x.dtype)
    rhs = xc.T @ (w[:, None] * yc)
    # gelsd (SVD) is deterministic here; the default gelsy is not from run to run on MKL
    return torch.linalg.lstsq(gram, rhs, driver="gelsd").solution.T


def weighted_lasso(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float, start: torch.Tensor | None = None
) -> torch.Tensor:
    """Coefficients [k, d] of min (1/2) sum_i w_i (yc_i - xc_i b)^2 / sum w + lam |b|_1,
    lam = alpha * lam_max per column of y, by FISTA. x [n, d], y [n, k], w [n]; ``start``
    [k, d] warm-starts it. (Batched small matmuls are far slower than 2-D ones on a CPU, so the
    bootstrap calls this once per replicate.)"""
    wn = (w / w.sum(-1, keepdim=True)).unsqueeze(-1)  # [..., n, 1]
    xs = (x - (wn * x).sum(-2, keepdim=True)) * wn.sqrt()  # centred, sqrt-weighted rows
    ys = (y - (wn * y).sum(-2, keepdim=True)) * wn.sqrt()
    xt = xs.transpose(-1, -2)
    rhs = xt @ ys  # [..., d, k]
    lam = alpha * rhs.abs().amax(-2, keepdim=True)  # [..., 1, k]
    # the gradient's Lipschitz constant: the top eigenvalue of xs' xs, from the smaller side
    small = xs @ xt if xs.shape[-2] <= xs.shape[-1] else xt @ xs
    step = 1.0 / torch.linalg.eigvalsh(small)[..., -1:].clamp_min(1e-12).unsqueeze(-1)  # [..., 1, 1]
    b = torch.zeros_like(rhs) if start is None else start.transpose(-1, -2).clone()
    z, t = b, 1.0
    for _ in range(LASSO_ITERATIONS):
        u = z - step * (xt @ (xs @ z) - rhs)  # rows first: n x d work, never d x d
        b_next = torch.sign(u) * (u.abs() - step * lam).clamp_min(0)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        z = b_next + ((t - 1) / t_next) * (b_next - b)
        done = float((b_next - b).abs().max()) <= LASSO_TOLERANCE * (1 + float(b_next.abs().max()))
        b, t = b_next, t_next
        if done:
            break
    return b.transpose(-1, -2)


def lime_surrogate(
    masks: torch.Tensor, values: torch.Tensor, options: LimeOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fitted surrogate: coefficients [k, d] and intercepts [k]."""
    x, y = masks.double(), values.double()
    w = sample_weights(masks, options)
    if options.solver == "lasso":
        coef = weighted_lasso(x, y, w, options.lasso_alpha)
    else:
        coef = weighted_ridge(x, y, w, options.alpha)
    _, _, x_mean, y_mean = _centre(x, y, w)
    return coef, y_mean - coef @ x_mean


def lime_scores(masks: torch.Tensor, values: torch.Tensor, options: LimeOptions) -> torch.Tensor:
    return lime_surrogate(masks, values, options)[0]


def surrogate_r2(
    coef: torch.Tensor, intercept: torch.Tensor, masks: torch.Tensor, values: torch.Tensor
) -> float:
    """R^2 of the surrogate's predictions of f on (fresh) masks; values [n] or [n, 1]."""
    y = values.double().reshape(-1)
    pred = float(intercept.reshape(-1)[0]) + masks.double() @ coef.reshape(-1).double()
    return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())


# ------------------------------------------------------------ uncertainty
def lime_std_error(masks: torch.Tensor, values: torch.Tensor, options: LimeOptions) -> torch.Tensor:
    """Standard error of each coefficient [n_units] from the sampling of masks: the sandwich
    estimator for ridge; for lasso, the spread over 24 bootstrap refits (fixed seed)."""
    y = values.double().sum(1, keepdim=True)
    x = masks.double()
    if options.solver == "lasso":
        w = sample_weights(masks, options)
        pick = torch.randint(
            0, x.shape[0], (BOOTSTRAP_REPLICATES, x.shape[0]), generator=torch.Generator().manual_seed(0)
        )
        fit = weighted_lasso(x, y, w, options.lasso_alpha)
        coef = [weighted_lasso(x[p], y[p], w[p], options.lasso_alpha, fit)[0] for p in pick]
        return torch.stack(coef).std(0)
    w = sample_weights(masks, options)
    coef, intercept = lime_surrogate(masks, y, options)
    resid = y[:, 0] - intercept[0] - x @ coef[0]
    xc, _, _, _ = _centre(x, y, w)
    drawn = torch.zeros(x.shape[0], dtype=torch.long)
    if options.sampler == "lime":
        drawn[0] = -1  # the original is always there, not drawn
    return sandwich_std_error(xc, w, resid, drawn, torch.arange(x.shape[0]), ridge=options.alpha)
