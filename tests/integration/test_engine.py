"""The engine's batching must never change a score: chunks, packing, OOM retries, dedup."""

import pytest
import torch

from fairforge_attr.engine import Engine, ScoreRequest, resolve_baseline
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from fairforge_attr.types import Granularity


def _request(tok, content, target, vocab):
    enc = encode(
        tok, target=target, granularity=Granularity.WORD, messages=[Message(role="user", content=content)]
    )
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(12, enc.n_units, generator=g) > 0.5
    return ScoreRequest(enc, masks, resolve_baseline(tok, None, vocab))


def test_chunking_and_packing_do_not_change_scores(qwen_pair):
    model, tok = qwen_pair
    big = Engine(model, token_budget=100_000)
    vocab = big.vocab_size
    reqs = [
        _request(tok, "What is the capital of France?", "The capital of France is Paris.", vocab),
        _request(tok, "Why is the sky blue, tell me in detail please?", "Rayleigh scattering.", vocab),
    ]
    alone = [big.score([r])[0].log_probs for r in reqs]
    packed = big.score(reqs)
    tiny = Engine(model, token_budget=40).score(reqs)  # ~1 row per forward
    for a, p, t in zip(alone, packed, tiny):
        assert torch.allclose(a, p.log_probs, atol=1e-5)
        assert torch.allclose(a, t.log_probs, atol=1e-5)
    assert tiny[0].n_forward > packed[0].n_forward == 1


def test_identical_masks_are_scored_once(qwen_pair):
    model, tok = qwen_pair
    engine = Engine(model)
    req = _request(tok, "What is the capital of France?", "Paris.", engine.vocab_size)
    req.masks = torch.cat([req.masks, req.masks, req.masks])
    res = engine.score([req])[0]
    assert res.n_sequences == torch.unique(req.masks, dim=0).shape[0] <= 12
    assert res.log_probs.shape[0] == 36
    assert torch.equal(res.log_probs[:12], res.log_probs[12:24])


def test_out_of_memory_halves_the_chunk_and_retries(qwen_pair):
    model, tok = qwen_pair
    engine = Engine(model, token_budget=100_000)
    req = _request(tok, "What is the capital of France?", "Paris.", engine.vocab_size)
    expected = engine.score([req])[0].log_probs
    real_forward = model.forward
    calls = []

    def flaky(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        calls.append(rows)
        if rows > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(*args, **kwargs)

    model.forward = flaky
    try:
        got = engine.score([req])[0].log_probs
    finally:
        del model.forward
    assert torch.allclose(got, expected, atol=1e-5)
    succeeded = [c for c in calls if c <= 3]
    assert calls[0] > 3 and sum(succeeded) == calls[0]  # every row scored once, in smaller chunks
    assert engine.token_budget < 100_000  # later chunks start from what worked


def test_only_target_logits_are_computed(qwen_pair):
    model, tok = qwen_pair
    engine = Engine(model)
    req = _request(
        tok, "What is the capital of France?", "The capital of France is Paris.", engine.vocab_size
    )
    shapes = []
    hook = model.lm_head.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    try:
        engine.score([req])
    finally:
        hook.remove()
    n_target = req.encoded.n_target_tokens
    assert shapes and all(s[1] == n_target for s in shapes)


def test_one_sequence_that_does_not_fit_is_a_clear_error(qwen_pair):
    from fairforge_attr.errors import EngineOutOfMemoryError

    model, tok = qwen_pair
    engine = Engine(model)
    req = _request(tok, "What is it?", "Paris.", engine.vocab_size)
    req.masks = req.masks[:1]

    def oom(*a, **k):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    model.forward = oom
    try:
        with pytest.raises(EngineOutOfMemoryError, match="does not fit"):
            engine.score([req])
    finally:
        del model.forward
