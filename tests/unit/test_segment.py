from fairforge_attr.segment import sentence_spans, word_spans


def _texts(text, spans):
    return [text[s:e] for s, e in spans]


def test_words_keep_contractions_numbers_and_split_punctuation():
    text = "Explain Albert Einstein's theory, costs $3.50 -- well-known?"
    assert _texts(text, word_spans(text)) == [
        "Explain",
        "Albert",
        "Einstein's",
        "theory",
        ",",
        "costs",
        "$",
        "3.50",
        "--",
        "well-known",
        "?",
    ]


def test_sentences_respect_abbreviations_decimals_and_lines():
    text = "Dr. Smith paid $3.50 for coffee! Was it good? Yes.\n- Bullet one\n- Bullet two"
    assert _texts(text, sentence_spans(text)) == [
        "Dr. Smith paid $3.50 for coffee!",
        "Was it good?",
        "Yes.",
        "- Bullet one",
        "- Bullet two",
    ]


def test_sentences_cover_every_non_space_character():
    text = "  First one.  Second one   "
    spans = sentence_spans(text)
    assert _texts(text, spans) == ["First one.", "Second one"]
    assert sentence_spans("   ") == []
