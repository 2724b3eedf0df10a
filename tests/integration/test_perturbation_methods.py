"""Perturbation methods on real (tiny) models, checked against independent computations."""

import math
from itertools import combinations

import pytest
import torch

from fairforge_attr import AttributionMethod, Granularity
from fairforge_attr.methods.registry import REGISTRY, Family
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from tests.conftest import FRANCE, FRANCE_TARGET
from tests.reference import log_prob, without_units

PERTURBATION = [m for m, s in REGISTRY.items() if s.family is Family.PERTURBATION]
SEEDED = [m for m in PERTURBATION if REGISTRY[m].uses_seed]
CHAT = [
    {"role": "system", "content": "Answer concisely. Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.mark.parametrize("fixture", ["gpt2_explainer", "qwen_explainer", "demo_explainer"])
@pytest.mark.parametrize("method", PERTURBATION)
@pytest.mark.parametrize("granularity", list(Granularity))
def test_every_method_and_granularity(request, fixture, method, granularity):
    explainer = request.getfixturevalue(fixture)
    result = (
        explainer.explain(
            messages=CHAT, target=FRANCE_TARGET, method=method, granularity=granularity, n_samples=40
        )
        if method != AttributionMethod.OCCLUSION
        else explainer.explain(messages=CHAT, target=FRANCE_TARGET, method=method, granularity=granularity)
    )
    assert result.method == method and result.granularity == granularity
    assert len(result.attributions) == result.metadata.n_units > 0
    assert all(math.isfinite(a.score) for a in result.attributions)
    assert max(abs(a.normalized_score) for a in result.attributions) == pytest.approx(1.0)
    assert {a.role for a in result.attributions} == {"system", "user"}
    m = result.metadata
    assert m.n_forward >= 1 and m.n_sequences >= 2 and math.isfinite(m.target_log_prob)
    if method == AttributionMethod.SOBOL:
        assert all(a.score >= 0 for a in result.attributions)


@pytest.mark.parametrize("fixture", ["gpt2_pair", "qwen_pair"])
def test_occlusion_equals_brute_force(request, fixture):
    model, tok = request.getfixturevalue(fixture)
    from fairforge_attr import AttributionExplainer

    explainer = AttributionExplainer(model, tok, token_budget=64)  # forces many chunks
    result = explainer.explain(messages=CHAT, target=FRANCE_TARGET, method="occlusion", granularity="word")
    enc = encode(
        tok, target=FRANCE_TARGET, granularity=Granularity.WORD, messages=[Message(**m) for m in CHAT]
    )
    full = log_prob(model, enc.input_ids, enc.prompt_length)
    assert result.metadata.target_log_prob == pytest.approx(full, abs=1e-4)
    for i, a in enumerate(result.attributions):
        removed = log_prob(model, without_units(enc, [i], tok.pad_token_id), enc.prompt_length)
        assert a.score == pytest.approx(full - removed, abs=1e-4), a.text


def test_occlusion_hide_baseline_equals_attention_masked_forward(qwen_pair):
    model, tok = qwen_pair
    from fairforge_attr import AttributionExplainer

    result = AttributionExplainer(model, tok).explain(
        messages=FRANCE, target=FRANCE_TARGET, method="occlusion", baseline="hide"
    )
    enc = encode(
        tok, target=FRANCE_TARGET, granularity=Granularity.WORD, messages=[Message(**m) for m in FRANCE]
    )
    full = log_prob(model, enc.input_ids, enc.prompt_length)
    for i, a in enumerate(result.attributions):
        mask = torch.ones(enc.seq_len, dtype=torch.long)
        mask[list(enc.units[i].token_indices)] = 0
        assert a.score == pytest.approx(
            full - log_prob(model, enc.input_ids, enc.prompt_length, mask), abs=1e-4
        )
    assert "attention mask" in result.metadata.params["removal"]


def test_kernel_shap_matches_exact_shapley_values(qwen_pair):
    model, tok = qwen_pair
    from fairforge_attr import AttributionExplainer

    msgs = [{"role": "user", "content": "Capital of France please?"}]
    result = AttributionExplainer(model, tok).explain(
        messages=msgs, target="Paris.", method="kernel_shap", n_samples=500
    )
    enc = encode(tok, target="Paris.", granularity=Granularity.WORD, messages=[Message(**m) for m in msgs])
    d = enc.n_units
    assert d == 5

    def v(kept: tuple[int, ...]) -> float:
        removed = [u for u in range(d) if u not in kept]
        return log_prob(model, without_units(enc, removed, tok.pad_token_id), enc.prompt_length)

    for i in range(d):
        others = [j for j in range(d) if j != i]
        phi = sum(
            math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) * (v((*subset, i)) - v(subset))
            for s in range(d)
            for subset in combinations(others, s)
        )
        assert result.attributions[i].score == pytest.approx(phi, abs=1e-4)


@pytest.mark.parametrize("method", SEEDED)
def test_same_seed_same_scores_other_seed_other_samples(qwen_explainer, method):
    kw = dict(messages=CHAT, target=FRANCE_TARGET, method=method, granularity="token", n_samples=30)
    a = [x.score for x in qwen_explainer.explain(seed=7, **kw).attributions]
    b = [x.score for x in qwen_explainer.explain(seed=7, **kw).attributions]
    c = [x.score for x in qwen_explainer.explain(seed=8, **kw).attributions]
    assert a == b
    assert a != c


def test_per_target_token_rows_sum_to_scores(qwen_explainer):
    for method in ("occlusion", "lime", "kernel_shap"):
        r = qwen_explainer.explain(messages=CHAT, target=FRANCE_TARGET, method=method, per_target_token=True)
        ptt = torch.tensor(r.per_target_token.scores)
        assert ptt.shape == (r.metadata.n_target_tokens, r.metadata.n_units)
        assert torch.allclose(
            ptt.sum(0), torch.tensor([a.score for a in r.attributions], dtype=ptt.dtype), atol=1e-6
        )
        assert len(r.per_target_token.target_tokens) == ptt.shape[0]


def test_batch_packing_equals_one_by_one(qwen_explainer):
    items = [
        (CHAT, FRANCE_TARGET),
        (FRANCE, "Paris."),
        ([{"role": "user", "content": "Why is the sky blue? Tell me now."}], "Rayleigh scattering."),
    ]
    batch = qwen_explainer.explain_batch(items, method="lime", n_samples=25)
    assert len(batch) == 3 and batch.model_name == "tiny-qwen3"
    for (msgs, target), packed in zip(items, batch):
        alone = qwen_explainer.explain(messages=msgs, target=target, method="lime", n_samples=25)
        assert [a.score for a in packed.attributions] == pytest.approx(
            [a.score for a in alone.attributions], abs=1e-4
        )
    # packed: the three items shared forward passes
    assert sum(r.metadata.n_forward for r in batch) > max(r.metadata.n_forward for r in batch)


def test_demo_model_puts_france_first(demo_explainer):
    for method in ("occlusion", "lime"):
        result = demo_explainer.explain(
            messages=FRANCE, target=FRANCE_TARGET, method=method, granularity="word"
        )
        assert result.get_top_k(1)[0].text == "France", (
            method,
            [(a.text, a.score) for a in result.get_top_k(4)],
        )
