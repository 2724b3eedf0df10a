"""Screened refinement (refine.py): a gradient screen picks the units the method scores exactly."""

from __future__ import annotations

import pytest
import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.errors import InvalidRequestError
from fairforge_attr.plan import DEFAULT_SCREEN_TOP_K, SCREENS, Plan
from fairforge_attr.refine import top_units
from tests.integration.test_refine import MSGS, TARGET  # the prompt of three paragraphs


@pytest.fixture(scope="module")
def explainer(qwen_pair):
    return AttributionExplainer(*qwen_pair, token_budget=400)


@pytest.mark.parametrize(
    ("screen", "k"), [("saliency", 4), ("input_x_gradient", 7), ("integrated_gradients", 5)]
)
def test_occlusion_scores_exactly_the_units_the_screen_ranks_highest(explainer, screen, k):
    full = explainer.explain(MSGS, TARGET, method="occlusion", granularity="word")
    proxy = explainer.explain(MSGS, TARGET, method=screen, granularity="word", **SCREENS[screen])
    got = explainer.explain(
        MSGS, TARGET, method="occlusion", granularity="word", screen=screen, refine_top_k=k
    )
    picked = top_units(torch.tensor([a.score for a in proxy.attributions]), k)
    assert got.metadata.refinement.refined == picked and got.metadata.refinement.screen == screen
    want = {a.position: a.score for a in full.attributions}
    for a in got.attributions:
        assert a.refined == (a.position in picked)
        assert a.score == (pytest.approx(want[a.position], abs=1e-4) if a.refined else 0.0)
        assert a.coarse_position is None
    assert got.coarse_attributions is None
    assert got.metadata.target_log_prob == pytest.approx(full.metadata.target_log_prob, abs=1e-4)
    # cost: the screen's one forward+backward pass, then occlusion of k units (+ f(x))
    stage_screen, fine = got.metadata.refinement.stages
    assert [stage_screen.stage, fine.stage] == ["screen", "fine"]
    assert stage_screen.n_units == len(full.attributions) and fine.n_units == k
    assert (
        stage_screen.n_sequences
        == proxy.metadata.n_sequences
        == (10 if screen == "integrated_gradients" else 1)
    )
    assert stage_screen.n_backward == proxy.metadata.n_backward >= 1 and fine.n_backward == 0
    assert got.metadata.warnings == full.metadata.warnings  # not the screen's convergence gap
    assert fine.n_sequences == k + 1
    m = got.metadata
    assert m.n_sequences == stage_screen.n_sequences + fine.n_sequences
    assert m.n_forward == stage_screen.n_forward + fine.n_forward and m.n_backward == stage_screen.n_backward
    assert m.params["screen"] == screen and m.params["refine_top_k"] == k


def test_the_screen_finds_a_planted_strong_word(demo_pair):
    """The answer repeats words of the question ("friend"): on the demo model removing one of
    them costs the most, and a screen of 4 of the prompt's 35 words keeps it."""
    explainer = AttributionExplainer(*demo_pair)
    msgs = [
        {"role": "system", "content": "Be brief. Answer now."},
        {
            "role": "user",
            "content": "My friend Zorbulon lives in Paris. Machine learning is a subset of AI. "
            "Why is the sky blue? What is the name of my friend?",
        },
    ]
    target = "Your friend is Zorbulon."
    full = explainer.explain(msgs, target, method="occlusion", granularity="word")
    got = explainer.explain(
        msgs, target, method="occlusion", granularity="word", screen="saliency", refine_top_k=4
    )
    strongest = full.get_top_k(1)[0]
    assert got.get_top_k(1)[0].position == strongest.position
    assert got.get_top_k(1)[0].score == pytest.approx(strongest.score, abs=1e-4)
    assert sum(a.refined for a in got.attributions) == 4 < len(got.attributions)


def test_unscored_units_never_outrank_scored_ones(explainer):
    got = explainer.explain(
        MSGS, TARGET, method="occlusion", granularity="word", screen="saliency", refine_top_k=3
    )
    flags = [a.refined for a in got.get_top_k(len(got.attributions))]
    assert flags == sorted(flags, reverse=True) and flags.count(True) == 3
    assert got.metadata.refinement.unrefined_score == 0.0


