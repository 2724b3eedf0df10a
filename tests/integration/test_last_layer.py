"""The last decoder layer run only where logits are kept (engine/last_layer.py): the same scores
as running it whole, on three layouts (Llama demo, Qwen3 with GQA, GPT-2 where only some parts
are cut), for every perturbation method, anchored and packed chunks, contrasts and
per-target-token output; the stats say what was skipped; nothing is left on the model."""

from __future__ import annotations

import copy
import threading

import pytest
import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.engine import Engine, ScoreRequest, resolve_baseline
from fairforge_attr.engine.last_layer import LastLayer, _position_wise, find_last_layer, tail_only
from fairforge_attr.methods.perturbation import occlusion_masks
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from tests.integration.test_anchor import SYSTEM, TARGET, USER
from tests.tiny_models import tiny_qwen3

PAIRS = ["qwen_pair", "gpt2_pair", "demo_pair"]
PARTS = {
    "qwen_pair": ["attention", "q_proj", "o_proj", "mlp"],
    "demo_pair": ["attention", "q_proj", "o_proj", "mlp"],
    "gpt2_pair": ["attention", "c_proj", "mlp"],  # GPT-2 projects q, k, v in one: c_attn runs whole
}


def _request(tok, baseline, vocab_size: int) -> ScoreRequest:
    msgs = [Message(role="system", content=SYSTEM), Message(role="user", content=USER)]
    enc = encode(tok, target=TARGET, granularity="word", messages=msgs)
    random = torch.rand(24, enc.n_units, generator=torch.Generator().manual_seed(0)) > 0.5
    masks = torch.cat([occlusion_masks(enc.n_units), random])
    return ScoreRequest(enc, masks, resolve_baseline(tok, baseline, vocab_size))


