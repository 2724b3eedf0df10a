"""From messages (or a raw prompt) and a target to token ids and attributable units.

Only characters inside message contents are features. The chat template's markup (role
headers, special tokens, the generation prompt) stays fixed in every perturbation and gets no
score. Character offsets from the fast tokenizer map tokens onto units.

A tokenizer without a chat template gets this plain fallback, one line per message and a
generation prompt on its own line::

    system: Answer concisely.
    user: What is the capital of France?
    assistant:

A raw ``prompt`` is used verbatim (no template); the tokenizer's own special tokens (a BOS,
say) are added as it would add them for any text, and stay fixed.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from .errors import InvalidRequestError, PromptEncodingError, PromptTooLongError
from .results import Message
from .segment import message_spans, paragraph_spans, sentence_spans, word_spans
from .types import Granularity

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

RAW_PROMPT_ROLE = "prompt"
FALLBACK_GENERATION_PROMPT = "assistant:\n"


class Unit(NamedTuple):
    """One attributable unit: its text, where it is, and which tokens carry it (a NamedTuple:
    a long prompt makes a thousand of these per item, and a frozen dataclass costs 5x more)."""

    text: str
    message_index: int
    role: str
    char_start: int  # in the message content
    char_end: int
    token_indices: tuple[int, ...]  # positions in the full prompt+target sequence


@dataclass
class EncodedInput:
    """Everything the engine and the methods need about one item, tokenised once."""

    input_ids: torch.Tensor  # [seq_len] prompt followed by target
    prompt_length: int
    units: list[Unit]
    prompt_text: str
    target_text: str
    messages: list[Message] | None
    target_tokens: list[str] = field(default_factory=list)
    coarse_units: list[Unit] | None = None  # for refinement: the units of a coarser granularity
    # A contrastive item explains f = log p(target | x) - log p(contrast | x): ``contrast`` is
    # its twin, the same prompt and units followed by the contrast answer (``encode`` builds
    # it). Whatever scores through the engine gets the difference (``ScoreResult.values``).
    contrast: EncodedInput | None = None

    @property
    def contrastive(self) -> bool:
        return self.contrast is not None

    def answers(self) -> list[EncodedInput]:
        """The sequences the engine scores for this item: itself (prompt + target), then its
        contrast twin (prompt + contrast) for a contrastive item."""
        return [self] if self.contrast is None else [self, self.contrast]

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def target_ids(self) -> torch.Tensor:
        return self.input_ids[self.prompt_length :]

    @property
    def n_target_tokens(self) -> int:
        return self.seq_len - self.prompt_length

    @cached_property
    def unit_of_token(self) -> torch.Tensor:
        """[seq_len] long: the unit each token belongs to, -1 for fixed tokens."""
        owner = torch.full((self.seq_len,), -1, dtype=torch.long)
        for u, unit in enumerate(self.units):
            owner[list(unit.token_indices)] = u
        return owner

    def first_attributable_token(self) -> int:
        """Every token before this index is identical in all perturbations (a shared prefix)."""
        return min((min(u.token_indices) for u in self.units), default=self.prompt_length)


def render_chat(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]
) -> tuple[str, list[tuple[int, int, int]]]:
    """Apply the chat template; return the text and, per message, ``(start, end, shift)``:
    the content's char span in the text, and how many leading characters of the original
    content the template trimmed away (so offsets can point into the original content)."""
    dicts = [{"role": m.role, "content": m.content} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        try:
            text = tokenizer.apply_chat_template(dicts, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # jinja raises plain exceptions for unsupported roles etc.
            raise PromptEncodingError(
                f"the tokenizer's chat template rejected these messages: {exc}. "
                "Check the roles and their order for this model, or pass a raw prompt."
            ) from exc
        if not isinstance(text, str):
            raise PromptEncodingError("apply_chat_template(tokenize=False) did not return text")
    else:
        text = "".join(f"{m.role}: {m.content}\n" for m in messages) + FALLBACK_GENERATION_PROMPT
    spans: list[tuple[int, int, int]] = []
    cursor = 0
    for i, m in enumerate(messages):
        start = text.find(m.content, cursor)
        length, shift = len(m.content), 0
        if start < 0 and m.content.strip():  # templates may trim contents
            start = text.find(m.content.strip(), cursor)
            length = len(m.content.strip())
            shift = len(m.content) - len(m.content.lstrip())
        if start < 0:
            raise PromptEncodingError(
                f"message {i} ({m.role}) does not appear verbatim in the chat template's output, "
                "so its tokens cannot be mapped back to its text (the template rewrote it). "
                "Pass the prompt as raw text instead."
            )
        spans.append((start, start + length, shift))
        cursor = start + length
    return text, spans


def _render(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message] | None, prompt: str | None
) -> tuple[str, list[tuple[int, int, int]], list[str], bool]:
    """(prompt text, content spans, roles, whether the tokenizer adds its special tokens)."""
    if messages is not None:
        text, spans = render_chat(tokenizer, messages)
        # the template already holds the special tokens it wants
        return text, spans, [m.role for m in messages], False
    if prompt is not None:
        return prompt, [(0, len(prompt), 0)], [RAW_PROMPT_ROLE], True
    raise InvalidRequestError("give either messages or a prompt")


def _tokenize_prompt(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message] | None, prompt: str | None
) -> tuple[str, list[tuple[int, int, int]], list[str], list[int], list[tuple[int, int]]]:
    text, spans, roles, add_special = _render(tokenizer, messages, prompt)
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    return text, spans, roles, list(enc["input_ids"]), offsets


_TOKEN_CHARS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
CUT_SLACK = 8  # tokens a prefix cut inside a word may have beyond the whole text's


def max_token_chars(tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest vocabulary entry in characters. A token's entry is at least as long as the
    text it stands for (byte-level entries hold one character per byte, ``##``/``▁`` markers
    only add), so a text of n characters holds at least n / this many tokens, unless the
    tokenizer's normaliser deletes characters (hence the prefix check in ``check_length``)."""
    try:
        return _TOKEN_CHARS[tokenizer]
    except (KeyError, TypeError):
        pass
    longest = max((len(t) for t in tokenizer.get_vocab()), default=1) or 1
    with contextlib.suppress(TypeError):  # not weak-referenceable: recomputed next time
        _TOKEN_CHARS[tokenizer] = longest
    return longest


