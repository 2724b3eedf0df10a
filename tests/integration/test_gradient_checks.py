"""Gradient methods against independent computations: plain torch.autograd on the model's
own embeddings, completeness of integrated gradients, template tokens, unit sums,
per-target-token rows, honest counts, the float32 fallback and out-of-memory retries."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from fairforge_attr.types import Granularity
from tests.conftest import FRANCE, FRANCE_TARGET


def _encode(tokenizer, granularity):
    return encode(tokenizer, target=FRANCE_TARGET, granularity=granularity, messages=[Message(**FRANCE[0])])


def _target_log_probs(model, enc, embeds):
    """[n_target] log p(t_i | ...) from a plain forward on [1, seq, H] embeddings."""
    logits = model(inputs_embeds=embeds).logits[0].float()
    p = enc.prompt_length
    return torch.log_softmax(logits[p - 1 : -1], -1).gather(1, enc.target_ids[:, None]).squeeze(1)


def _autograd(model, enc, row=None):
    """Embeddings [seq, H] and the gradient of f (or of one target token's log-prob)."""
    emb = model.get_input_embeddings()(enc.input_ids[None]).detach().requires_grad_()
    lp = _target_log_probs(model, enc, emb)
    (grad,) = torch.autograd.grad(lp.sum() if row is None else lp[row], emb)
    return emb.detach()[0], grad[0]


def _per_unit(enc, token_values):
    return [sum(float(token_values[t]) for t in u.token_indices) for u in enc.units]


def _scores(result):
    return [a.score for a in result.attributions]


def _opts(method):
    if method == "integrated_gradients":
        return {"n_steps": 16}
    if method in ("smooth_grad", "var_grad"):
        return {"n_samples": 4}
    return {}


@pytest.mark.parametrize("pair", ["gpt2_pair", "qwen_pair"])
@pytest.mark.parametrize("granularity", [Granularity.TOKEN, Granularity.WORD])
def test_saliency_and_input_x_gradient_equal_autograd(request, pair, granularity):
    model, tok = request.getfixturevalue(pair)
    explainer = AttributionExplainer(model, tok)
    enc = _encode(tok, granularity)
    emb, grad = _autograd(model, enc)
    saliency = explainer.explain(FRANCE, FRANCE_TARGET, method="saliency", granularity=granularity)
    assert _scores(saliency) == pytest.approx(_per_unit(enc, grad.norm(dim=-1)), rel=1e-4)
    ixg = explainer.explain(FRANCE, FRANCE_TARGET, method="input_x_gradient", granularity=granularity)
    assert _scores(ixg) == pytest.approx(_per_unit(enc, (emb * grad).sum(-1)), rel=1e-4, abs=1e-7)
    with torch.no_grad():
        f_x = float(_target_log_probs(model, enc, emb[None]).sum())
    assert saliency.metadata.target_log_prob == pytest.approx(f_x, rel=1e-5)


def test_per_target_token_rows_equal_autograd(qwen_pair):
    model, tok = qwen_pair
    explainer = AttributionExplainer(model, tok)
    enc = _encode(tok, Granularity.WORD)
    result = explainer.explain(FRANCE, FRANCE_TARGET, method="saliency", per_target_token=True)
    ptt = result.per_target_token
    assert len(ptt.scores) == enc.n_target_tokens == len(ptt.target_tokens)
    assert all(len(row) == enc.n_units for row in ptt.scores)
    for i in (0, enc.n_target_tokens - 1):
        _, grad = _autograd(model, enc, row=i)
        assert ptt.scores[i] == pytest.approx(_per_unit(enc, grad.norm(dim=-1)), rel=1e-4)
    assert result.model_dump()["per_target_token"]["scores"] == ptt.scores
    # One forward and one backward whatever the number of target tokens; the n_target + 1
    # rows are copies of the same sequence.
    assert (result.metadata.n_forward, result.metadata.n_backward, result.metadata.n_sequences) == (1, 1, 1)


@pytest.mark.parametrize("method", ["integrated_gradients", "input_x_gradient"])
def test_per_target_token_rows_of_linear_methods_sum_to_the_scores(qwen_explainer, method):
    result = qwen_explainer.explain(
        FRANCE, FRANCE_TARGET, method=method, per_target_token=True, **_opts(method)
    )
    column_sums = torch.tensor(result.per_target_token.scores).sum(0)
    assert column_sums.tolist() == pytest.approx(_scores(result), rel=1e-4, abs=1e-6)
    plain = qwen_explainer.explain(FRANCE, FRANCE_TARGET, method=method, **_opts(method))
    assert _scores(plain) == pytest.approx(_scores(result), rel=1e-4, abs=1e-6)


def _relative_gap(explainer, **options):
    result = explainer.explain(FRANCE, FRANCE_TARGET, method="integrated_gradients", **options)
    delta = result.metadata.convergence_delta
    total = sum(_scores(result))
    return abs(delta) / abs(total - delta), result


def test_integrated_gradients_completeness_against_independent_endpoints(gpt2_pair):
    model, tok = gpt2_pair
    explainer = AttributionExplainer(model, tok)
    rel, result = _relative_gap(explainer, n_steps=32, baseline="pad", granularity="token")
    assert rel < 1e-2
    # f(baseline): every content token replaced by the pad token, computed here from ids.
    enc = _encode(tok, Granularity.TOKEN)
    ids = enc.input_ids.clone()
    ids[enc.unit_of_token >= 0] = tok.pad_token_id
    with torch.no_grad():
        f_x = float(_target_log_probs(model, enc, model.get_input_embeddings()(enc.input_ids[None])).sum())
        f_b = float(_target_log_probs(model, enc, model.get_input_embeddings()(ids[None])).sum())
    assert result.metadata.target_log_prob == pytest.approx(f_x, rel=1e-5)
    assert sum(_scores(result)) - (f_x - f_b) == pytest.approx(result.metadata.convergence_delta, abs=1e-5)
    assert result.metadata.params["baseline_embedding"].startswith("pad token")


@pytest.mark.parametrize(
    ("pair", "baseline"), [("gpt2_pair", "pad"), ("gpt2_pair", "zero"), ("qwen_pair", "eos")]
)
def test_integrated_gradients_error_shrinks_with_n_steps(request, pair, baseline):
    explainer = AttributionExplainer(*request.getfixturevalue(pair))
    # The trapezoid rule's error falls like 1/n^2: visible at every step count.
    errors = [
        _relative_gap(explainer, n_steps=n, baseline=baseline, integration="riemann_trapezoid")[0]
        for n in (8, 32, 128)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02
    # Gauss-Legendre (the default) is already well converged at the default step count.
    assert _relative_gap(explainer, baseline=baseline)[0] < 0.01


def test_integrated_gradients_warns_when_not_converged(qwen_explainer):
    # tiny Qwen3 has an all-zero pad embedding and RMSNorm: the path from zero is hard.
    rel, result = _relative_gap(qwen_explainer, n_steps=4, baseline="zero")
    assert rel > 0.05
    assert any("has not converged" in w for w in result.metadata.warnings)
    rel, result = _relative_gap(qwen_explainer, n_steps=32, baseline="eos")
    assert not result.metadata.warnings


def test_integrated_gradients_completeness_on_the_demo_model(demo_explainer):
    errors = [_relative_gap(demo_explainer, n_steps=n, granularity="word")[0] for n in (4, 8, 32)]
    assert errors[2] < 0.05
    assert errors[0] > errors[2]


def test_template_tokens_are_fixed_and_unscored(qwen_pair):
    from fairforge_attr.engine.gradients import ItemEmbeddings

    model, tok = qwen_pair
    explainer = AttributionExplainer(model, tok)
    enc = _encode(tok, Granularity.TOKEN)
    obj = ItemEmbeddings(explainer.engine, enc)
    varied = set(obj.positions.tolist())
    assert varied == {t for u in enc.units for t in u.token_indices}
    template = [t for t in range(enc.prompt_length) if t not in varied]
    assert {"<|im_start|>", "<|im_end|>"} <= {tok.decode([int(enc.input_ids[t])]) for t in template}
    assert all(t < enc.prompt_length for t in varied)  # nor is the target ever an input
    # Moving only the template's embeddings leaves the objective's input untouched: the
    # gradient w.r.t. those positions never enters any score (checked through completeness:
    # all of f(x) - f(baseline) is carried by the content tokens).
    rel, _ = _relative_gap(explainer, n_steps=32, baseline="eos", granularity="token")
    assert rel < 1e-2


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients", "smooth_grad"])
def test_word_scores_are_sums_of_their_token_scores(qwen_pair, method):
    model, tok = qwen_pair
    explainer = AttributionExplainer(model, tok)
    words, tokens = _encode(tok, Granularity.WORD), _encode(tok, Granularity.TOKEN)
    assert {t for u in words.units for t in u.token_indices} == {
        t for u in tokens.units for t in u.token_indices
    }
    by_token = {
        u.token_indices[0]: a.score
        for u, a in zip(
            tokens.units,
            explainer.explain(
                FRANCE, FRANCE_TARGET, method=method, granularity="token", **_opts(method)
            ).attributions,
        )
    }
    word_result = explainer.explain(FRANCE, FRANCE_TARGET, method=method, granularity="word", **_opts(method))
    expected = [sum(by_token[t] for t in u.token_indices) for u in words.units]
    assert _scores(word_result) == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_square_grad_splits_into_smooth_grad_and_var_grad(qwen_explainer):
    """Per token: E||g||^2 = ||E g||^2 + E||g - E g||^2 (same seed, same noise)."""
    run = {
        m: torch.tensor(
            _scores(qwen_explainer.explain(FRANCE, FRANCE_TARGET, method=m, granularity="token", seed=2))
        )
        for m in ("smooth_grad", "square_grad", "var_grad")
    }
    assert torch.allclose(run["square_grad"] ** 2, run["smooth_grad"] ** 2 + run["var_grad"] ** 2, rtol=1e-3)
    assert (run["var_grad"] > 0).all()


def test_counts_are_honest_and_chunking_does_not_change_scores(qwen_pair):
    model, tok = qwen_pair
    seq_len = _encode(tok, Granularity.WORD).seq_len
    big = AttributionExplainer(model, tok)
    small = AttributionExplainer(model, tok, token_budget=3 * seq_len)  # 3 sequences a pass
    a = big.explain(FRANCE, FRANCE_TARGET, method="integrated_gradients", n_steps=8)
    b = small.explain(FRANCE, FRANCE_TARGET, method="integrated_gradients", n_steps=8)
    assert (a.metadata.n_forward, a.metadata.n_backward, a.metadata.n_sequences) == (2, 1, 10)
    assert (b.metadata.n_forward, b.metadata.n_backward, b.metadata.n_sequences) == (4, 3, 10)
    assert _scores(a) == pytest.approx(_scores(b), rel=1e-4, abs=1e-7)
    for method in ("gradient_shap", "smooth_grad"):
        r = small.explain(FRANCE, FRANCE_TARGET, method=method, n_samples=7)
        # ceil(7 / 3) forward+backward passes, plus one forward for f(x).
        assert (r.metadata.n_forward, r.metadata.n_backward, r.metadata.n_sequences) == (4, 3, 8)
    r = small.explain(FRANCE, FRANCE_TARGET, method="saliency", per_target_token=True)
    n_target = r.metadata.n_target_tokens
    assert r.metadata.n_backward == math.ceil((n_target + 1) / 3)


def test_out_of_memory_halves_the_chunk_and_retries(qwen_pair):
    model, tok = qwen_pair
    model = copy.deepcopy(model)
    reference = AttributionExplainer(*qwen_pair).explain(
        FRANCE, FRANCE_TARGET, method="integrated_gradients", n_steps=8
    )

    def fake_oom(module, args, kwargs):
        if kwargs["inputs_embeds"].shape[0] > 2 and torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    model.register_forward_pre_hook(fake_oom, with_kwargs=True)
    explainer = AttributionExplainer(model, tok)
    result = explainer.explain(FRANCE, FRANCE_TARGET, method="integrated_gradients", n_steps=8)
    assert _scores(result) == pytest.approx(_scores(reference), rel=1e-4, abs=1e-7)
    assert result.metadata.n_backward == 4  # 8 steps in passes of 2; failed passes not counted
    assert explainer.engine.token_budget < AttributionExplainer(*qwen_pair).engine.token_budget


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    ("method", "options"), [("saliency", {}), ("integrated_gradients", {"baseline": "eos"})]
)
def test_half_precision_gradients_match_float32(qwen_pair, dtype, method, options):
    model, tok = qwen_pair
    half = AttributionExplainer(copy.deepcopy(model).to(dtype), tok)
    h = half.explain(FRANCE, FRANCE_TARGET, method=method, **options)
    f = AttributionExplainer(model, tok).explain(FRANCE, FRANCE_TARGET, method=method, **options)
    assert not h.metadata.recomputed_in_float32
    assert h.metadata.dtype == str(dtype).removeprefix("torch.")
    peak = max(abs(s) for s in _scores(f))
    assert max(abs(x - y) for x, y in zip(_scores(h), _scores(f))) < 0.05 * peak


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "var_grad"])
def test_overflow_in_half_precision_is_recomputed_in_float32(qwen_pair, method):
    model, tok = qwen_pair
    half = copy.deepcopy(model).to(torch.bfloat16)

    def overflow(module, args, output):  # what a float16 activation overflow looks like
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.dtype != torch.float32:
            hidden = hidden.clone()
            hidden[..., 0] = float("inf")
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden
        return None

    half.model.layers[0].register_forward_hook(overflow)
    explainer = AttributionExplainer(half, tok)
    with pytest.warns(RuntimeWarning, match="recomputing them in float32"):
        result = explainer.explain(
            FRANCE, FRANCE_TARGET, method=method, per_target_token=True, **_opts(method)
        )
    meta = result.metadata
    assert meta.recomputed_in_float32 and meta.dtype == "float32"
    assert all(math.isfinite(s) for s in _scores(result))
    assert all(math.isfinite(s) for row in result.per_target_token.scores for s in row)
    # The recomputation runs on a float32 copy of the bfloat16 weights: compare with that.
    reference = AttributionExplainer(copy.deepcopy(half).float(), tok).explain(
        FRANCE, FRANCE_TARGET, method=method, per_target_token=True, **_opts(method)
    )
    assert _scores(result) == pytest.approx(_scores(reference), rel=1e-4, abs=1e-7)
