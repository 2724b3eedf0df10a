"""Coarse-to-fine refinement (refine.py): coarse units first, then fine units inside the top ones."""

from __future__ import annotations

import pytest
import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.engine import ScoreRequest
from fairforge_attr.errors import InvalidRequestError
from fairforge_attr.plan import Plan
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message

MSGS = [
    {"role": "system", "content": "Be brief. Answer now."},
    {
        "role": "user",
        "content": "Explain Albert Einstein's theory of relativity. Machine learning is a subset of AI.\n\n"
        "Why is the sky blue? The sky appears blue due to Rayleigh scattering of sunlight.\n\n"
        "What is the capital of France?",
    },
]
TARGET = "The capital of France is Paris."


@pytest.fixture(scope="module")
def explainer(qwen_pair):
    return AttributionExplainer(*qwen_pair, token_budget=400)


def _by_position(result):
    return {a.position: a.score for a in result.attributions}


@pytest.mark.parametrize(
    ("fine", "coarse", "k"),
    [("word", "sentence", 2), ("token", "word", 4), ("sentence", "paragraph", 1), ("word", "message", 1)],
)
def test_occlusion_refines_exactly_the_units_inside_the_top_coarse_units(explainer, fine, coarse, k):
    full = explainer.explain(MSGS, TARGET, method="occlusion", granularity=fine)
    coarse_only = explainer.explain(MSGS, TARGET, method="occlusion", granularity=coarse)
    got = explainer.explain(
        MSGS, TARGET, method="occlusion", granularity=fine, coarse_granularity=coarse, refine_top_k=k
    )
    # the coarse stage is exactly the coarse explanation
    assert [a.text for a in got.coarse_attributions] == [a.text for a in coarse_only.attributions]
    for a, b in zip(got.coarse_attributions, coarse_only.attributions):
        assert a.score == pytest.approx(b.score, abs=1e-4)
    strongest = sorted(coarse_only.attributions, key=lambda a: (-abs(a.score), a.position))[:k]
    assert got.metadata.refinement.refined == sorted(a.position for a in strongest)
    assert [a.refined for a in got.coarse_attributions] == [
        a.position in got.metadata.refinement.refined for a in got.coarse_attributions
    ]
    # the result is at the fine granularity; refined units equal exhaustive fine occlusion
    assert [a.text for a in got.attributions] == [a.text for a in full.attributions]
    want = _by_position(full)
    refined = [a for a in got.attributions if a.refined]
    assert refined and len(refined) < len(got.attributions)
    for a in got.attributions:
        assert a.coarse_position is not None
        owner = got.coarse_attributions[a.coarse_position]
        assert owner.message_index == a.message_index
        if a.text.strip():  # a token may carry the space before its word; a bare space
            # token goes with the coarse unit before it
            assert owner.char_start < a.char_end and a.char_start < owner.char_end
        assert a.refined == owner.refined
        assert a.score == (pytest.approx(want[a.position], abs=1e-4) if a.refined else 0.0)
    stages = got.metadata.refinement.stages
    assert [s.stage for s in stages] == ["coarse", "fine"]
    assert stages[0].n_units == len(coarse_only.attributions) and stages[1].n_units == len(refined)
    assert stages[0].n_sequences == coarse_only.metadata.n_sequences
    assert stages[1].n_sequences == len(refined) + 1  # occlusion: one per unit, plus f(x)
    assert got.metadata.n_sequences == stages[0].n_sequences + stages[1].n_sequences
    assert got.metadata.n_forward == stages[0].n_forward + stages[1].n_forward
    assert got.metadata.params["coarse_granularity"] == coarse
    assert got.metadata.params["refine_top_k"] == k


