"""The Plan: built once per call, plain data (it pickles), compared for --resume."""

from __future__ import annotations

import pickle

import pytest

from fairforge_attr.errors import InvalidRequestError, UnknownChoiceError
from fairforge_attr.methods.registry import REGISTRY
from fairforge_attr.plan import Plan, build_plan
from fairforge_attr.types import AttributionMethod, Granularity
from tests.tiny_models import byte_bpe_tokenizer


@pytest.fixture(scope="module")
def tok():
    return byte_bpe_tokenizer()


def _plan(tok, method, **kwargs):
    return build_plan(tok, len(tok), method=method, granularity=kwargs.pop("granularity", "word"), **kwargs)


@pytest.mark.parametrize("method", list(REGISTRY))
def test_every_plan_pickles_to_an_equal_plan(tok, method):
    plan = _plan(tok, method, seed=3, per_target_token=True, max_new_tokens=5)
    again = pickle.loads(pickle.dumps(plan))
    assert again == plan and hash(again) == hash(plan)
    assert again.spec is REGISTRY[method]
    assert again.params == plan.params


def test_a_plan_is_frozen_and_its_options_too(tok):
    plan = _plan(tok, "lime", options={"n_samples": 10})
    with pytest.raises(AttributeError):
        plan.seed = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        plan.options.n_samples = 3  # type: ignore[misc]


def test_build_plan_validates_and_resolves_once(tok):
    plan = _plan(tok, "Occlusion", granularity="SENTENCE", options={"baseline": "hide"})
    assert plan.method is AttributionMethod.OCCLUSION and plan.granularity is Granularity.SENTENCE
    assert plan.baseline is not None and plan.baseline.hides
    assert plan.params == {"baseline": "hide", "removal": "hidden through the attention mask"}
    assert plan.recorded_seed is None  # occlusion draws nothing
    ig = _plan(tok, "integrated_gradients", options={"baseline": "zero"})
    assert ig.params["baseline_embedding"] == "zero embedding" and ig.baseline.token_id is None
    assert _plan(tok, "saliency").baseline is None and _plan(tok, "saliency").params == {}
    with pytest.raises(UnknownChoiceError, match="occlusion"):
        _plan(tok, "magic")
    with pytest.raises(
        UnknownChoiceError,
        match="valid options: alpha, baseline, kernel_width, lasso_alpha, n_samples, sampler, solver",
    ):
        _plan(tok, "lime", options={"n_step": 3})
    with pytest.raises(InvalidRequestError, match="riemann_left needs n_steps >= 2"):
        _plan(tok, "integrated_gradients", options={"n_steps": 1, "integration": "riemann_left"})


def test_a_recorded_plan_compares_with_a_new_one(tok):
    plan = _plan(tok, "lime", seed=1, options={"n_samples": 50})
    same = Plan.recorded(method="lime", granularity="word", params=plan.params, seed=1)
    assert plan.changes_from(same) == []
    other = Plan.recorded(
        method="lime", granularity="sentence", params={**plan.params, "n_samples": 60}, seed=2
    )
    assert plan.changes_from(other) == ["granularity sentence -> word", "n_samples 60 -> 50", "seed 2 -> 1"]
    # defaults count: a record without an option means its default
    default = Plan.recorded(method="lime", granularity="word", params={}, seed=1)
    assert plan.changes_from(default) == ["n_samples 200 -> 50"]
    assert _plan(tok, "occlusion", seed=1).changes_from(same) == ["method lime -> occlusion"]
    with pytest.raises(UnknownChoiceError):
        Plan.recorded(method="magic", granularity="word", params={}, seed=None)


def test_the_explainer_builds_the_same_plan(qwen_explainer):
    plan = qwen_explainer.plan("kernel_shap", seed=4, n_samples=8)
    assert plan.granularity is qwen_explainer.default_granularity
    assert plan == build_plan(
        qwen_explainer.tokenizer,
        qwen_explainer.engine.vocab_size,
        method="kernel_shap",
        granularity=qwen_explainer.default_granularity,
        seed=4,
        options={"n_samples": 8},
    )
