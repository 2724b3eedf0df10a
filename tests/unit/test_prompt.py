import pytest

from fairforge_attr.errors import InvalidRequestError, PromptEncodingError, PromptTooLongError
from fairforge_attr.prompt import FALLBACK_GENERATION_PROMPT, encode, render_chat
from fairforge_attr.results import Message
from fairforge_attr.types import Granularity

MSGS = [
    Message(role="system", content="Answer concisely."),
    Message(role="user", content="What is the capital of France?"),
]


def test_units_are_message_content_only_and_map_back_to_text(qwen_pair):
    _, tok = qwen_pair
    for gran in Granularity:
        enc = encode(tok, target="The capital of France is Paris.", granularity=gran, messages=MSGS)
        assert enc.n_units > 0
        owner = enc.unit_of_token
        for i, unit in enumerate(enc.units):
            content = MSGS[unit.message_index].content
            assert content[unit.char_start : unit.char_end] == unit.text
            assert unit.role == MSGS[unit.message_index].role
            assert all(owner[t] == i for t in unit.token_indices)
            assert all(t < enc.prompt_length for t in unit.token_indices)
        # every template token (role headers, <|im_start|>, generation prompt) is fixed
        fixed = [tok.decode([int(enc.input_ids[t])]) for t in range(enc.prompt_length) if owner[t] < 0]
        assert "<|im_start|>" in fixed and "<|im_end|>" in fixed
        assert not any("France" in f for f in fixed)


def test_word_units_of_the_question(qwen_pair):
    _, tok = qwen_pair
    enc = encode(tok, target="Paris.", granularity=Granularity.WORD, messages=MSGS[1:])
    assert [u.text for u in enc.units] == ["What", "is", "the", "capital", "of", "France", "?"]


def test_sentence_units(qwen_pair):
    _, tok = qwen_pair
    msgs = [Message(role="user", content="Be brief. What is the capital of France? Answer now.")]
    enc = encode(tok, target="Paris.", granularity=Granularity.SENTENCE, messages=msgs)
    assert [u.text for u in enc.units] == ["Be brief.", "What is the capital of France?", "Answer now."]


def test_target_follows_the_prompt(qwen_pair):
    _, tok = qwen_pair
    enc = encode(tok, target="The capital of France is Paris.", granularity=Granularity.TOKEN, messages=MSGS)
    assert tok.decode(enc.target_ids) == "The capital of France is Paris."
    assert enc.prompt_text.endswith("<|im_start|>assistant\n")
    assert len(enc.target_tokens) == enc.n_target_tokens


def test_plain_fallback_without_chat_template(gpt2_pair):
    _, tok = gpt2_pair
    assert not tok.chat_template
    text, spans = render_chat(tok, MSGS)
    assert (
        text
        == "system: Answer concisely.\nuser: What is the capital of France?\n" + FALLBACK_GENERATION_PROMPT
    )
    assert [text[s:e] for s, e, _ in spans] == [m.content for m in MSGS]


def test_raw_prompt_is_one_unit_source(gpt2_pair):
    _, tok = gpt2_pair
    enc = encode(tok, target=" Paris", granularity=Granularity.WORD, prompt="The capital of France is")
    assert [u.text for u in enc.units] == ["The", "capital", "of", "France", "is"]
    assert {u.role for u in enc.units} == {"prompt"}


def test_trimmed_content_offsets_point_into_the_original(qwen_pair):
    _, tok = qwen_pair
    template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
    original = tok.chat_template
    try:
        tok.chat_template = template
        msgs = [Message(role="user", content="   What is it?  ")]
        enc = encode(tok, target="x", granularity=Granularity.WORD, messages=msgs)
        for u in enc.units:
            assert msgs[0].content[u.char_start : u.char_end] == u.text
        assert [u.text for u in enc.units] == ["What", "is", "it", "?"]
    finally:
        tok.chat_template = original


def test_a_token_shared_by_two_words_merges_them(gpt2_pair):
    # A character-level view: "France?" may be one token; whatever the tokenizer does, no
    # token may belong to two units, and units must partition the content tokens.
    _, tok = gpt2_pair
    enc = encode(tok, target="x", granularity=Granularity.WORD, prompt="zzqx,yy France?!")
    seen = [t for u in enc.units for t in u.token_indices]
    assert len(seen) == len(set(seen))


def test_errors_are_specific(gpt2_pair):
    _, tok = gpt2_pair
    with pytest.raises(PromptTooLongError, match="limit of 5"):
        encode(tok, target="Paris", granularity=Granularity.WORD, messages=MSGS, max_length=5)
    with pytest.raises(InvalidRequestError, match="target is empty"):
        encode(tok, target="", granularity=Granularity.WORD, messages=MSGS)
    bad_template = "{{ raise_exception('System role not supported') }}"
    original = tok.chat_template
    try:
        tok.chat_template = bad_template
        with pytest.raises(PromptEncodingError, match="System role not supported"):
            encode(tok, target="x", granularity=Granularity.WORD, messages=MSGS)
    finally:
        tok.chat_template = original


def _group_reference(tokens, segments):
    """Brute force: union segments that share a token, by repeated merging."""
    groups = [{k} for k in range(len(segments))]
    owner = {}
    for t, (s, e) in tokens:
        hits = [k for k, (a, b) in enumerate(segments) if a < e and b > s]
        if not hits:
            continue
        merged = set().union(*(g for g in groups if g & set(hits)))
        groups = [g for g in groups if not g & set(hits)] + [merged]
        owner[t] = hits[0]
    out = []
    for g in groups:
        toks = sorted(t for t, k in owner.items() if k in g)
        if toks:
            out.append((min(segments[k][0] for k in g), max(segments[k][1] for k in g), tuple(toks)))
    return sorted(out)


def test_grouping_matches_brute_force_on_random_layouts():
    import random

    import numpy as np

    from fairforge_attr.prompt import _group

    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 40)
        cuts = sorted(rng.sample(range(1, 120), n))
        tokens, pos = [], 0
        for t, c in enumerate(cuts):
            tokens.append((t, (pos, c)))
            pos = c
        segments, pos = [], 0
        while pos < cuts[-1]:
            gap, length = rng.randint(0, 3), rng.randint(1, 8)
            if pos + gap + length > cuts[-1]:
                break
            segments.append((pos + gap, pos + gap + length))
            pos += gap + length
        content = "x" * cuts[-1]
        got = _group(
            np.array([t for t, _ in tokens]),
            np.array([s for _, (s, _) in tokens]),
            np.array([e for _, (_, e) in tokens]),
            np.array(segments, dtype=np.int64).reshape(-1, 2),
            0,
            content,
            0,
            "user",
        )
        assert sorted((u.char_start, u.char_end, u.token_indices) for u in got) == _group_reference(
            tokens, segments
        )
