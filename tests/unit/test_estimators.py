"""Estimator accuracy against exact values by enumeration (issue 11, point 5), the sparse LIME
surrogate (point 4), and the standard errors of the sampled methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.exact import ValueTable, all_masks, captum_lime
from fairforge_attr.methods.kernel_shap import (
    KernelShapOptions,
    kernel_shap_design,
    kernel_shap_masks,
    kernel_shap_scores,
    kernel_shap_std_error,
)
from fairforge_attr.methods.lime import (
    LimeOptions,
    lime_masks,
    lime_std_error,
    lime_surrogate,
    surrogate_r2,
)
from fairforge_attr.methods.sobol import SobolOptions, sobol_masks, sobol_scores, sobol_std_error


def make_game(d: int, seed: int):
    """Main effects, pairwise interactions and a saturating term: far from additive."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, generator=g, dtype=torch.float64)
    pairs = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.3

    def value(masks: torch.Tensor) -> torch.Tensor:
        z = masks.double()
        return (z @ a + ((z @ pairs) * z).sum(1) + 2 * torch.tanh(z.sum(1) - d / 2)).unsqueeze(1)

    return value


def table_of(value, d: int) -> ValueTable:
    """Every mask's value, by enumeration (the benchmark's exact reference)."""
    return ValueTable(value(all_masks(d))[:, 0], d)


def exact_shapley(table: ValueTable, d: int) -> torch.Tensor:
    return table.shapley()


def exact_total_sobol(table: ValueTable, d: int) -> torch.Tensor:
    return table.total_sobol()


def rel_error(est, exact) -> float:
    return float(np.linalg.norm(np.asarray(est) - np.asarray(exact)) / np.linalg.norm(np.asarray(exact)))


def ours_kernel_shap(value, d: int, n: int, seed: int) -> torch.Tensor:
    masks = kernel_shap_masks(d, n, torch.Generator().manual_seed(seed))
    return kernel_shap_scores(masks, value(masks), KernelShapOptions(n_samples=n))[0]


# -------------------------------------------------------------- KernelSHAP
def test_kernel_shap_design_pairs_distinct_coalitions():
    d, n = 12, 300
    masks = kernel_shap_masks(d, n, torch.Generator().manual_seed(0))
    body = masks[2:]
    assert body.shape[0] <= n
    assert torch.equal(body[1::2], ~body[0::2])  # every coalition followed by its complement
    assert torch.unique(body, dim=0).shape[0] == body.shape[0]  # drawn without replacement
    design = kernel_shap_design(d, n)
    assert design[0].enumerated and not design[-1].enumerated  # outer sizes first
    assert int((body.sum(1) == 1).sum()) == d  # size 1 enumerated whole


@pytest.mark.parametrize("below", [2, 4, 8, 20])
def test_kernel_shap_has_no_jump_below_the_enumeration_threshold(below):
    d = 10
    value = make_game(d, 0)
    exact = exact_shapley(table_of(value, d), d)
    n = 2**d - 2 - below
    for seed in range(3):
        assert rel_error(ours_kernel_shap(value, d, n, seed), exact) < 0.005


def test_kernel_shap_exact_at_the_threshold():
    d = 9
    value = make_game(d, 1)
    est = ours_kernel_shap(value, d, 2**d - 2, 0)
    np.testing.assert_allclose(est, exact_shapley(table_of(value, d), d), atol=1e-9)


def test_kernel_shap_no_worse_than_shap_kernel_explainer():
    """Same value function, same number of model calls (shap's nsamples excludes the full and
    the empty coalition, as ours does), mean relative error over seeds and over 10/12/14 units."""
    shap = pytest.importorskip("shap")
    budgets, seeds = (32, 64, 128, 256, 512), range(8)
    ours = {n: [] for n in budgets}
    theirs = {n: [] for n in budgets}
    for d in (10, 12, 14):
        value = make_game(d, d)
        table = table_of(value, d)
        exact = exact_shapley(table, d).numpy()
        shap_fn = table.numpy_fn()

        for n in budgets:
            for seed in seeds:
                ours[n].append(rel_error(ours_kernel_shap(value, d, n, seed), exact))
                np.random.seed(seed)
                explainer = shap.KernelExplainer(shap_fn, np.zeros((1, d)))
                sv = explainer.shap_values(np.ones((1, d)), nsamples=n, l1_reg=False, silent=True)
                theirs[n].append(rel_error(np.asarray(sv).ravel(), exact))
    for n in budgets:
        # shap's solve can blow up at tiny budgets: compare medians, and means where shap is sane
        assert np.median(ours[n]) <= np.median(theirs[n]), (n, np.median(ours[n]), np.median(theirs[n]))
    for n in budgets[1:]:
        assert np.mean(ours[n]) <= np.mean(theirs[n]), (n, np.mean(ours[n]), np.mean(theirs[n]))


def test_kernel_shap_std_error_matches_the_spread_over_seeds():
    d, n = 12, 256
    value = make_game(d, 3)
    estimates, reported = [], []
    for seed in range(40):
        masks = kernel_shap_masks(d, n, torch.Generator().manual_seed(seed))
        opts = KernelShapOptions(n_samples=n)
        estimates.append(kernel_shap_scores(masks, value(masks), opts)[0])
        reported.append(kernel_shap_std_error(masks, value(masks), opts))
    spread = torch.stack(estimates).std(0).mean()
    ratio = float(torch.stack(reported).mean() / spread)
    assert 0.7 < ratio < 1.5, ratio


