"""Pure text segmentation: where the words, sentences, paragraphs of one message's content are.

Each returns character spans ``(start, end)`` into the given text, sorted and disjoint.
WORD: a run of word characters (contractions like "Einstein's", hyphenated words and numbers
like "3.50" stay whole); every run of punctuation is a unit of its own, so every visible
character can be scored. Whitespace belongs to no unit.
SENTENCE: pysbd, a rule-based splitter (abbreviations, decimals, lists, line breaks), with
the surrounding whitespace trimmed off each span.
PARAGRAPH: text between blank lines (a line holding only whitespace), trimmed. A paragraph
longer than ``PARAGRAPH_MAX_CHARS`` is cut at sentence boundaries into pieces of whole
consecutive sentences, each at most that long (a single longer sentence stays whole), so one
wall of text does not become one unit.
MESSAGE: the whole content, trimmed (nothing for an empty or blank content).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"\d+(?:[.,]\d+)+|\w+(?:['’\-]\w+)*|[^\w\s]+")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
# ~400-500 tokens of English: above this a "paragraph" is a wall of text (a pasted document,
# a tool output without blank lines), and scoring it whole would tell the user little.
PARAGRAPH_MAX_CHARS = 2000


def word_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]


@lru_cache(maxsize=1)
def _segmenter() -> Any:  # building the segmenter compiles many rules: do it once (pysbd: untyped)
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    # pysbd costs ~50 us per word; logged conversations repeat their system prompts, so the
    # spans of recent texts are kept (a tuple, so no caller can change the cached value).
    return list(_sentence_spans(text))


def message_spans(text: str) -> list[tuple[int, int]]:
    """The whole text as one span, surrounding whitespace trimmed (none if blank)."""
    stripped = text.strip()
    if not stripped:
        return []
    start = len(text) - len(text.lstrip())
    return [(start, start + len(stripped))]


def paragraph_spans(text: str, max_chars: int = PARAGRAPH_MAX_CHARS) -> list[tuple[int, int]]:
    """Blank-line separated paragraphs, trimmed; enormous ones cut at sentence boundaries."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for gap in [*_BLANK_LINE.finditer(text), None]:
        end = gap.start() if gap is not None else len(text)
        for s, e in message_spans(text[pos:end]):
            if e - s > max_chars:
                spans.extend(_pack_sentences(text, pos + s, pos + e, max_chars))
            else:
                spans.append((pos + s, pos + e))
        if gap is not None:
            pos = gap.end()
    return spans


def _pack_sentences(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """[start, end) as pieces of whole consecutive sentences, each at most ``max_chars``
    (a longer single sentence is a piece of its own)."""
    pieces: list[tuple[int, int]] = []
    for s, e in sentence_spans(text[start:end]):
        s, e = start + s, start + e
        if pieces and e - pieces[-1][0] <= max_chars:
            pieces[-1] = (pieces[-1][0], e)
        else:
            pieces.append((s, e))
    return pieces


def clear_cache() -> None:
    """Forget the remembered sentence spans (benchmarks time the cold path with this)."""
    _sentence_spans.cache_clear()


@lru_cache(maxsize=4096)
def _sentence_spans(text: str) -> tuple[tuple[int, int], ...]:
    spans: list[tuple[int, int]] = []
    if not text.strip():
        return ()
    cursor = 0
    for piece in _segmenter().segment(text):
        # pysbd's offsets can drift on repeated sentences; locate the text from the cursor.
        found = text.find(piece.sent, cursor)
        start = found if found >= 0 else piece.start
        end = start + len(piece.sent)
        stripped = piece.sent.strip()
        if not stripped:
            cursor = max(cursor, end)
            continue
        lead = len(piece.sent) - len(piece.sent.lstrip())
        s, e = start + lead, start + lead + len(stripped)
        if spans and s < spans[-1][1]:
            s = spans[-1][1]
        if e > s:
            spans.append((s, e))
        cursor = max(cursor, end)
    # Text that pysbd did not cover (it should not happen) becomes its own sentence.
    covered = sum(e - s for s, e in spans)
    if covered < len(text.strip()):
        spans = _fill_gaps(text, spans)
    return tuple(spans)


def _fill_gaps(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    pos = 0
    for s, e in [*spans, (len(text), len(text))]:
        gap = text[pos:s]
        if gap.strip():
            lead = len(gap) - len(gap.lstrip())
            out.append((pos + lead, pos + lead + len(gap.strip())))
        if e > s:
            out.append((s, e))
        pos = max(pos, e)
    return out