def test_unrefined_units_never_outrank_refined_ones(explainer):
    got = explainer.explain(
        MSGS, TARGET, method="occlusion", granularity="word", coarse_granularity="sentence", refine_top_k=2
    )
    ranked = got.get_top_k(len(got.attributions))
    flags = [a.refined for a in ranked]
    assert flags == sorted(flags, reverse=True)  # every refined unit before every unrefined one
    assert got.metadata.refinement.unrefined_score == 0.0
    # at equal |score| a refined unit still ranks first
    zero = next(a for a in got.attributions if a.refined).model_copy(update={"score": 0.0, "position": 999})
    tied = got.model_copy(update={"attributions": [*got.attributions, zero]})
    ranked = tied.get_top_k(len(tied.attributions))
    assert ranked.index(zero) < min(i for i, a in enumerate(ranked) if a.refined is False)


def test_everything_refined_when_k_covers_every_coarse_unit(explainer):
    full = explainer.explain(MSGS, TARGET, method="occlusion", granularity="word")
    got = explainer.explain(
        MSGS, TARGET, method="occlusion", granularity="word", coarse_granularity="message", refine_top_k=9
    )
    assert all(a.refined for a in got.attributions)
    assert [a.score for a in got.attributions] == pytest.approx(
        [a.score for a in full.attributions], abs=1e-4
    )


@pytest.mark.parametrize("method", ["lime", "kernel_shap", "sobol"])
def test_every_sampling_method_refines_seeded_and_records_both_stages(explainer, method):
    kwargs = dict(
        method=method, granularity="word", coarse_granularity="sentence", refine_top_k=2, n_samples=16
    )
    a = explainer.explain(MSGS, TARGET, seed=3, **kwargs)
    b = explainer.explain(MSGS, TARGET, seed=3, **kwargs)
    c = explainer.explain(MSGS, TARGET, seed=4, **kwargs)
    assert [x.score for x in a.attributions] == [x.score for x in b.attributions]
    assert [x.score for x in a.attributions] != [x.score for x in c.attributions]
    assert all(x.score == 0.0 for x in a.attributions if not x.refined)
    assert any(x.score != 0.0 for x in a.attributions if x.refined)
    coarse, fine = a.metadata.refinement.stages
    assert fine.n_units == sum(x.refined for x in a.attributions) and fine.n_sequences > 0
    assert a.metadata.n_sequences == coarse.n_sequences + fine.n_sequences
    # standard errors: the fine stage's for refined units, none for units it did not sample,
    # the coarse stage's for the coarse units
    assert all(x.std_error is not None and x.std_error >= 0 for x in a.attributions if x.refined)
    assert all(x.std_error is None for x in a.attributions if not x.refined)
    assert all(x.std_error is not None for x in a.coarse_attributions)


def test_refined_kernel_shap_is_efficient_over_the_refined_units(explainer, qwen_pair):
    """KernelSHAP's fine stage holds the rest fixed: its scores add up to f(x) minus f(x with
    every refined unit removed), computed here by the engine directly."""
    got = explainer.explain(
        MSGS,
        TARGET,
        method="kernel_shap",
        granularity="word",
        coarse_granularity="sentence",
        refine_top_k=1,
        n_samples=64,
    )
    _, tok = qwen_pair
    enc = encode(tok, target=TARGET, granularity="word", messages=[Message(**m) for m in MSGS])
    keep = torch.ones(2, enc.n_units, dtype=torch.bool)
    keep[1, [a.position for a in got.attributions if a.refined]] = False
    plan = explainer.plan("kernel_shap")
    values = explainer.engine.score([ScoreRequest(enc, keep, plan.baseline)])[0].values
    total = sum(a.score for a in got.attributions)
    assert total == pytest.approx(float(values[0] - values[1]), abs=1e-3)


