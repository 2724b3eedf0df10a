"""The jackknife behind the sampled gradient methods' standard errors, on synthetic gradients:
exact for the linear GradientSHAP, calibrated for the norms, and bounded in memory."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fairforge_attr.methods.gradient import GRADIENT_SHAP, SMOOTH_GRAD, SQUARE_GRAD, VAR_GRAD
from fairforge_attr.methods.gradient_spread import VECTOR_GROUPS, GroupSums, n_groups

TOKENS, HIDDEN = 5, 6
ITEM = SimpleNamespace(unit_of_token=torch.tensor([-1, 0, 0, 1, 2, 2, -1]), n_units=3)  # 5 content tokens


def _sums(method, mg, chunk=3):
    """GroupSums of samples mg [n, tokens, H] with weights 1/n, fed a few samples at a time."""
    n = mg.shape[0]
    sums = GroupSums(method, n_groups(method, n))
    for start in range(0, n, chunk):
        ks = torch.arange(start, min(start + chunk, n))
        sums.add(ks, torch.full((len(ks),), 1 / n), mg[ks])
    return sums


def test_linear_scores_get_the_sample_sd_over_root_n():
    gen = torch.Generator().manual_seed(0)
    mg = torch.randn(20, TOKENS, HIDDEN, generator=gen)
    per_sample = mg.double().sum(-1)  # [n, tokens]
    units = torch.stack([per_sample[:, :2].sum(1), per_sample[:, 2], per_sample[:, 3:].sum(1)], 1)
    expected = units.std(0, correction=1) / np.sqrt(20)
    got = _sums(GRADIENT_SHAP, mg).std_error(ITEM)
    assert got.tolist() == pytest.approx(expected.tolist(), rel=1e-9)


def test_vector_methods_keep_a_bounded_number_of_maps():
    mg = torch.randn(100, TOKENS, HIDDEN)
    for method in (SMOOTH_GRAD, VAR_GRAD):
        sums = _sums(method, mg, chunk=7)
        assert sums.vectors.shape == (VECTOR_GROUPS, TOKENS, HIDDEN)
        assert int(sums.counts.sum()) == 100
    for method in (GRADIENT_SHAP, SQUARE_GRAD):
        assert _sums(method, mg).vectors is None  # one number per token per group


@pytest.mark.parametrize("method", [SMOOTH_GRAD, SQUARE_GRAD, VAR_GRAD, GRADIENT_SHAP])
@pytest.mark.parametrize("n", [12, 40])
def test_nonlinear_scores_are_calibrated_on_gaussian_gradients(method, n):
    gen = torch.Generator().manual_seed(1)
    mean = torch.randn(TOKENS, HIDDEN, generator=gen)
    scores, errors = [], []
    for _ in range(300):
        mg = mean + 1.5 * torch.randn(n, TOKENS, HIDDEN, generator=gen)
        sums = _sums(method, mg, chunk=5)
        scores.append(_score(method, mg))
        errors.append(sums.std_error(ITEM))
    spread = torch.stack(scores).std(0)
    reported = torch.stack(errors).square().mean(0).sqrt()
    ratio = reported / spread
    assert bool(((ratio > 0.8) & (ratio < 1.25)).all()), ratio


def _score(method, mg):
    """The method's unit scores straight from the samples (as gradient.py defines them)."""
    g = mg.double()
    if method is GRADIENT_SHAP:
        token = g.mean(0).sum(-1)
    elif method is SMOOTH_GRAD:
        token = g.mean(0).norm(dim=-1)
    elif method is SQUARE_GRAD:
        token = g.square().mean(0).sum(-1).sqrt()
    else:
        token = (g.square().mean(0) - g.mean(0).square()).sum(-1).sqrt()
    return torch.stack([token[:2].sum(), token[2], token[3:].sum()])


def test_one_sample_has_no_standard_error():
    sums = _sums(GRADIENT_SHAP, torch.randn(1, TOKENS, HIDDEN))
    assert torch.isnan(sums.std_error(ITEM)).all()
