"""Total-order Sobol indices (Fel et al., "Look at the Variance! Efficient Black-box
Explanations with Sobol-based Sensitivity Analysis", NeurIPS 2021), for discrete text units.

Each unit is kept or removed with probability 1/2. The base masks A are the first n_samples
points of a scrambled Sobol (quasi-Monte-Carlo) sequence of dimension n_units, thresholded at
0.5; for every unit i the design adds A with unit i flipped (A xor e_i). For a unit that is on
or off with probability 1/2 the conditional variance given the other units is
(f(z) - f(z xor e_i))^2 / 4 exactly, so

    ST_i = mean_n (f(A_n) - f(A_n xor e_i))^2 / (4 Var f)

is Jansen's estimator with every row informative (the usual design, which takes unit i from a
second sample B, leaves it unchanged in half the rows). Var f is estimated from all rows, each
of which is a uniformly distributed mask. With n_samples = 2^n_units the Sobol points are
every mask once and the indices are exact.

Default n_samples = 64: on 8-12 units the largest absolute error against the exact indices
(by enumeration) is <= 0.05 (tests/unit/test_estimators.py; benchmarks/RESULTS.md has the
numbers on a model). Cost: n_samples x (n_units + 1) variants. Indices are >= 0: they say how
much of the objective's variance a unit drives, not in which direction.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .perturbation import PerturbationOptions

BOOTSTRAP_REPLICATES = 200


class SobolOptions(PerturbationOptions):
    n_samples: int = Field(
        default=64,
        ge=2,
        description="quasi-Monte-Carlo base masks N; cost is N x (n_units + 1) sequences",
    )


def sobol_masks(n_units: int, n_samples: int, seed: int) -> torch.Tensor:
    """Rows [0, N): the base masks A; then, unit by unit, A with that unit flipped."""
    engine = torch.quasirandom.SobolEngine(n_units, scramble=True, seed=seed)
    a = engine.draw(n_samples) < 0.5
    c = a.unsqueeze(0).repeat(n_units, 1, 1)  # [unit, sample, unit]
    idx = torch.arange(n_units)
    c[idx, :, idx] = ~c[idx, :, idx]
    return torch.cat([a, c.reshape(-1, n_units)])


def _indices(f_a: torch.Tensor, f_c: torch.Tensor) -> torch.Tensor:
    """f_a [..., N, k], f_c [..., d, N, k] -> indices [..., k, d]."""
    rows = torch.cat([f_a.unsqueeze(-3), f_c], -3)  # [..., d+1, N, k]
    var = rows.flatten(-3, -2).var(-2)  # [..., k]
    total = ((f_a.unsqueeze(-3) - f_c) ** 2).mean(-2) / 4  # [..., d, k]
    safe = torch.where(var > 0, var, torch.ones_like(var)).unsqueeze(-2)
    return torch.where(var.unsqueeze(-2) > 0, total / safe, torch.zeros_like(total)).transpose(-1, -2)


def _split(masks: torch.Tensor, values: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    d = masks.shape[1]
    values = values.double()
    return values[:n], values[n:].reshape(d, n, -1)


def sobol_scores(masks: torch.Tensor, values: torch.Tensor, options: SobolOptions) -> torch.Tensor:
    f_a, f_c = _split(masks, values, options.n_samples)
    return _indices(f_a, f_c)


def sobol_std_error(masks: torch.Tensor, values: torch.Tensor, options: SobolOptions) -> torch.Tensor:
    """Standard error of each index [n_units]: the spread of the indices over a bootstrap of
    the base masks (each with its flips), 200 replicates from a fixed seed, so the same
    inputs give the same errors. It treats the quasi-random base masks as independent draws,
    which overstates the error of a QMC design a little: a conservative figure."""
    n = options.n_samples
    f_a, f_c = _split(masks, values.sum(1, keepdim=True), n)
    pick = torch.randint(0, n, (BOOTSTRAP_REPLICATES, n), generator=torch.Generator().manual_seed(0))
    replicates = _indices(f_a[pick], f_c[:, pick].transpose(0, 1))  # [B, 1, d]
    return replicates[:, 0].std(0)
