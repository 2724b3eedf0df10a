"""KernelSHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions") with
a stratified, paired design that reaches the exact Shapley values smoothly as the budget grows.

The Shapley kernel puts mass (d - 1) / (s (d - s)) on all coalitions of size s together, most of
it per coalition on the smallest and largest sizes. Sizes are taken in complementary pairs
(s, d - s), outermost first:

1. a pair of sizes whose coalitions all fit in its share of the budget is enumerated whole and
   every coalition gets its exact kernel weight (the rule of the ``shap`` package);
2. the remaining budget is spread over the remaining sizes in proportion to their kernel mass
   (systematic rounding, so every size gets its expected share); each size draws that many
   distinct coalitions (without replacement), each followed by its complement, and its draws
   share the size's kernel mass equally.

So a budget of 2^d - 2 enumerates everything (the exact Shapley values), and a budget just
below it enumerates all but the middle size and samples that one almost completely: there is
no jump at the enumeration threshold. The fit is weighted least squares with the efficiency
constraint sum(phi) = f(x) - f(empty) solved exactly by eliminating the last unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pydantic import Field

from .perturbation import PerturbationOptions
from .uncertainty import sandwich_std_error


class KernelShapOptions(PerturbationOptions):
    n_samples: int = Field(
        default=256,
        ge=2,
        description="coalitions scored besides the full and the empty one; sizes whose coalitions "
        "all fit are enumerated, so with n_samples >= 2^n_units - 2 the result is the exact "
        "Shapley value",
    )


@dataclass(frozen=True)
class Stratum:
    """Coalitions of size ``size`` and their complements (size d - size)."""

    size: int
    n_pairs: int  # (coalition, complement) pairs in the stratum
    mass: float  # Shapley-kernel mass of all its coalitions together
    enumerated: bool
    expected_pairs: float  # pairs drawn on average when sampled (0 when enumerated)


def kernel_shap_design(n_units: int, n_samples: int) -> list[Stratum]:
    """Which coalition sizes are enumerated and how many pairs the others draw on average."""
    d = n_units
    raw = []
    for s in range(1, d // 2 + 1):
        one_size = (d - 1) / (s * (d - s))
        if 2 * s == d:  # the middle size pairs with itself
            raw.append((s, math.comb(d, s) // 2, one_size))
        else:
            raw.append((s, math.comb(d, s), 2 * one_size))
    left, mass_left = n_samples, sum(m for _, _, m in raw)
    strata: list[Stratum] = []
    for s, pairs, mass in raw:
        if strata and not strata[-1].enumerated:
            strata.append(Stratum(s, pairs, mass, False, 0.0))
        elif left * mass / mass_left >= 2 * pairs - 1e-9:
            strata.append(Stratum(s, pairs, mass, True, 0.0))
            left, mass_left = left - 2 * pairs, mass_left - mass
        else:
            strata.append(Stratum(s, pairs, mass, False, 0.0))
    pairs_left = left // 2
    return [
        st
        if st.enumerated
        else Stratum(st.size, st.n_pairs, st.mass, False, pairs_left * st.mass / mass_left)
        for st in strata
    ]


def kernel_shap_is_exact(n_units: int, n_samples: int) -> bool:
    return n_units < 2 or all(st.enumerated for st in kernel_shap_design(n_units, n_samples))


def _systematic_counts(expected: list[float], generator: torch.Generator) -> list[int]:
    """Integers n_i with E[n_i] = expected_i, each floor or ceil of it, summing to round(sum)."""
    u = float(torch.rand(1, generator=generator, dtype=torch.float64))
    counts, cum = [], 0.0
    for e in expected:
        counts.append(math.floor(cum + e + u) - math.floor(cum + u))
        cum += e
    return counts


def _distinct_subsets(pool: int, size: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """k distinct subsets of ``size`` out of ``pool`` items, uniformly without replacement."""
    total = math.comb(pool, size)
    if total <= max(4 * k, 4096):  # few enough to list: a random choice of k of them
        members = torch.combinations(torch.arange(pool), r=size).reshape(total, size)
        every = torch.zeros(total, pool, dtype=torch.bool).scatter_(1, members, True)
        return every[torch.randperm(total, generator=generator)[:k]]
    found = torch.zeros(0, pool, dtype=torch.bool)
    while found.shape[0] < k:
        ranks = torch.rand(2 * k, pool, generator=generator).argsort(1).argsort(1)
        cand = torch.cat([found, ranks < size])
        _, inverse = torch.unique(cand, dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), cand.shape[0]).scatter_reduce(
            0, inverse, torch.arange(cand.shape[0]), "amin"
        )
        found = cand[first.sort().values]  # distinct, in draw order (not sorted: no bias)
    return found[:k]


def _stratum_coalitions(d: int, st: Stratum, n_pairs: int, generator: torch.Generator) -> torch.Tensor:
    """Rows: coalition, complement, coalition, complement, ... of this stratum."""
    if st.enumerated:
        n_pairs = st.n_pairs
    if n_pairs == 0:
        return torch.zeros(0, d, dtype=torch.bool)
    if 2 * st.size == d:  # a pair is {S, complement}: list each once, as the member holding unit 0
        rest = _distinct_subsets(d - 1, st.size - 1, n_pairs, generator)
        firsts = torch.cat([torch.ones(n_pairs, 1, dtype=torch.bool), rest], 1)
    else:
        firsts = _distinct_subsets(d, st.size, n_pairs, generator)
    return torch.stack([firsts, ~firsts], 1).reshape(-1, d)


def kernel_shap_masks(n_units: int, n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """Rows 0 and 1 are the full and the empty coalition, then the strata of
    ``kernel_shap_design`` in order, each as (coalition, complement) pairs."""
    d = n_units
    fixed = torch.stack([torch.ones(d, dtype=torch.bool), torch.zeros(d, dtype=torch.bool)])
    if d < 2:
        return fixed
    design = kernel_shap_design(d, n_samples)
    sampled = [st for st in design if not st.enumerated]
    counts = dict(
        zip(
            [st.size for st in sampled],
            _systematic_counts([st.expected_pairs for st in sampled], generator),
        )
    )
    parts = [_stratum_coalitions(d, st, counts.get(st.size, 0), generator) for st in design]
    return torch.cat([fixed, *parts])


def kernel_shap_weights(masks: torch.Tensor, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``masks[2:]``: its kernel weight, and its pair's stratum id (-1: enumerated,
    so no sampling noise) for the standard errors."""
    d = masks.shape[1]
    sizes = masks[2:].sum(1)
    outer = torch.minimum(sizes, d - sizes)
    weights = torch.zeros(sizes.shape[0], dtype=torch.float64)
    stratum_id = torch.full((sizes.shape[0],), -1, dtype=torch.long)
    for st in kernel_shap_design(d, n_samples):
        rows = outer == st.size
        n_rows = int(rows.sum())
        if n_rows == 0:
            continue
        if st.enumerated:
            weights[rows] = st.mass / (2 * st.n_pairs)
        else:  # the stratum's mass shared by its draws (by its expected draws when < 1)
            pairs = n_rows / 2 if st.expected_pairs >= 1 else st.expected_pairs
            weights[rows] = st.mass / (2 * pairs)
            stratum_id[rows] = st.size
    return weights, stratum_id


