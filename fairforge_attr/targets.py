"""Targets for items that have none: the model's own greedy answers, generated together.

``explain(target=None)`` and batches run with ``generate=True`` (``ffattr batch --generate``)
come here with every request of a group that lacks a target; the prompts are generated as one
left-padded batch (``engine/generation.py``), so an item gets the same text alone or beside
others. Generation stops at the model's end-of-turn tokens: the ids its generation config names
as ``eos_token_id`` (chat models end a turn with their own token, e.g. ``<|im_end|>``) and the
tokenizer's eos.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .engine import Engine
from .errors import FairForgeError, InvalidRequestError, PromptTooLongError
from .prompt import tokenize_prompt_ids
from .request import ExplainRequest

if TYPE_CHECKING:
    from .plan import Plan

NO_TARGET = (
    "no target: give the response to explain, or let the model answer (generate=True; "
    "ffattr batch --generate)"
)


def targets_of(
    engine: Engine,
    tokenizer: Any,
    plan: Plan,
    requests: Sequence[ExplainRequest],
    max_length: int | None,
) -> list[str | FairForgeError]:
    """Every request's target: its own, else (``plan.generate``) the model's greedy answer,
    generated for the whole group at once, else an error."""
    out: list[str | FairForgeError] = [
        req.target if req.target is not None else InvalidRequestError(NO_TARGET) for req in requests
    ]
    missing = [i for i, req in enumerate(requests) if req.target is None]
    if plan.generate and missing:
        texts = generate_targets(
            engine, tokenizer, [requests[i] for i in missing], plan.max_new_tokens, max_length
        )
        for i, text in zip(missing, texts):
            out[i] = text
    return out


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end the model's turn: its generation config's eos ids and the tokenizer's."""
    stop = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(stop if isinstance(stop, (list, tuple)) else [stop] if stop is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


def generate_targets(
    engine: Engine,
    tokenizer: Any,
    requests: Sequence[ExplainRequest],
    max_new_tokens: int,
    max_length: int | None = None,
) -> list[str | FairForgeError]:
    """The generated answer of every request, in order, or the error that stopped it (a
    prompt with no room left for an answer, an empty answer)."""
    out: list[str | FairForgeError] = []
    prompts, where, budgets = [], [], []
    for i, req in enumerate(requests):
        try:
            ids = tokenize_prompt_ids(tokenizer, messages=req.messages, prompt=req.prompt)
        except FairForgeError as exc:
            out.append(exc)
            continue
        room = max_new_tokens if max_length is None else min(max_new_tokens, max_length - len(ids))
        if room < 1:
            out.append(
                PromptTooLongError(
                    f"the prompt ({len(ids)} tokens) leaves no room for a generated target within "
                    f"the limit of {max_length} tokens; shorten it or pass a target"
                )
            )
            continue
        out.append("")  # filled below
        prompts.append(ids)
        where.append(i)
        budgets.append(room)
    stop = stop_token_ids(engine.model, tokenizer)
    # Items near the length limit get fewer new tokens: generate each budget apart, so an
    # item's text never depends on the items beside it.
    for room in sorted(set(budgets)):
        chosen = [k for k, b in enumerate(budgets) if b == room]
        try:
            news = engine.generate([prompts[k] for k in chosen], room, stop, tokenizer.pad_token_id)
        except FairForgeError as exc:  # e.g. out of memory for a single prompt
            for k in chosen:
                out[where[k]] = exc
            continue
        for k, new in zip(chosen, news):
            text = tokenizer.decode(new, skip_special_tokens=True).strip()
            out[where[k]] = text or InvalidRequestError(
                "the model generated an empty response; pass a target to explain"
            )
    return out
