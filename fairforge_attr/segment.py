"""Pure text segmentation: where the words and sentences of one message's content are.

Both return character spans ``(start, end)`` into the given text, sorted and disjoint.
WORD: a run of word characters (contractions like "Einstein's", hyphenated words and numbers
like "3.50" stay whole); every run of punctuation is a unit of its own, so every visible
character can be scored. Whitespace belongs to no unit.
SENTENCE: pysbd, a rule-based splitter (abbreviations, decimals, lists, line breaks), with
the surrounding whitespace trimmed off each span.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"\d+(?:[.,]\d+)+|\w+(?:['’\-]\w+)*|[^\w\s]+")


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
