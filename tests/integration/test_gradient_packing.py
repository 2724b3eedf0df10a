"""Gradient methods in batch mode: the points of several items share forward+backward passes,
and every item's result equals ``explain()`` of that item alone (same seed, same scores)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from captum.attr import IntegratedGradients

from fairforge_attr import AttributionExplainer, Granularity
from fairforge_attr.methods.gradient import sample_draws
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from tests.conftest import FRANCE, FRANCE_TARGET
from tests.integration.test_gradient_methods import FAST, GRADIENT_METHODS, NOISY

CHAT = [
    {"role": "system", "content": "Answer concisely. Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
]
# Short and long prompts, short and long targets, chat and plain: every pass pads some rows.
ITEMS = [
    (FRANCE, FRANCE_TARGET),
    {"prompt": "Why is the sky blue?", "target": " Rayleigh scattering."},
    {"messages": CHAT, "target": "Paris."},
    {
        "prompt": "Hi",
        "target": " The sky appears blue due to Rayleigh scattering of sunlight, and machine learning "
        "is a subset of AI.",
    },
    {
        "prompt": "Machine learning is a subset of AI that enables systems to learn from data. "
        "Answer concisely with 3 bullet points.",
        "target": " Yes",
    },
]


def _single(explainer, item, **kwargs):
    if isinstance(item, tuple):
        return explainer.explain(item[0], item[1], **kwargs)
    return explainer.explain(item.get("messages"), item["target"], prompt=item.get("prompt"), **kwargs)


def _scores(result):
    return [a.score for a in result.attributions]


def _assert_same(packed, single):
    """Equal to float32 rounding: the passes differ in padding and batch size, not in maths."""
    peak = max(1e-3, max(abs(s) for s in _scores(single)))
    assert _scores(packed) == pytest.approx(_scores(single), rel=1e-4, abs=1e-5 * peak)
    assert packed.metadata.target_log_prob == pytest.approx(single.metadata.target_log_prob, rel=1e-5)
    if single.metadata.convergence_delta is not None:
        assert packed.metadata.convergence_delta == pytest.approx(
            single.metadata.convergence_delta, rel=1e-3, abs=1e-5
        )
    if single.per_target_token is not None:
        for p, s in zip(packed.per_target_token.scores, single.per_target_token.scores):
            assert p == pytest.approx(s, rel=1e-4, abs=1e-5 * peak)


@pytest.mark.parametrize("per_target_token", [False, True])
@pytest.mark.parametrize("pair", ["gpt2_pair", "qwen_pair"])
@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_packed_results_equal_explain(request, pair, method, per_target_token):
    explainer = AttributionExplainer(*request.getfixturevalue(pair))
    opts = {"seed": 5, "granularity": "word", "per_target_token": per_target_token, **FAST.get(method, {})}
    batch = explainer.explain_batch(ITEMS, method=method, **opts)
    for item, packed in zip(ITEMS, batch):
        _assert_same(packed, _single(explainer, item, method=method, **opts))
    if not per_target_token:  # the default budget holds every path row of these items at once
        assert {r.metadata.n_backward for r in batch} == {1}


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients", "var_grad"])
def test_packed_results_equal_explain_on_the_demo_model(demo_explainer, method):
    opts = {"seed": 2, **FAST.get(method, {})}
    batch = demo_explainer.explain_batch(ITEMS, method=method, **opts)
    for item, packed in zip(ITEMS, batch):
        _assert_same(packed, _single(demo_explainer, item, method=method, **opts))


@pytest.mark.parametrize("method", NOISY)
def test_noise_does_not_depend_on_the_group(qwen_pair, method):
    """Each item draws its noise from (seed, sample) alone: alone, first, last, with other
    items, or in passes of three rows, its scores are the same."""
    model, tok = qwen_pair
    opts = {"seed": 9, **FAST.get(method, {})}
    alone = _single(AttributionExplainer(model, tok), ITEMS[1], method=method, **opts)
    small = AttributionExplainer(model, tok, token_budget=3 * 40)
    for explainer, group in (
        (AttributionExplainer(model, tok), [ITEMS[1], ITEMS[3]]),
        (AttributionExplainer(model, tok), [ITEMS[0], ITEMS[2], ITEMS[1]]),
        (small, [ITEMS[4], ITEMS[1], ITEMS[0]]),
    ):
        batch = explainer.explain_batch(group, method=method, **opts)
        _assert_same(batch[group.index(ITEMS[1])], alone)
    other_seed = _single(AttributionExplainer(model, tok), ITEMS[1], method=method, **{**opts, "seed": 10})
    assert _scores(other_seed) != _scores(alone)


@pytest.mark.parametrize("method", NOISY)
def test_per_target_token_rows_share_the_points_of_the_scores(qwen_explainer, method):
    """Every target token is differentiated at the same noisy points as f: the row for f is
    the plain scores, and GradientSHAP's rows (linear in the gradient) sum to them."""
    opts = {"seed": 4, **FAST.get(method, {})}
    plain = qwen_explainer.explain(FRANCE, FRANCE_TARGET, method=method, **opts)
    rows = qwen_explainer.explain(FRANCE, FRANCE_TARGET, method=method, per_target_token=True, **opts)
    assert _scores(rows) == pytest.approx(_scores(plain), rel=1e-4, abs=1e-6)
    assert rows.metadata.n_sequences == plain.metadata.n_sequences  # the same distinct points
    if method == "gradient_shap":
        column_sums = torch.tensor(rows.per_target_token.scores).sum(0)
        assert column_sums.tolist() == pytest.approx(_scores(plain), rel=1e-4, abs=1e-6)


