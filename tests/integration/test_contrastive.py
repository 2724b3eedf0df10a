"""Contrastive targets: every method explains f = log p(target | x) - log p(contrast | x).

Checked against independent computations: separate runs of the target and of the contrast
(the methods that are linear in f), a brute-force teacher-forced forward of one variant, and
autograd of the difference for the gradient methods (completeness for integrated gradients).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fairforge_attr import AttributionExplainer, AttributionMethod
from fairforge_attr.engine import Engine, ScoreRequest, resolve_baseline
from fairforge_attr.errors import InvalidRequestError
from fairforge_attr.io.schema import result_row, row_to_result
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from fairforge_attr.types import Granularity
from tests.conftest import FRANCE

PARIS = "The capital of France is Paris."
BERLIN = "The capital of Germany is Berlin."
SHORT = "Paris, in France."
SAME_LENGTH = "The sky of France is Paris."  # as many tokens as PARIS for the tiny models' tokenizer
MESSAGES = [Message(**m) for m in FRANCE]


def _scores(result) -> list[float]:
    return [a.score for a in result.attributions]


def _log_p(model, ids: torch.Tensor, prompt_length: int) -> float:
    """Teacher-forced log p(answer | prompt), summed: one plain forward, no engine."""
    with torch.no_grad():
        logits = model(ids.unsqueeze(0)).logits[0].double()
    lp = torch.log_softmax(logits[prompt_length - 1 : -1], -1)
    return float(lp.gather(1, ids[prompt_length:].unsqueeze(1)).sum())


@pytest.mark.parametrize("baseline", [None, "hide"])
def test_occlusion_of_the_difference_is_the_difference_of_occlusions(qwen_explainer, baseline):
    options = {} if baseline is None else {"baseline": baseline}
    both = qwen_explainer.explain(FRANCE, PARIS, contrast=BERLIN, method="occlusion", **options)
    target = qwen_explainer.explain(FRANCE, PARIS, method="occlusion", **options)
    contrast = qwen_explainer.explain(FRANCE, BERLIN, method="occlusion", **options)
    assert [a.text for a in both.attributions] == [a.text for a in target.attributions]
    assert _scores(both) == pytest.approx(
        [t - c for t, c in zip(_scores(target), _scores(contrast))], abs=1e-5
    )
    m = both.metadata
    assert m.target_log_prob == pytest.approx(target.metadata.target_log_prob, abs=1e-5)
    assert m.contrast_log_prob == pytest.approx(contrast.metadata.target_log_prob, abs=1e-5)
    assert both.objective_value == pytest.approx(m.target_log_prob - m.contrast_log_prob)
    assert both.contrastive and both.contrast == BERLIN and not target.contrastive
    assert m.params == target.metadata.params  # same removal, recorded the same way


def test_brute_force_f_of_one_variant(qwen_pair, qwen_explainer):
    """score_k = f(x) - f(x without unit k), with f recomputed by plain forwards."""
    model, tokenizer = qwen_pair
    result = qwen_explainer.explain(FRANCE, PARIS, contrast=SHORT, method="occlusion")
    enc = encode(tokenizer, target=PARIS, granularity=Granularity.WORD, messages=MESSAGES, contrast=SHORT)
    k = next(i for i, u in enumerate(enc.units) if u.text == "France")
    pad = resolve_baseline(tokenizer, None, qwen_explainer.engine.vocab_size).token_id

    def f(removed: int | None) -> float:
        value = 0.0
        for sign, answer in ((1, enc), (-1, enc.contrast)):
            ids = answer.input_ids.clone()
            if removed is not None:
                ids[list(answer.units[removed].token_indices)] = pad
            value += sign * _log_p(model, ids, answer.prompt_length)
        return value

    assert result.objective_value == pytest.approx(f(None), abs=1e-4)
    assert result.attributions[k].score == pytest.approx(f(None) - f(k), abs=1e-4)


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_linear_surrogates_of_the_difference(qwen_explainer, method):
    """LIME and KernelSHAP solve a linear system in f: same seed, same masks, so the
    contrastive scores are the target's minus the contrast's."""
    kw = {"method": method, "seed": 3, "n_samples": 40}
    both = qwen_explainer.explain(FRANCE, PARIS, contrast=BERLIN, **kw)
    target = qwen_explainer.explain(FRANCE, PARIS, **kw)
    contrast = qwen_explainer.explain(FRANCE, BERLIN, **kw)
    assert _scores(both) == pytest.approx(
        [t - c for t, c in zip(_scores(target), _scores(contrast))], abs=1e-4
    )


def test_sobol_indices_follow_the_variance_of_the_difference(qwen_explainer):
    both = qwen_explainer.explain(FRANCE, PARIS, contrast=BERLIN, method="sobol", n_samples=16)
    alone = qwen_explainer.explain(FRANCE, PARIS, method="sobol", n_samples=16)
    assert all(s >= 0 for s in _scores(both))
    assert _scores(both) != pytest.approx(_scores(alone), abs=1e-6)  # another f, other indices


def _content_grad(model, enc, at: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """(gradient of f w.r.t. the content embeddings [n_content, H], f) by plain autograd, with
    the content embeddings set to ``at`` (default: x)."""
    embed = model.get_input_embeddings()
    content = torch.nonzero(enc.unit_of_token >= 0).squeeze(1)
    x = embed(enc.input_ids)[content].detach().float() if at is None else at
    x = x.clone().requires_grad_(True)
    total = 0.0
    for sign, answer in ((1, enc), (-1, enc.contrast)):
        embeds = embed(answer.input_ids).detach().clone()
        embeds[content] = x
        logits = model(inputs_embeds=embeds.unsqueeze(0)).logits[0]
        lp = torch.log_softmax(logits[answer.prompt_length - 1 : -1].float(), -1)
        total = total + sign * lp.gather(1, answer.target_ids.unsqueeze(1)).sum()
    (grad,) = torch.autograd.grad(total, x)
    return grad, float(total.detach())


def _units(enc, token_scores: torch.Tensor) -> list[float]:
    owner = enc.unit_of_token[enc.unit_of_token >= 0]
    return torch.zeros(enc.n_units, dtype=torch.float64).index_add_(0, owner, token_scores.double()).tolist()


def test_saliency_and_input_x_gradient_are_of_the_difference(qwen_pair, qwen_explainer):
    model, tokenizer = qwen_pair
    enc = encode(tokenizer, target=PARIS, granularity=Granularity.WORD, messages=MESSAGES, contrast=SHORT)
    grad, f_x = _content_grad(model, enc)
    x = model.get_input_embeddings()(enc.input_ids)[enc.unit_of_token >= 0].detach().float()
    saliency = qwen_explainer.explain(FRANCE, PARIS, contrast=SHORT, method="saliency")
    assert _scores(saliency) == pytest.approx(_units(enc, grad.norm(dim=-1)), rel=1e-4, abs=1e-6)
    ixg = qwen_explainer.explain(FRANCE, PARIS, contrast=SHORT, method="input_x_gradient")
    assert _scores(ixg) == pytest.approx(_units(enc, (x * grad).sum(-1)), rel=1e-4, abs=1e-6)
    assert saliency.objective_value == pytest.approx(f_x, abs=1e-4)


@pytest.mark.parametrize("contrast", [SHORT, BERLIN])
def test_integrated_gradients_completeness_holds_for_the_difference(demo_pair, demo_explainer, contrast):
    """On the trained demo model (a tiny random Qwen3's f is nearly flat along the path and
    needs ~256 steps to converge, with or without a contrast)."""
    model, tokenizer = demo_pair
    enc = encode(tokenizer, target=PARIS, granularity=Granularity.WORD, messages=MESSAGES, contrast=contrast)
    result = demo_explainer.explain(
        FRANCE, PARIS, contrast=contrast, method="integrated_gradients", n_steps=64
    )
    # f(x) - f(baseline) by plain forwards: every content embedding set to the pad token's
    pad = model.get_input_embeddings()(torch.tensor([tokenizer.pad_token_id]))[0].detach().float()
    n_content = int((enc.unit_of_token >= 0).sum())
    _, f_x = _content_grad(model, enc)
    _, f_b = _content_grad(model, enc, at=pad.expand(n_content, -1))
    assert abs(f_x - f_b) > 5  # a real gap to complete
    assert sum(_scores(result)) == pytest.approx(f_x - f_b, rel=1e-3)
    assert abs(result.metadata.convergence_delta) < 1e-3 * abs(f_x - f_b)
    assert result.objective_value == pytest.approx(f_x, abs=1e-4)


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_shap", "input_x_gradient"])
def test_linear_gradient_methods_of_the_difference(qwen_explainer, method):
    """The gradient of a difference is the difference of the gradients, and these maps are
    linear in it (same points, same noise for the same seed)."""
    kw = {"method": method, "seed": 5}
    if method != "input_x_gradient":
        kw["n_samples" if method == "gradient_shap" else "n_steps"] = 8
    both = qwen_explainer.explain(FRANCE, PARIS, contrast=BERLIN, **kw)
    target = qwen_explainer.explain(FRANCE, PARIS, **kw)
    contrast = qwen_explainer.explain(FRANCE, BERLIN, **kw)
    assert _scores(both) == pytest.approx(
        [t - c for t, c in zip(_scores(target), _scores(contrast))], abs=1e-4
    )


ITEMS = [
    (FRANCE, PARIS, BERLIN),
    {"prompt": "The capital of France is", "target": " Paris.", "contrast": " Berlin, in Germany."},
    (FRANCE, "Paris."),
    ([{"role": "system", "content": "Be brief."}, *FRANCE], SHORT, "Lyon."),
]


@pytest.mark.parametrize(
    ("method", "options"),
    [("occlusion", {}), ("kernel_shap", {"n_samples": 24}), ("integrated_gradients", {"n_steps": 8}),
     ("smooth_grad", {"n_samples": 4}), ("saliency", {})],
)  # fmt: skip
def test_a_batch_mixing_contrastive_and_plain_items_equals_one_by_one(qwen_explainer, method, options):
    batch = qwen_explainer.explain_batch(ITEMS, method=method, seed=1, **options)
    for item, got in zip(ITEMS, batch):
        if isinstance(item, dict):
            alone = qwen_explainer.explain(
                prompt=item["prompt"], target=item["target"], contrast=item["contrast"], method=method,
                seed=1, **options,
            )  # fmt: skip
        else:
            alone = qwen_explainer.explain(*item[:2], contrast=item[2] if len(item) > 2 else None,
                                           method=method, seed=1, **options)  # fmt: skip
        assert got.contrast == alone.contrast
        assert _scores(got) == pytest.approx(_scores(alone), abs=1e-5)
        assert got.objective_value == pytest.approx(alone.objective_value, abs=1e-5)
        assert got.metadata.n_sequences == alone.metadata.n_sequences


def test_gradients_of_a_model_without_position_ids_run_each_length_apart(qwen_pair):
    """Left padding needs position ids; without them the two answers (two lengths) of a
    contrastive item go through separate calls of one pass, with the same scores."""
    explainer = AttributionExplainer(*qwen_pair)
    reference = explainer.explain(FRANCE, PARIS, contrast=SHORT, method="integrated_gradients", n_steps=8)
    explainer.engine._position_ids = False  # as for a model whose forward takes none
    assert not explainer.engine.packs_lengths
    alone = explainer.explain(FRANCE, PARIS, contrast=SHORT, method="integrated_gradients", n_steps=8)
    assert _scores(alone) == pytest.approx(_scores(reference), abs=1e-5)
    assert alone.metadata.n_forward == 4  # 2 passes (the path, then f(x) and f(baseline)) x 2 lengths


def test_the_two_answers_share_passes_and_prompt_prefixes(qwen_pair):
    """A contrastive item's rows go through the same chunks as its target's would: the same
    forward passes and one shared prefix per chunk for both answers, where two separate runs
    pay for every pass and prefix twice."""
    model, tokenizer = qwen_pair
    engine = Engine(model)
    enc = encode(
        tokenizer, target=PARIS, granularity=Granularity.WORD, messages=MESSAGES, contrast=SAME_LENGTH
    )
    assert enc.seq_len == enc.contrast.seq_len  # answers of one length: their rows share chunks
    baseline = resolve_baseline(tokenizer, None, engine.vocab_size)
    keep_first = torch.ones(6, enc.n_units, dtype=torch.bool)  # every row keeps the first units
    keep_first[torch.arange(1, 6), torch.arange(enc.n_units - 5, enc.n_units)] = False
    (both,) = engine.score([ScoreRequest(enc, keep_first, baseline)])
    calls_both, saved_both = engine.stats.calls, engine.stats.prefix_tokens_saved
    engine.stats.reset()
    (target,) = engine.score([ScoreRequest(replace(enc, contrast=None), keep_first, baseline)])
    (contrast,) = engine.score([ScoreRequest(enc.contrast, keep_first, baseline)])
    assert torch.allclose(both.log_probs, target.log_probs, atol=1e-5)
    assert torch.allclose(both.contrast_log_probs, contrast.log_probs, atol=1e-5)
    assert both.n_forward == 1 and both.n_sequences == 12
    assert calls_both == engine.stats.calls / 2  # one prefix call + one rows call, not two of each
    assert saved_both > engine.stats.prefix_tokens_saved  # 11 rows reuse the prefix, not 2 x 5
    assert both.values == pytest.approx(both.log_probs.sum(-1) - both.contrast_log_probs.sum(-1))


def test_answers_of_different_lengths_are_not_padded_together(qwen_pair):
    """Rows of a target and a contrast of quite different lengths would pad the shorter
    answer's rows in a shared chunk or pass: they run apart, as two runs would (the same
    tokens). Answers of about one length share passes."""
    model, tokenizer = qwen_pair
    engine = Engine(model)
    long_target = " ".join([PARIS] * 3)
    enc = encode(
        tokenizer, target=long_target, granularity=Granularity.WORD, messages=MESSAGES, contrast="Paris."
    )
    assert enc.seq_len > 1.5 * enc.contrast.seq_len
    baseline = resolve_baseline(tokenizer, None, engine.vocab_size)
    masks = torch.cat(
        [torch.ones(1, enc.n_units, dtype=torch.bool), ~torch.eye(enc.n_units, dtype=torch.bool)]
    )
    engine.score([ScoreRequest(enc, masks, baseline)])
    tokens_both = engine.stats.tokens
    engine.stats.reset()
    engine.score([ScoreRequest(replace(enc, contrast=None), masks, baseline)])
    engine.score([ScoreRequest(enc.contrast, masks, baseline)])
    assert tokens_both == engine.stats.tokens
    # gradients: the contrast sequences get a call of their own in each pass; a contrast of
    # the target's length shares the rows' call
    explainer = AttributionExplainer(model, tokenizer)
    kw = {"method": "integrated_gradients", "n_steps": 8}
    plain = explainer.explain(FRANCE, long_target, **kw)
    apart = explainer.explain(FRANCE, long_target, contrast="Paris.", **kw)
    assert apart.metadata.n_forward == 2 * plain.metadata.n_forward
    plain = explainer.explain(FRANCE, PARIS, **kw)
    together = explainer.explain(FRANCE, PARIS, contrast=SAME_LENGTH, **kw)
    assert together.metadata.n_forward == plain.metadata.n_forward


@pytest.mark.parametrize("position_ids", [True, False])
def test_a_long_target_against_a_short_contrast(qwen_pair, position_ids):
    """The short contrast's call keeps only its own target positions (its whole sequence is
    shorter than the target), with or without left padding."""
    explainer = AttributionExplainer(*qwen_pair)
    explainer.engine._position_ids = position_ids
    long_target = " ".join([PARIS] * 6)
    kw = {"method": "integrated_gradients", "n_steps": 4}
    both = explainer.explain(FRANCE, long_target, contrast="Paris.", **kw)
    target = explainer.explain(FRANCE, long_target, **kw)
    contrast = explainer.explain(FRANCE, "Paris.", **kw)
    assert _scores(both) == pytest.approx(
        [t - c for t, c in zip(_scores(target), _scores(contrast))], abs=1e-4
    )


def test_per_target_token_is_refused_for_contrastive_items(qwen_explainer):
    with pytest.raises(
        InvalidRequestError, match="per-target-token scores are not defined for a contrastive"
    ):
        qwen_explainer.explain(FRANCE, PARIS, contrast=BERLIN, method="occlusion", per_target_token=True)
    outcomes = list(
        qwen_explainer.iter_explain(
            [(FRANCE, PARIS, BERLIN), (FRANCE, PARIS)], method="occlusion", per_target_token=True
        )
    )
    assert "not defined for a contrastive" in str(outcomes[0].error)
    assert outcomes[1].result is not None and outcomes[1].result.per_target_token is not None


@pytest.mark.parametrize(
    ("contrast", "message"),
    [
        (PARIS, "'contrast' equals 'target'"),
        ("  ", "'contrast' is empty"),
        ("Berlin \ud800", "contrast: unpaired surrogate"),  # no tokenizer can read it
    ],
)
def test_a_contrast_that_cannot_be_compared_is_refused(qwen_explainer, contrast, message):
    with pytest.raises(InvalidRequestError, match=message):
        qwen_explainer.explain(FRANCE, PARIS, contrast=contrast, method="occlusion")


def test_a_contrast_too_long_for_the_limit_names_the_contrast(qwen_pair):
    explainer = AttributionExplainer(*qwen_pair, max_length=20)
    with pytest.raises(InvalidRequestError, match=r"prompt \(\d+ tokens\) \+ contrast"):
        explainer.explain(prompt="Hi", target="Paris.", contrast="Berlin " * 20, method="occlusion")


def test_contrastive_results_round_trip_through_a_batch_row(qwen_explainer):
    result = qwen_explainer.explain(FRANCE, PARIS, contrast=BERLIN, method="occlusion")
    row = result_row(result, item_id="1", line=1, meta={})
    assert row["contrast"] == BERLIN and row["contrast_log_prob"] == result.metadata.contrast_log_prob
    assert row["target_generated"] is False
    again = row_to_result(row)
    assert again.contrast == BERLIN and again.metadata.contrast_log_prob == result.metadata.contrast_log_prob
    assert again.objective_value == result.objective_value


def test_the_terminal_and_html_views_name_both_answers(qwen_explainer):
    from rich.console import Console

    from fairforge_attr.render import to_html
    from fairforge_attr.render.terminal import render

    result = qwen_explainer.explain(FRANCE, PARIS, contrast=BERLIN, method="occlusion")
    console = Console(record=True, width=200, color_system=None)
    render(result, console)
    text = console.export_text()
    assert "target: why this answer" in text and "contrast: and not this one" in text
    assert PARIS in text and BERLIN in text
    assert "log p(target) - log p(contrast) =" in text
    page = to_html(result)
    assert BERLIN in page and "prefer the target to the contrast" in page


@pytest.mark.parametrize(
    "method", [m for m in AttributionMethod if m is not AttributionMethod.INPUT_X_GRADIENT]
)
def test_demo_model_puts_france_first_for_paris_rather_than_berlin(demo_explainer, method):
    """The demo model answers in full sentences, as its corpus does ("The capital of France is
    Paris.", "The capital of Germany is Berlin."): why Paris and not Berlin is "France".
    (Input x gradient, a first-order guess at x, ranks "What" first: -0.035 vs -0.024.)"""
    result = demo_explainer.explain(FRANCE, PARIS, contrast=BERLIN, method=method)
    top = result.get_top_k(1)[0]
    assert top.text == "France", [(a.text, round(a.score, 3)) for a in result.get_top_k(3)]
    assert top.score > 0  # "France" makes Paris more likely than Berlin
    assert result.objective_value > 5  # the model is sure: Paris over Berlin by many nats


def test_a_contrast_that_repeats_the_question_leaves_little_to_the_prompt(demo_explainer):
    """Both answers are teacher-forced: against "The capital of France is Berlin." the shared
    words cancel and the answer itself says France, so the prompt's "France" hardly matters
    to Paris-or-Berlin (README, Asking why)."""
    same = demo_explainer.explain(
        FRANCE, PARIS, contrast="The capital of France is Berlin.", method="occlusion"
    )
    other = demo_explainer.explain(FRANCE, PARIS, contrast=BERLIN, method="occlusion")
    france = next(i for i, a in enumerate(other.attributions) if a.text == "France")
    assert other.attributions[france].score > 10
    assert abs(same.attributions[france].score) < 0.5 < same.objective_value


def test_faithfulness_of_a_contrastive_result_checks_the_difference(qwen_explainer):
    """Faithfulness scores its probes through the engine, so a contrastive result is checked
    against its own f = log p(target) - log p(contrast), at explain time and afterwards."""
    check = {"n_random": 2, "n_ablations": 8}
    both = qwen_explainer.explain(FRANCE, PARIS, contrast=BERLIN, method="occlusion", faithfulness=check)
    target = qwen_explainer.explain(FRANCE, PARIS, method="occlusion", faithfulness=check)
    contrast = qwen_explainer.explain(FRANCE, BERLIN, method="occlusion", faithfulness=check)
    f = both.faithfulness
    assert f.f_full == pytest.approx(both.objective_value, abs=1e-4)
    assert f.f_empty == pytest.approx(target.faithfulness.f_empty - contrast.faithfulness.f_empty, abs=1e-4)
    assert target.faithfulness.f_full == pytest.approx(target.metadata.target_log_prob, abs=1e-4)
    again = qwen_explainer.faithfulness(both, **check)  # encoded again from the result
    assert again.f_full == pytest.approx(f.f_full, abs=1e-5)
    assert again.deletion_curve == pytest.approx(f.deletion_curve, abs=1e-5)
    # a contrastive and a plain result on one item share no probes: each keeps its own f
    many = qwen_explainer.faithfulness_many([both, target], **check)
    assert many[0].f_full == pytest.approx(both.objective_value, abs=1e-4)
    assert many[1].f_full == pytest.approx(target.metadata.target_log_prob, abs=1e-4)


@pytest.mark.parametrize("method", ["lime", "kernel_shap", "sobol"])
def test_standard_errors_are_of_the_difference(qwen_pair, qwen_explainer, method):
    """A sampled method's standard errors come from the same f as its scores: the method's
    std_error on the difference of the two answers' values, recomputed here from the engine's
    log-probs of the same masks (and not the target's alone)."""
    _, tokenizer = qwen_pair
    plan = qwen_explainer.plan(method, "word", seed=3, n_samples=16)
    both = qwen_explainer.explain(FRANCE, PARIS, contrast=BERLIN, method=method, seed=3, n_samples=16)
    enc = encode(tokenizer, target=PARIS, granularity=Granularity.WORD, messages=MESSAGES, contrast=BERLIN)
    scorer = plan.spec.score
    masks = scorer.sample(enc.n_units, plan.options, plan.seed)
    full = torch.cat([torch.ones(1, enc.n_units, dtype=torch.bool), masks])
    (res,) = qwen_explainer.engine.score([ScoreRequest(enc, full, plan.baseline)])
    target = res.log_probs[1:].double().sum(-1, keepdim=True)
    contrast = res.contrast_log_probs[1:].double().sum(-1, keepdim=True)
    expected = scorer.std_error(masks, target - contrast, plan.options).tolist()
    got = [a.std_error for a in both.attributions]
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert got != pytest.approx(scorer.std_error(masks, target, plan.options).tolist(), rel=1e-3)
