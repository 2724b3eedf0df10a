"""Input that used to stop a whole batch (or hang on it): each bad line is that line's error."""

from __future__ import annotations

import json
import time

import pytest

from fairforge_attr import InvalidRequestError, PromptTooLongError
from fairforge_attr.io import iter_jsonl, parse_batch_item
from tests.conftest import FRANCE, FRANCE_TARGET

GOOD = {"id": "ok", "prompt": "The capital of France is", "target": " Paris."}


def _lines(tmp_path, *texts: str | bytes) -> list:
    path = tmp_path / "in.jsonl"
    raw = b"".join((t if isinstance(t, bytes) else t.encode("utf-8")) + b"\n" for t in texts)
    path.write_bytes(raw)
    return list(iter_jsonl(path))


def test_a_utf8_bom_is_accepted(tmp_path):
    lines = _lines(tmp_path, b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), json.dumps(GOOD))
    assert [x.error for x in lines] == [None, None] and lines[0].value == GOOD


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"prompt": "x", "target": "y", "score": NaN}', "NaN"),
        ('{"prompt": "x", "target": "y", "score": -Infinity}', "Infinity"),
        ('{"prompt": "x", "target": "y", "score": 1e999}', "out of range"),
        ("[" * 100_000 + "]" * 100_000, "nesting too deep"),
        ('{"prompt": "x", "target": "y", "n": ' + "7" * 5000 + "}", "number too long"),
        ('{"prompt": "x \\ud800 y", "target": "y"}', "unpaired surrogate"),
        ('{"prompt": "x", "target": "y", "meta": {"k": ["\\udfff"]}}', "unpaired surrogate"),
        ('{"id": "\\ud83d", "prompt": "x", "target": "y"}', "unpaired surrogate"),
    ],
)
def test_each_hostile_line_is_an_error_with_its_line_number(tmp_path, text, needle):
    lines = _lines(tmp_path, json.dumps(GOOD), text, json.dumps(GOOD))
    assert [x.line for x in lines] == [1, 2, 3]
    assert lines[0].error is None and lines[2].error is None
    assert needle in lines[1].error
    item = parse_batch_item(lines[1])
    assert item.id == "line-2" and needle in item.error  # never the bad value


def test_a_paired_surrogate_is_a_character(tmp_path):
    (line,) = _lines(tmp_path, '{"prompt": "x \\ud83d\\ude00", "target": "y"}')
    assert line.error is None and line.value["prompt"] == "x 😀"


def test_unencodable_text_is_the_items_error_never_the_runs(qwen_explainer):
    with pytest.raises(InvalidRequestError, match="unpaired surrogate"):
        qwen_explainer.explain([{"role": "user", "content": "Hi \ud800"}], "there", method="occlusion")
    outcomes = list(
        qwen_explainer.iter_explain(
            [(FRANCE, FRANCE_TARGET), ([{"role": "user", "content": "x\udc00"}], "y"), (FRANCE, "Paris.")],
            method="occlusion",
        )
    )
    assert [o.error is None for o in outcomes] == [True, False, True]


def test_any_exception_while_encoding_one_item_is_that_items_error(qwen_explainer, monkeypatch):
    from fairforge_attr import api

    real = api.encode

    def encode(tokenizer, **kwargs):
        if kwargs.get("target") == "boom":
            raise TypeError("the tokenizer fell over")
        return real(tokenizer, **kwargs)

    monkeypatch.setattr(api, "encode", encode)
    outcomes = list(
        qwen_explainer.iter_explain(
            [(FRANCE, "Paris."), (FRANCE, "boom"), (FRANCE, "Paris.")], method="occlusion"
        )
    )
    assert outcomes[0].result is not None and outcomes[2].result is not None
    assert isinstance(outcomes[1].error, InvalidRequestError)
    assert "TypeError" in str(outcomes[1].error) and "tokenizer fell over" in str(outcomes[1].error)


def test_a_huge_prompt_is_rejected_before_it_is_tokenized(qwen_explainer):
    text = "What is the capital of France? " * 160_000  # 5 MB; took 14 s and 0.8 GB to reject
    start = time.perf_counter()
    with pytest.raises(PromptTooLongError, match="1024"):
        qwen_explainer.explain([{"role": "user", "content": text}], "Paris.", method="occlusion")
    assert time.perf_counter() - start < 2.0
    start = time.perf_counter()
    with pytest.raises(PromptTooLongError):
        qwen_explainer.explain(prompt="Paris. " * 5, target="x " * 2_000_000, method="occlusion")
    assert time.perf_counter() - start < 2.0


def test_a_prompt_just_under_the_limit_still_runs(qwen_explainer):
    # the cheap bound never rejects what fits: 150 words of a few characters each
    result = qwen_explainer.explain(
        [{"role": "user", "content": "France is big. " * 50}], "Paris.", method="occlusion"
    )
    assert result.metadata.n_prompt_tokens < 1024


def test_the_cheap_bound_never_refuses_text_that_fits():
    """A tokenizer that drops whitespace turns many characters into few tokens: the bound on
    characters alone would refuse it; the prefix check does not."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from fairforge_attr.prompt import check_length

    core = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")
    check_length(tokenizer, "a" + " " * 50_000 + "b", "a", max_length=10)  # 3 tokens: fits
    with pytest.raises(PromptTooLongError, match="limit of 10"):
        check_length(tokenizer, "a " * 50_000, "a", max_length=10)
