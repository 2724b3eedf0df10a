import pytest

from fairforge_attr import (
    AttributionExplainer,
    AttributionMethod,
    Granularity,
    InvalidRequestError,
    TokenizerTooNewError,
    UnknownChoiceError,
)
from tests.conftest import FRANCE, FRANCE_TARGET


def test_method_and_granularity_accept_strings(qwen_explainer):
    r = qwen_explainer.explain(
        messages=FRANCE, target=FRANCE_TARGET, method="Occlusion", granularity="SENTENCE"
    )
    assert r.method is AttributionMethod.OCCLUSION and r.granularity is Granularity.SENTENCE
    assert AttributionMethod("lime") is AttributionMethod.LIME and Granularity("word") is Granularity.WORD


def test_unknown_names_list_the_valid_ones(qwen_explainer):
    with pytest.raises(UnknownChoiceError, match="occlusion"):
        qwen_explainer.explain(messages=FRANCE, target=FRANCE_TARGET, method="shapley-magic")
    with pytest.raises(UnknownChoiceError, match="paragraph, message"):
        qwen_explainer.explain(messages=FRANCE, target=FRANCE_TARGET, granularity="chapter")
    with pytest.raises(UnknownChoiceError, match="n_samples"):
        qwen_explainer.explain(messages=FRANCE, target=FRANCE_TARGET, method="lime", n_step=3)


def test_bad_option_values_are_explained(qwen_explainer):
    with pytest.raises(InvalidRequestError, match="n_samples"):
        qwen_explainer.explain(messages=FRANCE, target=FRANCE_TARGET, method="lime", n_samples=0)
    with pytest.raises(InvalidRequestError, match="exactly one token"):
        qwen_explainer.explain(
            messages=FRANCE, target=FRANCE_TARGET, method="occlusion", baseline="two words here"
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"messages": [], "target": "x"}, "messages' is empty"),
        ({"messages": FRANCE, "target": "   "}, "target' is empty"),
        ({"messages": [{"role": "user"}], "target": "x"}, "content"),
        ({"messages": [{"role": "user", "content": 3}], "target": "x"}, "content"),
        ({"target": "x"}, "exactly one of"),
        ({"messages": FRANCE, "prompt": "hi", "target": "x"}, "exactly one of"),
    ],
)
def test_bad_requests(qwen_explainer, kwargs, match):
    with pytest.raises(InvalidRequestError, match=match):
        qwen_explainer.explain(method="occlusion", **kwargs)


def test_batch_names_the_bad_item(qwen_explainer):
    with pytest.raises(InvalidRequestError, match="item 1"):
        qwen_explainer.explain_batch([(FRANCE, "Paris."), (FRANCE, "")], method="occlusion")


def test_iter_explain_keeps_going_past_bad_items(qwen_explainer):
    outcomes = list(
        qwen_explainer.iter_explain([(FRANCE, "Paris."), "garbage", (FRANCE, "")], method="occlusion")
    )
    assert [o.index for o in outcomes] == [0, 1, 2]
    assert outcomes[0].result is not None
    assert outcomes[1].error is not None and outcomes[2].error is not None


def test_generates_a_target_when_none_given(demo_explainer):
    r = demo_explainer.explain(messages=FRANCE, method="occlusion")
    assert r.metadata.target_generated
    assert r.target == FRANCE_TARGET


def test_tokenizer_too_new_is_explained(tmp_path, gpt2_pair):
    import json

    model, tok = gpt2_pair
    tok.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    spec["model"]["type"] = "BPE_FROM_THE_FUTURE"
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(TokenizerTooNewError, match="pip install -U tokenizers"):
        AttributionExplainer(str(tmp_path))


def test_requests_carry_a_contrast_in_every_shape():
    from fairforge_attr.request import coerce_request

    msgs = [{"role": "user", "content": "Hi"}]
    assert coerce_request((msgs, "Hey", "Go")).contrast == "Go"
    assert coerce_request(("raw prompt", "Hey", "Go")).prompt == "raw prompt"
    assert coerce_request({"messages": msgs, "target": "Hey", "contrast": "Go"}).contrast == "Go"
    assert coerce_request((msgs, "Hey")).contrast is None
    with pytest.raises(
        InvalidRequestError, match=r"unknown field\(s\) \['answer'\]; use messages, prompt, target, contrast"
    ):
        coerce_request({"messages": msgs, "answer": "Hey"})
    with pytest.raises(InvalidRequestError, match="'contrast' equals 'target'"):
        coerce_request((msgs, "Hey", "Hey"))
