"""Attention against a shared prefix in two parts (engine/split_attention.py): the same numbers
as transformers' sdpa with the full mask, and really used by the engine's prefix passes."""

from __future__ import annotations

import pytest
import torch

from fairforge_attr.engine import Engine, ScoreRequest, resolve_baseline
from fairforge_attr.engine import split_attention as sa
from fairforge_attr.methods.perturbation import occlusion_masks
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message


class _Module:  # what transformers passes as ``module``: only the GQA group count is read
    def __init__(self, groups: int) -> None:
        self.num_key_value_groups = groups
        self.is_causal = True


def _full_mask(rows: int, prefix: int, s: int, hidden: torch.Tensor) -> torch.Tensor:
    """[rows, 1, s, prefix + s] bool: causal over the suffix, ``hidden`` suffix keys masked."""
    causal = torch.ones(s, prefix + s, dtype=torch.bool).tril(prefix)
    keys = torch.cat([torch.ones(rows, prefix, dtype=torch.bool), ~hidden], 1)
    return (causal.unsqueeze(0) & keys.unsqueeze(1)).unsqueeze(1)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("hide", [False, True])
def test_two_parts_equal_one_masked_sdpa(groups, hide):
    torch.manual_seed(0)
    rows, heads, prefix, s, dim = 3, 4, 11, 7, 8
    q = torch.randn(rows, heads, s, dim)
    k = torch.randn(1, heads // groups, prefix + s, dim).expand(rows, -1, -1, -1).clone()
    v = torch.randn(1, heads // groups, prefix + s, dim).expand(rows, -1, -1, -1).clone()
    k[:, :, prefix:] = torch.randn(rows, heads // groups, s, dim)  # each row's own keys differ
    v[:, :, prefix:] = torch.randn(rows, heads // groups, s, dim)
    hidden = torch.zeros(rows, s, dtype=torch.bool)
    if hide:
        hidden[0, 0] = True  # the first suffix query sees none of its own keys
        hidden[1, 3:5] = True
    mask = _full_mask(rows, prefix, s, hidden)
    module = _Module(groups)
    want, _ = sa._sdpa()(module, q, k, v, mask, scaling=0.3)
    sa._state.prefix, sa._state.causal_only = prefix, not hide
    try:
        got, _ = sa.prefix_attention(module, q, k, v, mask, scaling=0.3)
    finally:
        sa._state.prefix, sa._state.causal_only = 0, False
    assert got.shape == want.shape == (rows, s, heads, dim)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_outside_a_shared_prefix_it_is_transformers_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    got, _ = sa.prefix_attention(_Module(1), q, k, v, None)
    want, _ = sa._sdpa()(_Module(1), q, k, v, None)
    assert torch.equal(got, want)


@pytest.mark.parametrize("pair", ["qwen_pair", "gpt2_pair", "demo_pair"])
@pytest.mark.parametrize("baseline", [None, "hide"])
def test_the_engine_uses_it_and_scores_do_not_change(pair, baseline, request, monkeypatch):
    model, tok = request.getfixturevalue(pair)
    msgs = [
        Message(role="system", content="Answer concisely."),
        Message(role="user", content="Why is the sky blue? The sky appears blue due to Rayleigh scattering."),
    ]
    enc = encode(tok, target="Rayleigh scattering.", granularity="word", messages=msgs)
    plain = Engine(model, token_budget=300, prefix_cache=False)
    req = ScoreRequest(enc, occlusion_masks(enc.n_units), resolve_baseline(tok, baseline, plain.vocab_size))
    calls = []
    real = sa._lse_attention
    monkeypatch.setattr(sa, "_lse_attention", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    got = Engine(model, token_budget=300).score([req])[0]
    assert calls, "the prefix passes did not go through the two-part attention"
    assert model.config._attn_implementation == "sdpa"  # restored after every pass
    want = plain.score([req])[0]
    assert torch.allclose(got.log_probs, want.log_probs, atol=1e-4), (
        (got.log_probs - want.log_probs).abs().max()
    )


def test_models_not_on_sdpa_keep_their_attention(qwen_pair, monkeypatch):
    model, _ = qwen_pair
    monkeypatch.setattr(model.config, "_attn_implementation_internal", "eager")
    assert not sa.supported(model)
    with sa.shared_prefix(model, 5, causal_only=True):
        assert model.config._attn_implementation == "eager"
