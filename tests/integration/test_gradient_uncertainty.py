"""Standard errors of the sampled gradient methods (SmoothGrad, SquareGrad, VarGrad, GradientSHAP):
calibrated against the spread of the scores over many seeds (brute force), deterministic, None
for the deterministic gradient methods, unchanged by per-target-token rows and by the items
sharing a batch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import FRANCE, FRANCE_TARGET

SAMPLED = ["gradient_shap", "smooth_grad", "square_grad", "var_grad"]
SEEDS = 40


def _scores_and_errors(explainer, method, seed, **options):
    r = explainer.explain(FRANCE, FRANCE_TARGET, method=method, granularity="word", seed=seed, **options)
    return [a.score for a in r.attributions], [a.std_error for a in r.attributions]


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("gradient_shap", {"n_samples": 12}),
        ("gradient_shap", {"n_samples": 12, "stdev": 0.5}),
        ("smooth_grad", {"n_samples": 12}),  # one sample per jackknife group
        ("smooth_grad", {"n_samples": 40}),  # 16 groups of 2 or 3 samples
        ("square_grad", {"n_samples": 12}),
        ("var_grad", {"n_samples": 12}),
        ("var_grad", {"n_samples": 40}),
    ],
)
def test_the_standard_error_matches_the_spread_over_seeds(qwen_explainer, method, options):
    runs = [_scores_and_errors(qwen_explainer, method, seed, **options) for seed in range(SEEDS)]
    scores = np.array([s for s, _ in runs])
    errors = np.array([e for _, e in runs], dtype=float)
    spread = scores.std(0, ddof=1)  # the brute-force standard error of each unit's score
    reported = np.sqrt((errors**2).mean(0))
    ratio = reported / spread
    # 40 seeds pin the spread down to about +-11%; measured ratios are 0.8-1.3
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio


@pytest.mark.parametrize("method", SAMPLED)
def test_same_seed_same_standard_errors(qwen_explainer, method):
    _, a = _scores_and_errors(qwen_explainer, method, 5, n_samples=8)
    _, b = _scores_and_errors(qwen_explainer, method, 5, n_samples=8)
    _, c = _scores_and_errors(qwen_explainer, method, 6, n_samples=8)
    assert all(e is not None and math.isfinite(e) and e > 0 for e in a)
    assert a == b
    assert a != c


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients"])
def test_deterministic_gradient_methods_report_none(qwen_explainer, method):
    _, errors = _scores_and_errors(qwen_explainer, method, 0)
    assert errors and all(e is None for e in errors)


def test_one_gradient_shap_sample_has_no_standard_error(qwen_explainer):
    _, errors = _scores_and_errors(qwen_explainer, "gradient_shap", 0, n_samples=1)
    assert all(e is None for e in errors)


@pytest.mark.parametrize("method", SAMPLED)
def test_per_target_token_leaves_scores_and_errors_alone(qwen_explainer, method):
    def run(ptt):
        return qwen_explainer.explain(
            FRANCE,
            FRANCE_TARGET,
            method=method,
            granularity="word",
            seed=2,
            n_samples=6,
            per_target_token=ptt,
        )

    plain, rows = run(False), run(True)
    assert [a.score for a in rows.attributions] == pytest.approx(
        [a.score for a in plain.attributions], rel=1e-6
    )
    assert [a.std_error for a in rows.attributions] == pytest.approx(
        [a.std_error for a in plain.attributions], rel=1e-6
    )
    assert rows.per_target_token is not None


@pytest.mark.parametrize("method", ["smooth_grad", "gradient_shap"])
def test_an_items_errors_do_not_depend_on_its_batch(qwen_explainer, method):
    items = [(FRANCE, FRANCE_TARGET), {"prompt": "Why is the sky blue?", "target": " Rayleigh scattering."}]
    batch = qwen_explainer.explain_batch(items, method=method, granularity="word", seed=1, n_samples=6)
    alone = qwen_explainer.explain(
        prompt="Why is the sky blue?",
        target=" Rayleigh scattering.",
        method=method,
        granularity="word",
        seed=1,
        n_samples=6,
    )
    errors = [a.std_error for a in batch[1].attributions]
    assert errors == pytest.approx([a.std_error for a in alone.attributions], rel=1e-4, abs=1e-9)