def _no_hooks_left(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("baseline", [None, "hide"])
@pytest.mark.parametrize("engine_options", [{"prefix_cache": False}, {"anchor": False}, {}])
def test_scores_equal_the_whole_last_layer(pair, baseline, engine_options, request):
    model, tok = request.getfixturevalue(pair)
    whole = Engine(model, token_budget=400, trim_last_layer=False, **engine_options)
    trimmed = Engine(model, token_budget=400, **engine_options)
    req = _request(tok, baseline, whole.vocab_size)
    want, got = whole.score([req])[0], trimmed.score([req])[0]
    assert torch.allclose(got.log_probs, want.log_probs, atol=1e-5), (
        (got.log_probs - want.log_probs).abs().max()
    )
    assert trimmed.last_layer.skips == PARTS[pair]
    assert whole.stats.last_layer_skipped == 0
    assert trimmed.stats.tokens == whole.stats.tokens  # the same passes, less work in each
    # every token ran except the few that predict the target, in every pass
    assert 0.8 * trimmed.stats.tokens < trimmed.stats.last_layer_skipped < trimmed.stats.tokens
    assert trimmed.stats.last_layer_queries_skipped == trimmed.stats.last_layer_skipped
    assert model.config._attn_implementation == "sdpa" and _no_hooks_left(model)


@pytest.mark.parametrize("pair", PAIRS)
def test_only_the_cut_positions_change_and_a_wrong_cut_is_caught(pair, request):
    """A direct model call: logits at the kept positions equal the plain pass; cutting one
    kept position off changes that position's logits (the check can fail)."""
    model, tok = request.getfixturevalue(pair)
    layer = find_last_layer(model)
    ids = torch.randint(5, len(tok), (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = model(input_ids=ids).logits
        with tail_only(model, layer, (14, 19, 20)) as done:
            got = model(input_ids=ids).logits
        assert done.skipped == 3 * 15 and done.queries_skipped == 3 * 15
        with tail_only(model, layer, (15, 19, 20)):
            wrong = model(input_ids=ids).logits
    assert torch.allclose(got[:, 14:19], want[:, 14:19], atol=1e-5)
    assert not torch.allclose(got[:, :14], want[:, :14], atol=1e-3)  # really not computed
    assert not torch.allclose(wrong[:, 14], want[:, 14], atol=1e-3)
    assert torch.allclose(wrong[:, 15:19], want[:, 15:19], atol=1e-5)
    assert _no_hooks_left(model)


def test_a_prefix_pass_gives_the_same_cache(qwen_pair):
    """A prefix pass needs no position's output: its keys and values are the same anyway."""
    model, _ = qwen_pair
    engine = Engine(model)
    ids = torch.randint(5, 300, (1, 30), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want = engine.prefix.run_prefix(ids, None)
        got = engine._run_prefix(ids, None)
    for a, b in zip(got.layers, want.layers):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
    assert engine.stats.last_layer_skipped == 30 == engine.stats.last_layer_queries_skipped


@pytest.mark.parametrize("method", ["occlusion", "lime", "kernel_shap", "sobol"])
def test_methods_packed_items_contrasts_and_per_token_scores_are_unchanged(demo_pair, method):
    model, tok = demo_pair
    fast = AttributionExplainer(model, tok, token_budget=500)
    slow = AttributionExplainer(model, tok, token_budget=500)
    slow.engine.last_layer = None
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    short = [{"role": "user", "content": "What is the capital of France?"}]
    items = [(msgs, TARGET), (short, TARGET), (msgs, "Paris.", "Berlin, in Germany.")]
    # Sobol runs n_samples x (units + 2) variants
    options = {"occlusion": {}, "sobol": {"n_samples": 2}}.get(method, {"n_samples": 24})
    for per_token in (False, True):
        if per_token:  # per-target-token scores are not defined for a contrastive item
            items = items[:2]
        got = fast.explain_batch(items, method=method, per_target_token=per_token, **options)
        want = slow.explain_batch(items, method=method, per_target_token=per_token, **options)
        for g, w in zip(got, want):
            assert [a.score for a in g.attributions] == pytest.approx(
                [a.score for a in w.attributions], abs=1e-4
            )
            if per_token:
                assert torch.allclose(
                    torch.tensor(g.per_target_token.scores),
                    torch.tensor(w.per_target_token.scores),
                    atol=1e-4,
                )
    assert fast.engine.stats.last_layer_skipped > 0


def test_float64_is_exact_to_double_rounding(qwen_pair):
    model, tok = qwen_pair
    double = copy.deepcopy(model).double()
    whole = Engine(double, token_budget=400, trim_last_layer=False)
    trimmed = Engine(double, token_budget=400)
    req = _request(tok, "hide", whole.vocab_size)
    got, want = trimmed.score([req])[0], whole.score([req])[0]
    assert torch.allclose(got.log_probs, want.log_probs, atol=1e-5)
    assert trimmed.stats.last_layer_queries_skipped > 0


def test_eager_attention_keeps_its_attention_but_cuts_the_rest(qwen_pair, monkeypatch):
    model, tok = qwen_pair
    monkeypatch.setattr(model.config, "_attn_implementation_internal", "eager")
    whole = Engine(model, token_budget=400, trim_last_layer=False)
    trimmed = Engine(model, token_budget=400)
    assert trimmed.last_layer.skips == ["q_proj", "o_proj", "mlp"]
    req = _request(tok, None, whole.vocab_size)
    got, want = trimmed.score([req])[0], whole.score([req])[0]
    assert torch.allclose(got.log_probs, want.log_probs, atol=1e-5)
    assert trimmed.stats.last_layer_skipped > 0 and trimmed.stats.last_layer_queries_skipped == 0


def test_unrecognised_layouts_skip_nothing_and_say_so(qwen_pair):
    assert find_last_layer(torch.nn.Linear(2, 2)).describe() == "nothing (no list of decoder layers found)"
    experts = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ModuleList([torch.nn.Linear(2, 2)]))
    assert not _position_wise(experts)  # a mixture of experts is not cut
    assert not _position_wise(torch.nn.Sequential(torch.nn.LayerNorm(2)))  # a module with its own weights
    model, tok = qwen_pair
    engine = Engine(model, token_budget=400)
    engine.last_layer = LastLayer(reason="test")
    want = Engine(model, token_budget=400, trim_last_layer=False).score(
        [_request(tok, None, engine.vocab_size)]
    )
    got = engine.score([_request(tok, None, engine.vocab_size)])
    assert torch.allclose(got[0].log_probs, want[0].log_probs, atol=1e-6)
    assert engine.stats.last_layer_skipped == engine.stats.last_layer_queries_skipped == 0


def test_gradient_passes_run_the_whole_model(qwen_explainer):
    """Gradient methods need every position: the engine's hooks are never on during them."""
    engine = qwen_explainer.engine
    engine.stats.reset()
    result = qwen_explainer.explain([{"role": "user", "content": USER}], TARGET, method="saliency")
    assert result.attributions and engine.stats.last_layer_skipped == 0
    assert _no_hooks_left(engine.model)


def test_a_part_shared_with_an_earlier_layer_is_not_cut():
    """Tied layers: the last layer's MLP also runs, on every position, in the first layer."""
    model, tok = tiny_qwen3(seed=3)
    model.model.layers[-1].mlp = model.model.layers[0].mlp
    assert find_last_layer(model).skips == ["attention", "q_proj", "o_proj"]
    req = _request(tok, None, model.config.vocab_size)
    want = Engine(model, token_budget=400, trim_last_layer=False).score([req])[0]
    got = Engine(model, token_budget=400).score([req])[0]
    assert torch.allclose(got.log_probs, want.log_probs, atol=1e-5)


def test_another_threads_call_of_the_model_runs_whole(qwen_pair):
    model, tok = qwen_pair
    ids = torch.randint(5, len(tok), (2, 16), generator=torch.Generator().manual_seed(4))
    out: list[torch.Tensor] = []
    with torch.inference_mode():
        want = model(input_ids=ids).logits
        with tail_only(model, find_last_layer(model), (10, 15, 16)) as done:
            worker = threading.Thread(target=lambda: out.append(model(input_ids=ids).logits))
            worker.start()
            worker.join()
    assert torch.allclose(out[0], want, atol=1e-5) and done.skipped == 0
