"""Targets the model generates: batched greedy generation (left padding, end-of-turn stops)
gives every item the text and the scores it gets alone from ``explain(target=None)``."""

from __future__ import annotations

import pytest
import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.errors import InvalidRequestError, PromptTooLongError
from fairforge_attr.prompt import tokenize_prompt_ids
from fairforge_attr.request import make_request
from fairforge_attr.results import Message
from fairforge_attr.targets import generate_targets, stop_token_ids

QUESTIONS = [  # different prompt lengths, so a batch pads them
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": "Which is the largest ocean?"}],
    [{"role": "user", "content": "Who developed the theory of relativity?"}],
    [{"role": "user", "content": "What is the capital of Germany?"}],
]  # fmt: skip


def _prompts(explainer, questions=QUESTIONS) -> list[torch.Tensor]:
    return [tokenize_prompt_ids(explainer.tokenizer, messages=[Message(**m) for m in q]) for q in questions]


def _generate(explainer, prompts, max_new_tokens=24) -> list[torch.Tensor]:
    stop = stop_token_ids(explainer.model, explainer.tokenizer)
    return explainer.engine.generate(prompts, max_new_tokens, stop, explainer.tokenizer.pad_token_id)


def test_explain_batch_generate_equals_explain_without_target_one_by_one(demo_explainer):
    items = [(q, None) for q in QUESTIONS] + [(QUESTIONS[0], "Paris is the capital.")]
    batch = demo_explainer.explain_batch(items, generate=True, method="occlusion")
    for (messages, target), got in zip(items, batch):
        alone = demo_explainer.explain(messages, target, method="occlusion")
        assert got.target == alone.target
        assert got.metadata.target_generated is alone.metadata.target_generated is (target is None)
        want = [a.score for a in alone.attributions]
        # packed beside other items: equal up to the README's float-rounding bound (2e-5 of the peak)
        assert [a.score for a in got.attributions] == pytest.approx(want, abs=2e-5 * max(map(abs, want)))
    assert [r.target for r in batch][:2] == [
        "The capital of France is Paris.",
        "The Pacific Ocean is the largest ocean on Earth.",
    ]
    assert batch[4].target == "Paris is the capital."  # an item with a target keeps it


def test_without_generate_a_missing_target_is_an_error(demo_explainer):
    outcomes = list(
        demo_explainer.iter_explain([(QUESTIONS[0], None), (QUESTIONS[0], "Paris.")], method="occlusion")
    )
    assert isinstance(outcomes[0].error, InvalidRequestError)
    assert "no target" in str(outcomes[0].error) and "generate=True" in str(outcomes[0].error)
    assert outcomes[1].result is not None
    with pytest.raises(InvalidRequestError, match="item 0: no target"):
        demo_explainer.explain_batch([(QUESTIONS[0], None)], method="occlusion")


@pytest.mark.parametrize("pair", ["demo_pair", "gpt2_pair"])
def test_a_padded_batch_generates_what_each_prompt_generates_alone(request, pair):
    explainer = AttributionExplainer(*request.getfixturevalue(pair))
    prompts = _prompts(explainer)
    assert len({len(p) for p in prompts}) > 1  # the batch really is padded
    together = _generate(explainer, prompts)
    alone = [_generate(explainer, [p])[0] for p in prompts]
    assert all(torch.equal(a, b) for a, b in zip(together, alone))


def test_generation_stops_at_the_end_of_turn_token(demo_explainer):
    """The demo model ends a turn with <|im_end|> (its generation config's eos), not its
    tokenizer's eos; the answer stops there and holds no stop token."""
    stop = stop_token_ids(demo_explainer.model, demo_explainer.tokenizer)
    im_end = demo_explainer.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in stop and demo_explainer.tokenizer.eos_token_id in stop
    (new,) = _generate(demo_explainer, _prompts(demo_explainer)[:1], max_new_tokens=48)
    assert demo_explainer.tokenizer.decode(new) == "The capital of France is Paris."
    assert not set(new.tolist()) & set(stop)


def test_small_token_budgets_and_models_without_position_ids_give_the_same_texts(demo_pair):
    explainer = AttributionExplainer(*demo_pair)
    prompts = _prompts(explainer)
    reference = _generate(explainer, prompts)
    explainer.engine.token_budget = 40  # one or two prompts per generate call
    assert all(torch.equal(a, b) for a, b in zip(_generate(explainer, prompts), reference))
    explainer.engine._position_ids = False  # left padding would shift positions: same lengths only
    assert all(torch.equal(a, b) for a, b in zip(_generate(explainer, prompts), reference))


def test_the_length_limit_leaves_room_for_the_answer(demo_pair):
    explainer = AttributionExplainer(*demo_pair)
    requests = [
        make_request(QUESTIONS[0], None),
        make_request([{"role": "user", "content": "word " * 200}], None),
    ]
    n_prompt = len(_prompts(explainer, [QUESTIONS[0]])[0])
    texts = generate_targets(explainer.engine, explainer.tokenizer, requests, 48, max_length=n_prompt + 3)
    assert isinstance(texts[1], PromptTooLongError) and "no room for a generated target" in str(texts[1])
    # the first item gets the 3 tokens left, as it would alone
    alone = generate_targets(explainer.engine, explainer.tokenizer, requests[:1], 48, max_length=n_prompt + 3)
    assert texts[0] == alone[0] == "The capital of"


def test_generated_target_with_a_contrast(demo_explainer):
    """The model's own answer, against another one."""
    result = demo_explainer.explain(
        QUESTIONS[0], None, contrast="The capital of Germany is Berlin.", method="occlusion"
    )
    assert result.metadata.target_generated and result.target == "The capital of France is Paris."
    assert result.get_top_k(1)[0].text == "France"


def test_batch_job_rows_with_generate_equal_explain_without_target(demo_explainer, tmp_path):
    """The rows ``ffattr batch --generate`` writes: each generated row is what
    ``explain(target=None)`` gives for that line alone."""
    import json

    from fairforge_attr.batch import BatchJob
    from tests.cli.conftest import SAMPLE

    out = tmp_path / "out.jsonl"
    job = BatchJob(demo_explainer, out, method="occlusion", generate=True)
    job.run(SAMPLE / "demo_questions.jsonl")
    assert job.finish() == (8, 0)
    lines = [json.loads(line) for line in (SAMPLE / "demo_questions.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    generated = [(line, row) for line, row in zip(lines, rows) if row["target_generated"]]
    assert len(generated) == 6
    for line, row in generated:
        alone = demo_explainer.explain(
            line.get("messages"), None, prompt=line.get("prompt"), method="occlusion"
        )
        assert row["target"] == alone.target
        assert [u["score"] for u in row["units"]] == pytest.approx(
            [a.score for a in alone.attributions], abs=1e-5
        )
