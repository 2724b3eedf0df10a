"""Per-variant prefix reuse (engine/anchor.py): the unperturbed prompt runs once and every
variant only from its first changed token on. Scores equal plain passes (1e-4) and the tokens
run are what the plan says, no more."""

from __future__ import annotations

import pytest
import torch

from fairforge_attr.engine import Engine, ScoreRequest, resolve_baseline
from fairforge_attr.engine.anchor import anchor_length, first_change_order, plan_anchored, worth_anchoring
from fairforge_attr.engine.packing import Budgets, row_table
from fairforge_attr.methods.perturbation import occlusion_masks
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from fairforge_attr.types import Granularity

SYSTEM = "Answer concisely with 3 bullet points."
USER = (
    "Explain Albert Einstein's theory of relativity. Machine learning is a subset of AI that "
    "enables systems to learn from data. Why is the sky blue? The sky appears blue due to "
    "Rayleigh scattering of sunlight. What is the capital of France?"
)
TARGET = "The capital of France is Paris."


def _encoded(tok, granularity=Granularity.WORD):
    msgs = [Message(role="system", content=SYSTEM), Message(role="user", content=USER)]
    return encode(tok, target=TARGET, granularity=granularity, messages=msgs)


def _late_masks(n_units: int) -> torch.Tensor:
    """Occlusion plus variants that remove two or three late units (refinement-like)."""
    extra = torch.ones(6, n_units, dtype=torch.bool)
    for r in range(6):
        extra[r, n_units - 2 - 2 * r :: 3] = False
    return torch.cat([occlusion_masks(n_units), extra])


@pytest.mark.parametrize("pair", ["qwen_pair", "gpt2_pair", "demo_pair"])
@pytest.mark.parametrize("baseline", [None, "hide"])
def test_anchored_scores_equal_plain_passes(pair, baseline, request):
    model, tok = request.getfixturevalue(pair)
    enc = _encoded(tok)
    plain = Engine(model, token_budget=400, prefix_cache=False)
    req = ScoreRequest(enc, _late_masks(enc.n_units), resolve_baseline(tok, baseline, plain.vocab_size))
    anchored = Engine(model, token_budget=400)
    got, want = anchored.score([req])[0], plain.score([req])[0]
    assert torch.allclose(got.log_probs, want.log_probs, atol=1e-4), (
        (got.log_probs - want.log_probs).abs().max()
    )
    assert got.n_sequences == want.n_sequences
    before = Engine(model, token_budget=400, anchor=False)  # chunks share their own prefix only
    assert torch.allclose(before.score([req])[0].log_probs, want.log_probs, atol=1e-4)
    # every variant ran only from its chunk's first change: far fewer tokens than plain passes
    assert anchored.stats.tokens < 0.75 * plain.stats.tokens
    assert anchored.stats.tokens < before.stats.tokens


def test_tokens_run_are_the_anchor_plus_each_chunks_suffix(qwen_pair):
    model, tok = qwen_pair
    enc = _encoded(tok)
    engine = Engine(model, token_budget=400)
    baseline = resolve_baseline(tok, None, engine.vocab_size)
    masks = occlusion_masks(enc.n_units)
    uniq = torch.unique(masks.to(torch.uint8), dim=0).bool()
    table = row_table(enc, uniq, baseline)
    budgets = Budgets(400, engine.logit_budget, engine.vocab_size, True)
    assert worth_anchoring(table, budgets)
    table = row_table(enc, uniq[first_change_order(table)], baseline)
    assert table.first_change == sorted(table.first_change)  # grouped by first change
    chunks = list(plan_anchored(0, table, budgets))
    assert sum(c.n_rows for c in chunks) == table.n_variants
    for c in chunks:
        ((_, start, _),) = c.segments
        assert c.anchored and c.prefix == min(table.first_change[start], table.max_prefix)
        assert c.tokens() == c.n_rows * (enc.seq_len - c.prefix) <= 400
    engine.score([ScoreRequest(enc, masks, baseline)])
    assert engine.stats.tokens == anchor_length(table) + sum(c.tokens() for c in chunks)
    assert engine.stats.calls == 1 + len(chunks)  # the anchor once, then one pass per chunk
    ideal = sum(enc.seq_len - min(fc, table.max_prefix) for fc in table.first_change)
    assert engine.stats.tokens < 1.25 * ideal + anchor_length(table)