def check_length(
    tokenizer: PreTrainedTokenizerBase, text: str, target: str, max_length: int, *, name: str = "target"
) -> None:
    """Reject prompt + target longer than ``max_length`` tokens without tokenising all of them.

    A 50 MB prompt took 103 s and 6.7 GB to tokenise with offsets before the length check
    could refuse it. Texts short enough to fit pass untouched; a longer one has only a prefix
    of each part tokenised (bounded by max_length, not by the text), and is refused when those
    prefixes alone are over the limit."""
    per_token = max_token_chars(tokenizer)
    if len(text) + len(target) <= max_length * per_token:
        return
    cap = (max_length + 2 * CUT_SLACK + 1) * per_token
    n_prompt = len(tokenizer(text[:cap], add_special_tokens=False)["input_ids"])
    n_target = len(tokenizer(target[:cap], add_special_tokens=False)["input_ids"])
    if n_prompt + n_target > max_length + 2 * CUT_SLACK:
        raise PromptTooLongError(
            f"prompt ({len(text)} characters) + {name} ({len(target)} characters) hold more "
            f"than {n_prompt + n_target - 2 * CUT_SLACK} tokens, more than the limit of {max_length}; "
            "shorten the input or raise max_length."
        )


def tokenize_prompt_ids(
    tokenizer: PreTrainedTokenizerBase,
    *,
    messages: Sequence[Message] | None = None,
    prompt: str | None = None,
) -> torch.Tensor:
    """The prompt's token ids exactly as ``encode`` builds them (for generating a target)."""
    return torch.tensor(_tokenize_prompt(tokenizer, messages, prompt)[3], dtype=torch.long)


def encode(
    tokenizer: PreTrainedTokenizerBase,
    *,
    target: str,
    granularity: Granularity,
    messages: Sequence[Message] | None = None,
    prompt: str | None = None,
    max_length: int | None = None,
    coarse_granularity: Granularity | None = None,
    contrast: str | None = None,
) -> EncodedInput:
    """Tokenise prompt and target once and build the units of the requested granularity (and,
    for coarse-to-fine refinement, those of ``coarse_granularity`` from the same tokens).
    With ``contrast``, the result's ``contrast`` is the same prompt followed by that answer."""
    if not getattr(tokenizer, "is_fast", False):
        raise PromptEncodingError(
            f"{type(tokenizer).__name__} is a slow tokenizer without character offsets; "
            "load the fast one (AutoTokenizer.from_pretrained(..., use_fast=True))."
        )
    text, spans, roles, add_special = _render(tokenizer, messages, prompt)
    if max_length is not None:
        check_length(tokenizer, text, target, max_length)
        if contrast is not None:
            check_length(tokenizer, text, contrast, max_length, name="contrast")
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    prompt_ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    target_ids = _answer_ids(tokenizer, target, "target", len(prompt_ids), max_length)
    contrast_ids = None
    if contrast is not None:
        contrast_ids = _answer_ids(tokenizer, contrast, "contrast", len(prompt_ids), max_length)
        if contrast_ids == target_ids:
            raise InvalidRequestError(
                f"the contrast {contrast!r} is the target itself: log p(target) - log p(contrast) "
                "would be 0 for every input; give a different answer to compare with"
            )

    starts = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets))
    ends = np.fromiter((o[1] for o in offsets), dtype=np.int64, count=len(offsets))
    ids = torch.tensor(prompt_ids + target_ids, dtype=torch.long)
    encoded = EncodedInput(
        input_ids=ids,
        prompt_length=len(prompt_ids),
        units=_units(granularity, text, spans, roles, starts, ends),
        prompt_text=text,
        target_text=target,
        messages=list(messages) if messages is not None else None,
        target_tokens=tokenizer.batch_decode([[t] for t in target_ids]),
        coarse_units=(
            None
            if coarse_granularity is None
            else _units(coarse_granularity, text, spans, roles, starts, ends)
        ),
    )
    if contrast_ids is not None:
        encoded.contrast = replace(
            encoded,
            input_ids=torch.tensor(prompt_ids + contrast_ids, dtype=torch.long),
            target_text=contrast,
            target_tokens=tokenizer.batch_decode([[t] for t in contrast_ids]),
        )
    return encoded