def test_a_screened_sampling_method_is_seeded(explainer):
    kwargs = dict(method="lime", granularity="word", screen="saliency", refine_top_k=5, n_samples=16)
    a = explainer.explain(MSGS, TARGET, seed=3, **kwargs)
    b = explainer.explain(MSGS, TARGET, seed=3, **kwargs)
    c = explainer.explain(MSGS, TARGET, seed=4, **kwargs)
    assert [x.score for x in a.attributions] == [x.score for x in b.attributions]
    assert [x.score for x in a.attributions] != [x.score for x in c.attributions]
    assert a.metadata.refinement.refined == c.metadata.refinement.refined  # the screen draws nothing
    assert all(x.std_error is not None for x in a.attributions if x.refined)
    assert all(x.std_error is None and x.score == 0.0 for x in a.attributions if not x.refined)


def test_batches_screen_every_item_as_alone(explainer):
    items = [
        (MSGS, TARGET),
        ([{"role": "user", "content": "Why is the sky blue? Tell me now."}], "Rayleigh."),
    ]
    kwargs = dict(method="occlusion", granularity="word", screen="saliency", refine_top_k=3)
    batch = explainer.explain_batch(items, **kwargs)
    for (messages, target), got in zip(items, batch):
        alone = explainer.explain(messages, target, **kwargs)
        assert got.metadata.refinement.refined == alone.metadata.refinement.refined
        assert [a.score for a in got.attributions] == pytest.approx(
            [a.score for a in alone.attributions], abs=1e-4
        )


def test_everything_scored_when_k_covers_every_unit(explainer):
    full = explainer.explain(MSGS, TARGET, method="occlusion", granularity="sentence")
    got = explainer.explain(MSGS, TARGET, method="occlusion", granularity="sentence", screen="saliency")
    assert got.metadata.refinement.refine_top_k == DEFAULT_SCREEN_TOP_K > len(got.attributions)
    assert all(a.refined for a in got.attributions)
    assert [a.score for a in got.attributions] == pytest.approx(
        [a.score for a in full.attributions], abs=1e-4
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            dict(method="occlusion", screen="lime"),
            "unknown screen 'lime'; choose one of: saliency, input_x_gradient",
        ),
        (dict(method="occlusion", screen="nope"), "unknown screen"),
        (dict(method="occlusion", screen="saliency", coarse_granularity="sentence"), "give one of them"),
        (dict(method="saliency", screen="saliency"), "perturbation methods"),
        (dict(method="occlusion", screen="saliency", refine_top_k=0), ">= 1"),
        (dict(method="occlusion", refine_top_k=3), "or screen"),
    ],
)
def test_bad_screen_settings_are_explained(explainer, kwargs, match):
    with pytest.raises(InvalidRequestError, match=match):
        explainer.explain(MSGS, TARGET, **kwargs)


def test_the_plan_records_and_compares_the_screen(explainer):
    plan = explainer.plan("occlusion", "word", screen="input_x_gradient", refine_top_k=30)
    assert plan.params["screen"] == "input_x_gradient" and plan.params["refine_top_k"] == 30
    again = Plan.recorded(method="occlusion", granularity="word", params=plan.params, seed=0)
    assert again.screen == plan.screen and again.refine_top_k == 30 and again.coarse_granularity is None
    assert plan.changes_from(again) == []
    other = explainer.plan("occlusion", "word", screen="saliency", refine_top_k=30)
    assert any("refinement" in c for c in other.changes_from(plan))
    coarse = explainer.plan("occlusion", "word", coarse_granularity="sentence", refine_top_k=30)
    assert any("refinement" in c for c in coarse.changes_from(plan))


def test_a_contrastive_item_is_screened_and_scored_on_the_difference(explainer):
    contrast = "The capital of Germany is Berlin."
    full = explainer.explain(MSGS, TARGET, method="occlusion", granularity="word", contrast=contrast)
    got = explainer.explain(
        MSGS,
        TARGET,
        method="occlusion",
        granularity="word",
        contrast=contrast,
        screen="saliency",
        refine_top_k=4,
    )
    proxy = explainer.explain(MSGS, TARGET, method="saliency", granularity="word", contrast=contrast)
    assert got.contrastive and got.metadata.refinement.refined == top_units(
        torch.tensor([a.score for a in proxy.attributions]), 4
    )
    want = {a.position: a.score for a in full.attributions}
    for a in got.attributions:
        assert a.score == (pytest.approx(want[a.position], abs=1e-4) if a.refined else 0.0)
