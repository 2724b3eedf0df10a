"""Sharing a chunk's prefix through the model's cache must not change a score (1e-4), must
really skip work, and must fall back to plain passes where a model cannot do it."""

import pytest
import torch

from fairforge_attr.engine import Engine, ScoreRequest, resolve_baseline
from fairforge_attr.engine.packing import Budgets, plan_chunks, row_table
from fairforge_attr.methods.perturbation import occlusion_masks
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from fairforge_attr.types import Granularity

LONG = (
    "Answer concisely with 3 bullet points. Explain Albert Einstein's theory of relativity. "
    "Machine learning is a subset of AI that enables systems to learn from data. "
    "Why is the sky blue? The sky appears blue due to Rayleigh scattering of sunlight."
)


def _requests(tok, vocab, baseline=None, n_random=24):
    g = torch.Generator().manual_seed(0)
    out = []
    for system, user, target in [
        ("Be brief.", LONG, "The sky appears blue."),
        ("Answer now.", "What is the capital of France?", "The capital of France is Paris."),
    ]:
        enc = encode(
            tok,
            target=target,
            granularity=Granularity.WORD,
            messages=[Message(role="system", content=system), Message(role="user", content=user)],
        )
        masks = torch.cat(
            [occlusion_masks(enc.n_units), torch.rand(n_random, enc.n_units, generator=g) > 0.3]
        )
        out.append(ScoreRequest(enc, masks, resolve_baseline(tok, baseline, vocab)))
    return out


@pytest.mark.parametrize("pair", ["qwen_pair", "gpt2_pair", "demo_pair"])
@pytest.mark.parametrize("baseline", [None, "hide"])
def test_prefix_cache_equals_plain_passes(pair, baseline, request):
    model, tok = request.getfixturevalue(pair)
    for budget in (300, 100_000):  # small chunks (many prefixes) and one big packed chunk
        cached = Engine(model, token_budget=budget)
        plain = Engine(model, token_budget=budget, prefix_cache=False)
        reqs = _requests(tok, cached.vocab_size, baseline)
        for got, want in zip(cached.score(reqs), plain.score(reqs)):
            assert torch.allclose(got.log_probs, want.log_probs, atol=1e-4), (
                (got.log_probs - want.log_probs).abs().max()
            )
        if budget == 300:
            assert cached.stats.prefix_tokens_saved > 0
            assert cached.stats.tokens < plain.stats.tokens
        assert plain.stats.prefix_tokens_saved == 0


def test_chunks_share_the_prefix_their_rows_have_in_common(qwen_pair):
    model, tok = qwen_pair
    engine = Engine(model)
    (req, _) = _requests(tok, engine.vocab_size, n_random=0)
    uniq = torch.unique(req.masks.to(torch.uint8), dim=0).bool()
    table = row_table(req.encoded, uniq, req.baseline)
    chunks = list(plan_chunks([table], [0], Budgets(400, 10**9, engine.vocab_size, True)))
    assert sum(c.n_rows for c in chunks) == uniq.shape[0]
    first_token = [min(u.token_indices) for u in req.encoded.units]
    for chunk in chunks:
        (_, start, end) = chunk.segments[0]
        if chunk.prefix:
            rows = uniq[start:end]
            # every unit whose first token lies in the prefix is kept by all rows or by none
            for u, ft in enumerate(first_token):
                if ft < chunk.prefix:
                    assert rows[:, u].all() or not rows[:, u].any()
            assert chunk.tokens() <= 400
    assert any(c.prefix for c in chunks)


def test_a_model_that_fails_with_a_cache_falls_back_to_plain_passes(qwen_pair):
    model, tok = qwen_pair
    engine = Engine(model, token_budget=300)
    reqs = _requests(tok, engine.vocab_size)
    want = Engine(model, token_budget=300, prefix_cache=False).score(reqs)

    def broken(*args, **kwargs):
        raise ValueError("this model cannot take a cache")

    engine.prefix.run_prefix = broken
    with pytest.warns(RuntimeWarning, match="without prefix sharing"):
        got = engine.score(reqs)
    assert not engine.prefix.supported
    for g, w in zip(got, want):
        assert torch.allclose(g.log_probs, w.log_probs, atol=1e-5)


def test_models_without_a_cache_argument_are_scored_plainly(qwen_pair):
    model, tok = qwen_pair

    class NoCache(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def get_output_embeddings(self):
            return self.inner.get_output_embeddings()

        def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)

    engine = Engine(NoCache(model), token_budget=300)
    assert not engine.prefix.supported
    reqs = _requests(tok, engine.vocab_size)
    want = Engine(model, token_budget=300, prefix_cache=False).score(reqs)
    for g, w in zip(engine.score(reqs), want):
        assert torch.allclose(g.log_probs, w.log_probs, atol=1e-5)


def test_out_of_memory_with_a_shared_prefix_splits_and_matches(qwen_pair):
    model, tok = qwen_pair
    engine = Engine(model, token_budget=600)
    reqs = _requests(tok, engine.vocab_size)
    want = Engine(model, token_budget=600, prefix_cache=False).score(reqs)
    real_forward = model.forward

    def flaky(*args, **kwargs):
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(*args, **kwargs)

    model.forward = flaky
    try:
        got = engine.score(reqs)
    finally:
        del model.forward
    for g, w in zip(got, want):
        assert torch.allclose(g.log_probs, w.log_probs, atol=1e-4)
    assert engine.stats.prefix_tokens_saved > 0
    assert engine.token_budget < 600


@pytest.mark.parametrize("pair", ["qwen_pair", "gpt2_pair", "demo_pair"])
def test_a_cached_pass_does_not_keep_the_rows_keys_and_values(pair, request):
    """The rows' own keys/values live only inside each layer: after the pass the cache holds
    the prefix alone (else a cached chunk would hold all layers' keys/values at once)."""
    from fairforge_attr.engine.prefix_cache import PrefixCache

    model, tok = request.getfixturevalue(pair)
    prefix = PrefixCache(model)
    ids = tok("The capital of France is Paris, and the sky is blue.", return_tensors="pt").input_ids
    p, rows = 4, 3
    with torch.inference_mode():
        cache = prefix.expand(prefix.run_prefix(ids[:, :p], None), rows)
        rest = ids[:, p:].expand(rows, -1)
        positions = torch.arange(p, ids.shape[1]).unsqueeze(0)
        cached = model(
            input_ids=rest, position_ids=positions, use_cache=True, **{prefix.cache_kwarg: cache}
        ).logits
        plain = model(input_ids=ids, use_cache=False).logits[:, p:]
    assert torch.allclose(cached, plain.expand(rows, -1, -1), atol=1e-4)
    assert cache.get_seq_length() == p
    assert all(layer.keys.shape[-2] == p for layer in cache.layers)
