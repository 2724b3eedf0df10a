"""Total-order Sobol indices (Fel et al., "Look at the Variance! Efficient Black-box
Explanations with Sobol-based Sensitivity Analysis", NeurIPS 2021), for discrete text units.

Masks come from a scrambled Sobol (quasi-Monte-Carlo) sequence of dimension 2 x n_units,
thresholded at 0.5 so each unit is kept or removed with probability 1/2. With A and B the two
halves and C_i = A with column i taken from B, Jansen's estimator gives

    ST_i = mean((f(A) - f(C_i))^2) / (2 Var f)

Cost: n_samples x (n_units + 2) variants. Indices are >= 0: they say how much of the
objective's variance a unit drives, not in which direction.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .perturbation import PerturbationOptions


class SobolOptions(PerturbationOptions):
    n_samples: int = Field(
        default=32, ge=2, description="quasi-Monte-Carlo base points N; cost is N x (n_units + 2)"
    )


def sobol_masks(n_units: int, n_samples: int, seed: int) -> torch.Tensor:
    engine = torch.quasirandom.SobolEngine(2 * n_units, scramble=True, seed=seed)
    points = engine.draw(n_samples) < 0.5
    a, b = points[:, :n_units], points[:, n_units:]
    c = a.unsqueeze(0).repeat(n_units, 1, 1)  # [unit, sample, unit]
    idx = torch.arange(n_units)
    c[idx, :, idx] = b.T
    return torch.cat([a, b, c.reshape(-1, n_units)])


def sobol_scores(masks: torch.Tensor, values: torch.Tensor, options: SobolOptions) -> torch.Tensor:
    n, d = options.n_samples, masks.shape[1]
    values = values.double()
    f_a, f_b = values[:n], values[n : 2 * n]
    f_c = values[2 * n :].reshape(d, n, -1)
    var = torch.cat([f_a, f_b]).var(0)  # [k]
    total = ((f_a.unsqueeze(0) - f_c) ** 2).mean(1) / 2  # [d, k]
    safe = torch.where(var > 0, var, torch.ones_like(var))
    return torch.where(var > 0, total / safe, torch.zeros_like(total)).T