def _reduced_problem(
    masks: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eliminate the last unit with sum(phi) = f(x) - f(empty): returns (x_adj, y_adj, delta)."""
    z = masks[2:].double()
    v_full, v_empty = values[0], values[1]
    delta = v_full - v_empty
    y_adj = values[2:] - v_empty - z[:, -1:] * delta
    x_adj = z[:, :-1] - z[:, -1:]
    return x_adj, y_adj, delta


def kernel_shap_scores(masks: torch.Tensor, values: torch.Tensor, options: KernelShapOptions) -> torch.Tensor:
    """Weighted least squares with the efficiency constraint, on the design's weights."""
    d = masks.shape[1]
    values = values.double()
    if d == 1:
        return (values[0] - values[1])[:, None]
    x_adj, y_adj, delta = _reduced_problem(masks, values)
    w, _ = kernel_shap_weights(masks, options.n_samples)
    sw = w.sqrt()[:, None]
    head = torch.linalg.lstsq(x_adj * sw, y_adj * sw, driver="gelsd").solution.T  # [k, d-1]
    last = delta - head.sum(1)
    return torch.cat([head, last[:, None]], 1)


def kernel_shap_std_error(
    masks: torch.Tensor, values: torch.Tensor, options: KernelShapOptions
) -> torch.Tensor:
    """Standard error of each Shapley estimate [n_units] from the sampling of coalitions
    (a stratified, pair-clustered sandwich estimator); 0 where every coalition was enumerated."""
    d = masks.shape[1]
    if d == 1:
        return torch.zeros(1, dtype=torch.float64)
    values = values.double().sum(1, keepdim=True)
    x_adj, y_adj, _ = _reduced_problem(masks, values)
    w, stratum = kernel_shap_weights(masks, options.n_samples)
    phi = kernel_shap_scores(masks, values, options)[0]
    resid = y_adj[:, 0] - x_adj @ phi[:-1]
    pair = torch.arange(x_adj.shape[0]) // 2  # rows come as (coalition, complement)
    cov = sandwich_std_error(x_adj, w, resid, stratum, pair, ridge=0.0, covariance=True)
    # the last unit is delta - sum(head): its variance is 1' cov 1
    last = cov.sum().clamp_min(0).sqrt()
    return torch.cat([cov.diagonal().clamp_min(0).sqrt(), last[None]])