def test_many_short_items_share_a_few_passes(qwen_pair):
    model, tok = qwen_pair
    words = ["sky", "France", "data", "light", "Paris", "AI", "blue", "points", "sun"]
    items = [{"prompt": f"Say {a} {b}.", "target": f" {b} {a}."} for a in words for b in words if a != b][:64]
    calls = []
    model = copy.deepcopy(model)
    model.register_forward_pre_hook(
        lambda m, a, k: calls.append(k["inputs_embeds"].shape[0]), with_kwargs=True
    )
    explainer = AttributionExplainer(model, tok)
    for method, passes in (("saliency", 2), ("input_x_gradient", 2)):
        calls.clear()
        batch = explainer.explain_batch(items, method=method)
        assert len(batch) == 64 and sum(calls) == 64
        assert len(calls) == passes  # one per group of 32 items: 32 rows a pass
    calls.clear()
    batch = explainer.explain_batch(items, method="integrated_gradients", n_steps=32)
    # 64 x 32 path points + 64 x 2 end points, in passes as full as the token budget allows.
    seq = max(
        encode(tok, target=i["target"], granularity=Granularity.WORD, prompt=i["prompt"]).seq_len
        for i in items
    )
    per_pass = explainer.engine.token_budget // seq
    assert sum(calls) == 64 * 34
    assert len(calls) <= 2 * (math.ceil(32 * 32 / per_pass) + 1) + 2
    assert all(math.isfinite(s) for r in batch for s in _scores(r))


def test_counts_are_the_passes_each_item_took_part_in(qwen_pair):
    model, tok = qwen_pair
    seq_len = _encode_france(tok).seq_len
    explainer = AttributionExplainer(model, tok, token_budget=5 * seq_len)  # 5 rows a pass
    batch = explainer.explain_batch([(FRANCE, FRANCE_TARGET)] * 3, method="integrated_gradients", n_steps=4)
    # Path rows 0-3 | 4-7 | 8-11 of items A | B | C in passes [0, 5), [5, 10), [10, 12), then the
    # end points (x, baseline) of A | B | C: rows 0-1 | 2-3 | 4-5 in passes [0, 5), [5, 6).
    counts = [(r.metadata.n_forward, r.metadata.n_backward, r.metadata.n_sequences) for r in batch]
    assert counts == [(2, 1, 6), (3, 2, 6), (4, 2, 6)]
    assert _scores(batch[1]) == pytest.approx(_scores(batch[0]), rel=1e-5)
    assert _scores(batch[2]) == pytest.approx(_scores(batch[0]), rel=1e-5)


def _encode_france(tok):
    return encode(tok, target=FRANCE_TARGET, granularity=Granularity.WORD, messages=[Message(**FRANCE[0])])


def test_out_of_memory_halves_the_packed_passes(qwen_pair):
    model, tok = qwen_pair
    items = [(FRANCE, FRANCE_TARGET), ITEMS[1]]
    reference = AttributionExplainer(model, tok).explain_batch(
        items, method="integrated_gradients", n_steps=4
    )
    sizes = []

    def fake_oom(module, args, kwargs):
        rows = kwargs["inputs_embeds"].shape[0]
        if rows > 3 and torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        sizes.append(rows)

    model = copy.deepcopy(model)
    model.register_forward_pre_hook(fake_oom, with_kwargs=True)
    explainer = AttributionExplainer(model, tok)
    batch = explainer.explain_batch(items, method="integrated_gradients", n_steps=4)
    for packed, single in zip(batch, reference):
        _assert_same(packed, single)
    # 8 path rows: 8 fails, 4 fails, then passes of 2 (halved twice); the end points' pass
    # (4 rows, no gradient) keeps the halved size.
    assert sizes == [2, 2, 2, 2, 2, 2]
    assert [r.metadata.n_backward for r in batch] == [2, 2]
    assert explainer.engine.token_budget < AttributionExplainer(model, tok).engine.token_budget