def test_occlusion_results_and_batches_are_unchanged(qwen_pair):
    """Through the API: anchored single items and packed batches give the plain scores."""
    from fairforge_attr import AttributionExplainer

    model, tok = qwen_pair
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    short = [{"role": "user", "content": "What is the capital of France?"}]
    fast = AttributionExplainer(model, tok, token_budget=400)
    slow = AttributionExplainer(model, tok, token_budget=400)
    slow.engine.prefix.disable()
    for baseline in (None, "hide"):
        items = [(msgs, TARGET), (short, TARGET), (msgs, "Paris.")]
        got = fast.explain_batch(items, method="occlusion", baseline=baseline)
        want = slow.explain_batch(items, method="occlusion", baseline=baseline)
        for g, w in zip(got, want):
            for a, b in zip(g.attributions, w.attributions):
                assert a.score == pytest.approx(b.score, abs=1e-4)
            assert g.metadata.target_log_prob == pytest.approx(w.metadata.target_log_prob, abs=1e-4)


def test_random_masks_and_small_items_are_not_anchored(qwen_pair):
    model, tok = qwen_pair
    enc = _encoded(tok)
    engine = Engine(model, token_budget=400)
    baseline = resolve_baseline(tok, None, engine.vocab_size)
    budgets = Budgets(400, engine.logit_budget, engine.vocab_size, True)
    random = torch.rand(40, enc.n_units, generator=torch.Generator().manual_seed(0)) > 0.5
    assert not worth_anchoring(row_table(enc, random, baseline), budgets)
    few = occlusion_masks(enc.n_units)[:3]  # 3 rows do not fill a pass of 400 tokens
    assert not worth_anchoring(row_table(enc, few, baseline), budgets)
    assert not worth_anchoring(
        row_table(enc, occlusion_masks(enc.n_units), baseline), Budgets(400, 10**9, 1, False)
    )


def test_a_cache_that_cannot_be_cut_falls_back_to_shared_prefixes(qwen_pair, monkeypatch):
    model, tok = qwen_pair
    enc = _encoded(tok)
    engine = Engine(model, token_budget=400)
    req = ScoreRequest(enc, occlusion_masks(enc.n_units), resolve_baseline(tok, None, engine.vocab_size))
    want = Engine(model, token_budget=400, prefix_cache=False).score([req])[0]
    monkeypatch.setattr(type(engine.prefix), "cut", staticmethod(lambda cache, length: None))
    got = engine.score([req])[0]
    assert torch.allclose(got.log_probs, want.log_probs, atol=1e-4)
    assert engine.stats.prefix_tokens_saved > 0  # still shares each chunk's prefix


def test_out_of_memory_splits_anchored_chunks_and_matches(qwen_pair):
    model, tok = qwen_pair
    enc = _encoded(tok)
    engine = Engine(model, token_budget=800)
    req = ScoreRequest(enc, _late_masks(enc.n_units), resolve_baseline(tok, "hide", engine.vocab_size))
    want = Engine(model, token_budget=800, prefix_cache=False).score([req])[0]
    real_forward = model.forward

    def flaky(*args, **kwargs):
        if kwargs["input_ids"].shape[0] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(*args, **kwargs)

    model.forward = flaky
    try:
        got = engine.score([req])[0]
    finally:
        del model.forward
    assert torch.allclose(got.log_probs, want.log_probs, atol=1e-4)
    assert engine.token_budget < 800
