"""Paragraph and message units: segmentation, encoding, per-role totals (issue 11, item 1)."""

from __future__ import annotations

import pytest

from fairforge_attr import AttributionResult
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from fairforge_attr.segment import PARAGRAPH_MAX_CHARS, message_spans, paragraph_spans, sentence_spans
from fairforge_attr.types import Granularity


def _texts(text, spans):
    return [text[s:e] for s, e in spans]


def test_paragraphs_split_at_blank_lines_and_trim():
    text = "  First para. Two sentences.\nSame para, next line.\n \t\n\nSecond para\r\n\r\nThird.  \n\n  "
    assert _texts(text, paragraph_spans(text)) == [
        "First para. Two sentences.\nSame para, next line.",
        "Second para",
        "Third.",
    ]
    assert paragraph_spans("") == [] and paragraph_spans(" \n\n \n") == []


def test_enormous_paragraphs_are_cut_at_sentence_boundaries():
    sentence = "The keeper wound the clockwork weight every four hours. "
    wall = sentence * 100  # ~5,600 characters, no blank line
    spans = paragraph_spans(wall)
    assert len(spans) == 3
    assert all(e - s <= PARAGRAPH_MAX_CHARS for s, e in spans)
    ends = {e for _, e in sentence_spans(wall)}
    assert all(e in ends for _, e in spans)  # pieces end where sentences end
    covered = "".join(wall[s:e] for s, e in spans)
    assert covered.replace(" ", "") == wall.replace(" ", "")  # nothing lost, nothing doubled
    # a single sentence longer than the threshold stays whole
    long_sentence = "word " * 600 + "end."
    assert _texts(long_sentence, paragraph_spans(long_sentence, max_chars=100)) == [long_sentence]


def test_message_span_is_the_trimmed_content():
    assert _texts("  Be brief. \n", message_spans("  Be brief. \n")) == ["Be brief."]
    assert message_spans("   ") == []


def test_granularities_are_ordered_finest_to_coarsest():
    assert [g.value for g in sorted(Granularity, key=lambda g: g.level)] == [
        "token",
        "word",
        "sentence",
        "paragraph",
        "message",
    ]
    assert Granularity.parse("Message") is Granularity.MESSAGE
    assert Granularity.parse("PARAGRAPH") is Granularity.PARAGRAPH


CHAT = [
    Message(role="system", content="Be brief."),
    Message(role="user", content="Para one. Two.\n\nPara two here.\n\n\nThree"),
    Message(role="assistant", content="Noted."),
    Message(role="user", content="What is the capital of France?"),
]


@pytest.mark.parametrize("pair", ["qwen_pair", "gpt2_pair"])
def test_message_and_paragraph_units_map_back_to_the_text(pair, request):
    _, tok = request.getfixturevalue(pair)
    msg = encode(tok, target="Paris.", granularity=Granularity.MESSAGE, messages=CHAT)
    assert [(u.text, u.role) for u in msg.units] == [(m.content, m.role) for m in CHAT]
    para = encode(tok, target="Paris.", granularity=Granularity.PARAGRAPH, messages=CHAT)
    assert [u.text for u in para.units] == [
        "Be brief.",
        "Para one. Two.",
        "Para two here.",
        "Three",
        "Noted.",
        "What is the capital of France?",
    ]
    for u in para.units:
        assert CHAT[u.message_index].content[u.char_start : u.char_end] == u.text


def test_a_raw_prompt_is_one_message_unit(qwen_pair):
    _, tok = qwen_pair
    enc = encode(tok, target="Paris.", granularity="message", prompt="The capital of France is")
    assert [(u.text, u.role) for u in enc.units] == [("The capital of France is", "prompt")]


def test_role_totals_sum_the_units_of_each_role(qwen_explainer):
    msgs = [m.model_dump() for m in CHAT]
    result = qwen_explainer.explain(msgs, "Paris.", method="occlusion", granularity="sentence")
    totals = {t.role: t for t in result.role_totals}
    assert list(totals) == ["system", "user", "assistant"]  # order of first appearance
    for role, t in totals.items():
        mine = [a.score for a in result.attributions if a.role == role]
        assert t.n_units == len(mine)
        assert t.score == pytest.approx(sum(mine))
        assert t.abs_score == pytest.approx(sum(abs(s) for s in mine))
    dumped = result.model_dump()
    assert [t["role"] for t in dumped["role_totals"]] == ["system", "user", "assistant"]
    assert AttributionResult.model_validate(dumped) == result  # a derived field reads back


def test_message_granularity_occlusion_removes_the_whole_message(qwen_explainer):
    msgs = [m.model_dump() for m in CHAT]
    result = qwen_explainer.explain(msgs, "Paris.", method="occlusion", granularity="message")
    assert len(result.attributions) == len(CHAT)
    assert result.granularity is Granularity.MESSAGE
    assert result.metadata.n_sequences == len(CHAT) + 1
