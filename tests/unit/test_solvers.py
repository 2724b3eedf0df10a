"""The perturbation solvers against independent computations on synthetic value functions."""

import math
from itertools import combinations

import numpy as np
import pytest
import torch

from fairforge_attr.methods.kernel_shap import KernelShapOptions, kernel_shap_masks, kernel_shap_scores
from fairforge_attr.methods.lime import LimeOptions, lime_masks, lime_scores, lime_weights
from fairforge_attr.methods.perturbation import occlusion_masks, occlusion_scores
from fairforge_attr.methods.sobol import SobolOptions, sobol_masks, sobol_scores


def game(masks: torch.Tensor) -> torch.Tensor:
    """A non-additive value function of 5 players, with interactions."""
    z = masks.double()
    a = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0], dtype=torch.float64)
    return (z @ a + 2.0 * z[:, 0] * z[:, 3] - 1.5 * z[:, 1] * z[:, 2] * z[:, 4]).unsqueeze(1)


def exact_shapley(value, d):
    phi = np.zeros(d)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for s in range(d):
            for subset in combinations(others, s):
                w = math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
                without = torch.zeros(1, d, dtype=torch.bool)
                without[0, list(subset)] = True
                with_i = without.clone()
                with_i[0, i] = True
                phi[i] += w * float(value(with_i) - value(without))
    return phi


def test_kernel_shap_enumeration_is_exact_shapley():
    opts = KernelShapOptions(n_samples=64)
    masks = kernel_shap_masks(5, opts.n_samples, torch.Generator().manual_seed(0))
    assert masks.shape[0] == 2**5  # every coalition exactly once
    phi = kernel_shap_scores(masks, game(masks), opts)[0].numpy()
    np.testing.assert_allclose(phi, exact_shapley(game, 5), atol=1e-9)


def test_kernel_shap_sampled_is_close_and_efficient():
    d = 12
    a = torch.linspace(-1, 2, d, dtype=torch.float64)

    def value(m):
        z = m.double()
        return (z @ a + z[:, 0] * z[:, 1]).unsqueeze(1)

    opts = KernelShapOptions(n_samples=2000)
    masks = kernel_shap_masks(d, opts.n_samples, torch.Generator().manual_seed(1))
    phi = kernel_shap_scores(masks, value(masks), opts)[0]
    expected = a.clone()
    expected[:2] += 0.5  # the interaction is shared equally
    assert float(phi.sum()) == pytest.approx(
        float(value(torch.ones(1, d, dtype=torch.bool)) - value(torch.zeros(1, d, dtype=torch.bool)))
    )
    assert torch.allclose(phi, expected, atol=0.05)


def test_lime_matches_scikit_learn_ridge():
    from sklearn import linear_model as sklearn  # in the test extra: never skipped

    opts = LimeOptions(n_samples=300, sampler="lime")
    masks = lime_masks(5, opts.n_samples, torch.Generator().manual_seed(0), "lime")
    assert masks[0].all()
    y = game(masks)
    ours = lime_scores(masks, y, opts)[0].numpy()
    ref = sklearn.Ridge(alpha=opts.alpha).fit(
        masks.double().numpy(), y[:, 0].numpy(), sample_weight=lime_weights(masks, opts.kernel_width).numpy()
    )
    np.testing.assert_allclose(ours, ref.coef_, atol=1e-8)


def test_solvers_are_linear_so_per_token_rows_sum_to_totals():
    masks = lime_masks(5, 100, torch.Generator().manual_seed(0), "lime")
    per_token = torch.cat([game(masks), 2 * game(masks) + 1], 1)
    opts = LimeOptions(n_samples=100, sampler="lime")
    rows = lime_scores(masks, per_token, opts)
    total = lime_scores(masks, per_token.sum(1, keepdim=True), opts)[0]
    assert torch.allclose(rows.sum(0), total)


def test_occlusion_is_difference_to_each_removal():
    masks = occlusion_masks(5)
    v = game(masks)
    scores = occlusion_scores(v)[0]
    for i in range(5):
        assert float(scores[i]) == pytest.approx(float(v[0] - v[i + 1]))


def test_sobol_total_indices_of_an_additive_function():
    # f = sum a_i z_i, z_i ~ Bernoulli(1/2) independent: ST_i = a_i^2 / sum a_j^2
    a = torch.tensor([3.0, 1.0, 0.0, 2.0], dtype=torch.float64)
    opts = SobolOptions(n_samples=1024)
    masks = sobol_masks(4, opts.n_samples, seed=0)
    st = sobol_scores(masks, (masks.double() @ a).unsqueeze(1), opts)[0]
    assert torch.allclose(st, a**2 / (a**2).sum(), atol=0.03)
    assert st[2] == 0


def test_samplers_are_seeded():
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    assert torch.equal(lime_masks(9, 50, g(3)), lime_masks(9, 50, g(3)))
    assert not torch.equal(lime_masks(9, 50, g(3)), lime_masks(9, 50, g(4)))
    assert torch.equal(kernel_shap_masks(20, 50, g(3)), kernel_shap_masks(20, 50, g(3)))
    assert not torch.equal(kernel_shap_masks(20, 50, g(3)), kernel_shap_masks(20, 50, g(4)))
    assert torch.equal(sobol_masks(7, 16, 3), sobol_masks(7, 16, 3))
    assert not torch.equal(sobol_masks(7, 16, 3), sobol_masks(7, 16, 4))