def test_kernel_shap_std_error_is_zero_when_enumerated():
    d = 8
    value = make_game(d, 0)
    masks = kernel_shap_masks(d, 2**d, torch.Generator().manual_seed(0))
    se = kernel_shap_std_error(masks, value(masks), KernelShapOptions(n_samples=2**d))
    assert torch.allclose(se, torch.zeros(d, dtype=torch.float64), atol=1e-9)


# ------------------------------------------------------------------- Sobol
@pytest.mark.parametrize("d", [8, 10, 12])
def test_sobol_default_is_within_0_05_of_the_exact_total_indices(d):
    opts = SobolOptions()
    for game_seed in range(2):
        value = make_game(d, game_seed)
        exact = exact_total_sobol(table_of(value, d), d)
        for seed in range(5):
            masks = sobol_masks(d, opts.n_samples, seed)
            st = sobol_scores(masks, value(masks), opts)[0]
            assert float((st - exact).abs().max()) <= 0.05, (d, game_seed, seed)


def test_sobol_is_exact_when_the_samples_cover_every_mask():
    d = 6
    value = make_game(d, 0)
    masks = sobol_masks(d, 2**d, 0)
    st = sobol_scores(masks, value(masks), SobolOptions(n_samples=2**d))[0]
    # every mask once: only the variance's n-1 denominator differs from the exact index
    exact = exact_total_sobol(table_of(value, d), d)
    n_rows = masks.shape[0]
    assert torch.allclose(st, exact * (n_rows - 1) / n_rows, atol=1e-9)


def test_sobol_std_error_is_conservative_but_close():
    d, opts = 10, SobolOptions(n_samples=32)
    value = make_game(d, 1)
    estimates, reported = [], []
    for seed in range(24):
        masks = sobol_masks(d, opts.n_samples, seed)
        estimates.append(sobol_scores(masks, value(masks), opts)[0])
        reported.append(sobol_std_error(masks, value(masks), opts))
    ratio = float(torch.stack(reported).mean() / torch.stack(estimates).std(0).mean())
    assert 0.8 < ratio < 4.0, ratio


# -------------------------------------------------------------------- LIME
def test_keep_half_masks_are_column_balanced_and_seeded():
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    masks = lime_masks(30, 64, g(0), "keep_half")
    assert torch.equal(masks.sum(0), torch.full((30,), 32))
    assert torch.equal(masks, lime_masks(30, 64, g(0), "keep_half"))
    assert not torch.equal(masks, lime_masks(30, 64, g(1), "keep_half"))


def test_lime_r2_on_fresh_masks_at_least_captum_lime():
    """Both fit the same budget of the same value function; R^2 of each surrogate's prediction
    of f on fresh keep-half masks, mean over seeds."""
    d = 12
    value = make_game(d, 5)
    fresh = torch.rand(4000, d, generator=torch.Generator().manual_seed(99)) < 0.5
    for n in (32, 64, 128):
        ours, theirs = [], []
        for seed in range(12):
            opts = LimeOptions(n_samples=n)
            masks = lime_masks(d, n, torch.Generator().manual_seed(seed), opts.sampler)
            coef, intercept = lime_surrogate(masks, value(masks), opts)
            ours.append(surrogate_r2(coef, intercept, fresh, value(fresh)))
            theirs.append(surrogate_r2(*captum_lime(value, d, n, seed), fresh, value(fresh)))
        assert np.mean(ours) >= np.mean(theirs) - 0.01, (n, np.mean(ours), np.mean(theirs))


@pytest.mark.parametrize(("d", "n"), [(300, 64), (500, 128)])
def test_lasso_recovers_a_planted_sparse_signal(d, n):
    g = torch.Generator().manual_seed(d)
    support = torch.randperm(d, generator=g)[:5]
    beta = torch.zeros(d, dtype=torch.float64)
    beta[support] = torch.tensor([3.0, -2.0, 2.5, -1.5, 2.0], dtype=torch.float64)
    opts = LimeOptions(n_samples=n, solver="lasso")
    masks = lime_masks(d, n, g, opts.sampler)
    y = (-4.0 + masks.double() @ beta + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)).unsqueeze(1)
    coef, _ = lime_surrogate(masks, y, opts)
    top = set(coef[0].abs().argsort(descending=True)[:5].tolist())
    assert top == set(support.tolist())
    assert torch.equal(torch.sign(coef[0, support]), torch.sign(beta[support]))
    others = torch.ones(d, dtype=torch.bool)
    others[support] = False
    assert float(coef[0, others].abs().max()) < 0.2
    assert torch.allclose(coef[0, support], beta[support], atol=0.6)  # shrunk by the L1 penalty
    se = lime_std_error(masks, y, opts)
    assert se.shape == (d,) and bool(torch.isfinite(se).all())


def test_ridge_lime_std_error_matches_the_spread_over_seeds():
    d, n = 10, 128
    value = make_game(d, 2)
    opts = LimeOptions(n_samples=n)
    estimates, reported = [], []
    for seed in range(40):
        masks = lime_masks(d, n, torch.Generator().manual_seed(seed), opts.sampler)
        estimates.append(lime_surrogate(masks, value(masks), opts)[0][0])
        reported.append(lime_std_error(masks, value(masks), opts))
    ratio = float(torch.stack(reported).mean() / torch.stack(estimates).std(0).mean())
    assert 0.7 < ratio < 1.5, ratio