def test_per_target_token_rows_cover_the_fine_units(explainer):
    full = explainer.explain(MSGS, TARGET, method="occlusion", granularity="word", per_target_token=True)
    got = explainer.explain(
        MSGS,
        TARGET,
        method="occlusion",
        granularity="word",
        coarse_granularity="sentence",
        refine_top_k=2,
        per_target_token=True,
    )
    rows = torch.tensor(got.per_target_token.scores)
    want = torch.tensor(full.per_target_token.scores)
    refined = torch.tensor([a.refined for a in got.attributions])
    assert rows.shape == want.shape
    assert torch.allclose(rows[:, refined], want[:, refined], atol=1e-4)
    assert (rows[:, ~refined] == 0).all()


def test_batches_refine_every_item_as_alone(explainer):
    items = [(MSGS, TARGET), ([{"role": "user", "content": "Why is the sky blue? Tell me."}], "Rayleigh.")]
    kwargs = dict(method="occlusion", granularity="word", coarse_granularity="sentence", refine_top_k=1)
    batch = explainer.explain_batch(items, **kwargs)
    for (messages, target), got in zip(items, batch):
        alone = explainer.explain(messages, target, **kwargs)
        assert [a.refined for a in got.attributions] == [a.refined for a in alone.attributions]
        assert [a.score for a in got.attributions] == pytest.approx(
            [a.score for a in alone.attributions], abs=1e-4
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(method="integrated_gradients", coarse_granularity="sentence"), "perturbation methods"),
        (dict(method="occlusion", granularity="sentence", coarse_granularity="word"), "paragraph, message"),
        (dict(method="occlusion", granularity="message", coarse_granularity="message"), "nothing is coarser"),
        (dict(method="occlusion", refine_top_k=3), "needs coarse_granularity"),
        (dict(method="occlusion", coarse_granularity="sentence", refine_top_k=0), ">= 1"),
        (dict(method="occlusion", coarse_granularity="chapter"), "sentence, paragraph, message"),
    ],
)
def test_bad_refinement_settings_are_explained(explainer, kwargs, match):
    with pytest.raises(InvalidRequestError, match=match):
        explainer.explain(MSGS, TARGET, **kwargs)


def test_the_plan_records_and_compares_refinement(explainer):
    plan = explainer.plan("lime", "word", coarse_granularity="sentence", refine_top_k=3, n_samples=20)
    assert plan.params["coarse_granularity"] == "sentence" and plan.params["refine_top_k"] == 3
    again = Plan.recorded(method="lime", granularity="word", params=plan.params, seed=0)
    assert again.coarse_granularity == plan.coarse_granularity and again.refine_top_k == 3
    assert plan.changes_from(again) == []
    plain = explainer.plan("lime", "word", n_samples=20)
    assert any("refinement" in c for c in plain.changes_from(again))
    assert any("refinement" in c for c in plan.changes_from(plain))
    assert explainer.plan("lime", "word", coarse_granularity="sentence").refine_top_k == 5  # the default


def test_a_contrastive_item_refines_the_difference(explainer):
    """Both stages explain f = log p(target) - log p(contrast): the coarse stage is the coarse
    contrastive explanation and refined units equal exhaustive contrastive occlusion."""
    contrast = "The capital of Germany is Berlin."
    full = explainer.explain(MSGS, TARGET, method="occlusion", granularity="word", contrast=contrast)
    coarse_only = explainer.explain(
        MSGS, TARGET, method="occlusion", granularity="sentence", contrast=contrast
    )
    got = explainer.explain(
        MSGS,
        TARGET,
        method="occlusion",
        granularity="word",
        coarse_granularity="sentence",
        refine_top_k=2,
        contrast=contrast,
    )
    assert got.contrastive and got.metadata.contrast_log_prob == pytest.approx(
        full.metadata.contrast_log_prob, abs=1e-4
    )
    for a, b in zip(got.coarse_attributions, coarse_only.attributions):
        assert a.score == pytest.approx(b.score, abs=1e-4)
    want = _by_position(full)
    refined = [a for a in got.attributions if a.refined]
    assert refined
    for a in refined:
        assert a.score == pytest.approx(want[a.position], abs=1e-4)
