"""Every gradient method x every granularity through the public API, on the tiny fixtures and
(once it is built) the demo model."""

from __future__ import annotations

import math

import pytest

from fairforge_attr import AttributionMethod, Granularity
from fairforge_attr.methods.registry import REGISTRY, Family
from tests.conftest import FRANCE, FRANCE_TARGET

GRADIENT_METHODS = [m for m, s in REGISTRY.items() if s.family is Family.GRADIENT]
NOISY = [m for m in GRADIENT_METHODS if REGISTRY[m].uses_seed]
# Few steps and samples: these tests check plumbing, not convergence.
FAST = {
    AttributionMethod.INTEGRATED_GRADIENTS: {"n_steps": 8},
    AttributionMethod.GRADIENT_SHAP: {"n_samples": 4, "stdev": 0.1},
    AttributionMethod.SMOOTH_GRAD: {"n_samples": 4},
    AttributionMethod.SQUARE_GRAD: {"n_samples": 4},
    AttributionMethod.VAR_GRAD: {"n_samples": 4},
}


def _scores(result):
    return [a.score for a in result.attributions]


def _check(explainer, method, granularity):
    opts = FAST.get(method, {})
    result = explainer.explain(FRANCE, FRANCE_TARGET, method=method, granularity=granularity, seed=3, **opts)
    assert result.method is method and result.granularity is granularity
    assert len(result.attributions) == result.metadata.n_units > 0
    assert all(math.isfinite(s) for s in _scores(result))
    assert math.isfinite(result.metadata.target_log_prob) and result.metadata.target_log_prob < 0
    for a in result.attributions:  # every unit is message text, never template markup
        assert FRANCE[0]["content"][a.char_start : a.char_end] == a.text
    again = explainer.explain(FRANCE, FRANCE_TARGET, method=method, granularity=granularity, seed=3, **opts)
    assert _scores(again) == _scores(result)
    if method in NOISY:
        other = explainer.explain(
            FRANCE, FRANCE_TARGET, method=method, granularity=granularity, seed=4, **opts
        )
        assert _scores(other) != _scores(result)
        assert result.metadata.seed == 3
    else:
        assert result.metadata.seed is None
    return result


@pytest.mark.parametrize("granularity", list(Granularity))
@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_gpt2(gpt2_explainer, method, granularity):
    _check(gpt2_explainer, method, granularity)


@pytest.mark.parametrize("granularity", list(Granularity))
@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_qwen3_chat_template(qwen_explainer, method, granularity):
    result = _check(qwen_explainer, method, granularity)
    assert "<|im_start|>" not in "".join(a.text for a in result.attributions)


@pytest.mark.parametrize("granularity", list(Granularity))
@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_demo_model(demo_explainer, method, granularity):
    _check(demo_explainer, method, granularity)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_explain_batch_matches_explain(qwen_explainer, method):
    items = [
        (FRANCE, FRANCE_TARGET),
        {"prompt": "Why is the sky blue?", "target": " Rayleigh scattering."},
    ]
    opts = FAST.get(method, {})
    batch = qwen_explainer.explain_batch(items, method=method, granularity="word", seed=1, **opts)
    assert len(batch) == 2
    single = qwen_explainer.explain(
        prompt="Why is the sky blue?",
        target=" Rayleigh scattering.",
        method=method,
        granularity="word",
        seed=1,
        **opts,
    )
    assert _scores(batch[1]) == pytest.approx(_scores(single), rel=1e-5, abs=1e-7)


def _notebook_cell(explainer):
    """The notebook's method-comparison cell, verbatim apart from the explainer."""
    lines = []
    for method in AttributionMethod:
        result = explainer.explain(
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            target="The capital of France is Paris.",
            method=method,
        )
        lines.append(f"{method.value}:")
        for attr in result.get_top_k(5):
            lines.append(f"  {attr.text!r}: {attr.score:.4f}")
    return lines


def test_notebook_method_comparison_on_a_fixture(qwen_explainer):
    lines = _notebook_cell(qwen_explainer)
    assert sum(line.endswith(":") for line in lines) == len(REGISTRY)
    assert "nan" not in " ".join(lines)


def test_notebook_method_comparison_on_the_demo_model(demo_explainer):
    lines = _notebook_cell(demo_explainer)
    assert sum(line.endswith(":") for line in lines) == len(REGISTRY)
    assert "nan" not in " ".join(lines)