_SEGMENTERS = {
    Granularity.TOKEN: None,
    Granularity.WORD: word_spans,
    Granularity.SENTENCE: sentence_spans,
    Granularity.PARAGRAPH: paragraph_spans,
    Granularity.MESSAGE: message_spans,
}


def _units(
    granularity: Granularity | str,
    text: str,
    spans: Sequence[tuple[int, int, int]],
    roles: Sequence[str],
    starts: np.ndarray,
    ends: np.ndarray,
) -> list[Unit]:
    """The units of every message's content (``spans``) from the prompt's token offsets."""
    segmenter = _SEGMENTERS[Granularity.parse(granularity)]
    units: list[Unit] = []
    for mi, (cs, ce, shift) in enumerate(spans):
        content = text[cs:ce]
        inside = np.nonzero((starts < ce) & (ends > cs))[0]  # tokens touching this content
        tok_s = np.maximum(starts[inside], cs) - cs  # clipped, relative to the content
        tok_e = np.minimum(ends[inside], ce) - cs
        if segmenter is None:
            segments = np.stack([tok_s, tok_e], 1) if len(inside) else np.zeros((0, 2), np.int64)
        else:
            segments = np.asarray(segmenter(content), dtype=np.int64).reshape(-1, 2)
        units.extend(_group(inside, tok_s, tok_e, segments, shift, content, mi, roles[mi]))
    return units


def _answer_ids(
    tokenizer: PreTrainedTokenizerBase, text: str, name: str, n_prompt: int, max_length: int | None
) -> list[int]:
    """The token ids of a target (or contrast) answer, checked against the length limit."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise InvalidRequestError(f"the {name} is empty after tokenisation; give a non-empty {name}")
    total = n_prompt + len(ids)
    if max_length is not None and total > max_length:
        raise PromptTooLongError(
            f"prompt ({n_prompt} tokens) + {name} ({len(ids)} tokens) = {total} "
            f"tokens, more than the limit of {max_length}; shorten the input or raise max_length."
        )
    return ids


def _group(
    token_ids: np.ndarray,
    tok_s: np.ndarray,
    tok_e: np.ndarray,
    segments: np.ndarray,
    shift: int,
    content: str,
    message_index: int,
    role: str,
) -> list[Unit]:
    """Assign tokens to segments; segments that share a token merge into one unit, because a
    token cannot be half removed. Tokens touching no segment (pure whitespace) stay fixed.

    Vectorised because it runs once per item on every token (a 1,000-token prompt took 8 ms
    as a Python loop, as long as a GPU forward of the whole batch). ``segments`` [n, 2] are
    sorted by start with non-decreasing ends, so the segments a token [s, e) overlaps are the
    contiguous range first..last found by two binary searches; a token whose range holds
    several segments links each to the next, and linked runs of segments form one unit.
    """
    n_seg = segments.shape[0]
    if n_seg == 0 or len(token_ids) == 0:
        return []
    seg_s, seg_e = segments[:, 0], segments[:, 1]
    first = np.searchsorted(seg_e, tok_s, side="right")  # first segment ending after s
    last = np.searchsorted(seg_s, tok_e, side="left") - 1  # last segment starting before e
    hits = first <= last
    token_ids, first, last = token_ids[hits], first[hits], last[hits]
    # link[k]: segments k and k+1 share a token (difference array over the ranges)
    diff = np.zeros(n_seg + 1, dtype=np.int64)
    np.add.at(diff, first, 1)
    np.add.at(diff, last, -1)
    link = np.cumsum(diff)[: n_seg - 1] > 0
    begins = np.concatenate([[True], ~link])  # a segment not linked to the previous starts a run
    component = np.cumsum(begins) - 1  # the run (unit candidate) of every segment
    run_start = np.minimum.reduceat(seg_s, np.flatnonzero(begins))
    run_end = np.maximum.reduceat(seg_e, np.flatnonzero(begins))
    token_unit = component[first]
    order = np.argsort(token_unit, kind="stable")  # tokens grouped by unit, in text order
    by_unit = token_unit[order]
    tokens_sorted = token_ids[order].tolist()
    cuts = (np.flatnonzero(np.diff(by_unit)) + 1).tolist()
    lo, hi = [0, *cuts], [*cuts, len(tokens_sorted)]
    run_of = by_unit[lo].tolist()
    starts, ends = run_start.tolist(), run_end.tolist()
    units = [
        Unit(
            text=content[starts[r] : ends[r]],
            message_index=message_index,
            role=role,
            char_start=starts[r] + shift,
            char_end=ends[r] + shift,
            token_indices=tuple(tokens_sorted[a:b]),
        )
        for a, b, r in zip(lo, hi, run_of)
    ]
    units.sort(key=lambda u: (u.char_start, u.token_indices[0]))
    return units
