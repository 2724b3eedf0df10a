"""Standard errors of the sampled estimators, computed from the samples already scored.

A regression surrogate beta = A^-1 X'W y (A = X'WX + ridge I) varies with the sampled rows
through g_c = sum over the rows of one sampling unit c (a coalition and its complement, or a
single mask) of w_i r_i x_i, with r the residuals. The sandwich estimator
cov(beta) = A^-1 M A^-1, M = sum over strata h of n_h / (n_h - 1) sum_c (g_c - mean_h g)(...)',
is what a bootstrap over sampling units approximates, without refitting (White 1980; Cameron &
Miller 2015 for clustered and stratified designs). Rows that were enumerated rather than drawn
(stratum -1) carry no sampling noise and are left out of M.
"""

from __future__ import annotations

import torch


def sandwich_std_error(
    x: torch.Tensor,
    w: torch.Tensor,
    resid: torch.Tensor,
    stratum: torch.Tensor,
    cluster: torch.Tensor,
    ridge: float = 0.0,
    covariance: bool = False,
) -> torch.Tensor:
    """Standard errors [d] (or the covariance [d, d]) of a weighted (ridge) regression.

    Args:
        x: design [n, d], already centred if the fit had an intercept.
        w: row weights [n].
        resid: residuals of the fit [n].
        stratum: stratum id per row [n]; -1 for rows that were not sampled.
        cluster: sampling-unit id per row [n] (rows of one unit are drawn together).
        ridge: the penalty the fit used.
        covariance: return the covariance matrix instead of the standard errors.
    """
    d = x.shape[1]
    bread = x.T @ (w[:, None] * x) + ridge * torch.eye(d, dtype=x.dtype)
    meat = torch.zeros(d, d, dtype=x.dtype)
    score = (w * resid)[:, None] * x  # [n, d]
    for h in torch.unique(stratum[stratum >= 0]).tolist():
        rows = stratum == h
        _, unit = torch.unique(cluster[rows], return_inverse=True)
        n_units = int(unit.max()) + 1
        if n_units < 2:
            continue
        g = torch.zeros(n_units, d, dtype=x.dtype).index_add_(0, unit, score[rows])
        g = g - g.mean(0)
        meat += n_units / (n_units - 1) * (g.T @ g)
    inv = torch.linalg.pinv(bread, hermitian=True)
    cov = inv @ meat @ inv
    return cov if covariance else cov.diagonal().clamp_min(0).sqrt()