def test_overflow_in_one_item_recomputes_only_that_item(qwen_pair):
    """Rows never mix: inf in one item's rows leaves the others' half-precision scores alone."""
    model, tok = qwen_pair
    half = copy.deepcopy(model).to(torch.bfloat16)
    bad_len = _encode_france(tok).seq_len
    poisoned = {}

    def find_rows(module, args, kwargs):
        poisoned["rows"] = kwargs["attention_mask"].sum(-1) == bad_len

    def overflow(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.dtype != torch.float32 and poisoned["rows"].any():
            hidden = hidden.clone()
            hidden[poisoned["rows"], :, 0] = float("inf")
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden
        return None

    half.register_forward_pre_hook(find_rows, with_kwargs=True)
    half.model.layers[0].register_forward_hook(overflow)
    items = [ITEMS[1], (FRANCE, FRANCE_TARGET), ITEMS[2]]
    explainer = AttributionExplainer(half, tok)
    with pytest.warns(RuntimeWarning, match="1 item"):
        batch = explainer.explain_batch(items, method="var_grad", seed=1, n_samples=4)
    assert [r.metadata.recomputed_in_float32 for r in batch] == [False, True, False]
    assert all(math.isfinite(s) for r in batch for s in _scores(r))
    reference = AttributionExplainer(copy.deepcopy(half).float(), tok)
    _assert_same(batch[1], reference.explain(FRANCE, FRANCE_TARGET, method="var_grad", seed=1, n_samples=4))


def test_without_position_ids_only_equal_lengths_share_a_pass(qwen_pair):
    model, tok = qwen_pair
    masks = []
    model = copy.deepcopy(model)
    model.register_forward_pre_hook(lambda m, a, k: masks.append(k["attention_mask"]), with_kwargs=True)
    explainer = AttributionExplainer(model, tok)
    explainer.engine._position_ids = False  # as for a model whose forward takes none
    items = [ITEMS[0], ITEMS[1], ITEMS[0], ITEMS[2]]
    batch = explainer.explain_batch(items, method="input_x_gradient")
    assert all(bool(m.all()) for m in masks)  # no padding, so no position could shift
    assert len(masks) == 3  # the two copies of item 0 share their pass
    for item, packed in zip(items, batch):
        _assert_same(packed, _single(AttributionExplainer(*qwen_pair), item, method="input_x_gradient"))


# -------------------------------------------------- against independent computations
def _objective(model, enc):
    """f as a function of the content embeddings [B, n_content, H], written from scratch."""
    emb = model.get_input_embeddings()(enc.input_ids[None]).detach()
    content = torch.nonzero(enc.unit_of_token >= 0).squeeze(1)

    def f(x):
        e = emb.expand(x.shape[0], -1, -1).index_copy(1, content, x)
        logits = model(inputs_embeds=e).logits.float()[:, enc.prompt_length - 1 : -1]
        lp = torch.log_softmax(logits, -1).gather(2, enc.target_ids.expand(x.shape[0], -1)[..., None])
        return lp.squeeze(-1).sum(-1)

    return f, emb[0, content]


def _per_unit(enc, token_values):
    owner = enc.unit_of_token[enc.unit_of_token >= 0]
    return torch.zeros(enc.n_units, dtype=torch.float64).index_add_(0, owner, token_values.double()).tolist()


@pytest.mark.parametrize("integration", ["gausslegendre", "riemann_trapezoid"])
def test_packed_integrated_gradients_equal_captum(qwen_pair, integration):
    model, tok = qwen_pair
    enc = _encode_france(tok)
    f, x = _objective(model, enc)
    base = model.get_input_embeddings().weight[tok.eos_token_id].detach().expand_as(x)
    maps = IntegratedGradients(f).attribute(
        x[None], baselines=base[None], n_steps=8, method=integration, internal_batch_size=8
    )
    batch = AttributionExplainer(model, tok).explain_batch(
        [ITEMS[3], (FRANCE, FRANCE_TARGET)],
        method="integrated_gradients",
        n_steps=8,
        integration=integration,
        baseline="eos",
    )
    assert _scores(batch[1]) == pytest.approx(_per_unit(enc, maps[0].sum(-1)), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("method", NOISY)
def test_packed_noisy_methods_equal_autograd_on_the_documented_draws(qwen_pair, method):
    model, tok = qwen_pair
    enc = _encode_france(tok)
    f, x = _objective(model, enc)
    n, stdev, seed = 4, 0.3, 7
    u, eps = sample_draws(seed, torch.arange(n), tuple(x.shape))
    noisy = x + stdev * float(x.std()) * eps
    base = model.get_input_embeddings().weight[tok.pad_token_id].detach().expand_as(x)
    at = base + u.view(-1, 1, 1) * (noisy - base) if method == "gradient_shap" else noisy
    at = at.clone().requires_grad_()
    (g,) = torch.autograd.grad(f(at).sum(), at)
    g = g.double()
    expected = {
        "gradient_shap": ((noisy - base).double() * g).mean(0).sum(-1),
        "smooth_grad": g.mean(0).norm(dim=-1),
        "square_grad": g.square().mean(0).sum(-1).sqrt(),
        "var_grad": (g.square().mean(0) - g.mean(0).square()).clamp(min=0).sum(-1).sqrt(),
    }[method.value]
    batch = AttributionExplainer(model, tok).explain_batch(
        [ITEMS[4], (FRANCE, FRANCE_TARGET)], method=method, seed=seed, n_samples=n, stdev=stdev
    )
    assert _scores(batch[1]) == pytest.approx(_per_unit(enc, expected), rel=1e-4, abs=1e-6)
