"""Greedy generation of targets, many prompts at a time (the engine runs the model).

Prompts are left-padded into one batch (the attention mask hides the padding and the model's
``generate`` derives each row's positions from it), so every row continues its own prompt
exactly as it would alone, and stops at the first of ``stop_ids`` (the model's end-of-turn
tokens). Rows are grouped longest first and cut by the engine's token budget
(rows x (longest prompt + new tokens)); out of memory halves the group. A model that takes no
``position_ids`` cannot be left-padded without shifting positions, so its prompts are only
batched with prompts of the same length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..errors import EngineOutOfMemoryError

if TYPE_CHECKING:
    from .scoring import Engine


def generate_greedy(
    engine: Engine,
    prompts: Sequence[torch.Tensor],
    max_new_tokens: int,
    stop_ids: list[int],
    pad_id: int | None,
) -> list[torch.Tensor]:
    """The greedy continuation of every prompt (1-D id tensors), without its stop token, in
    order."""
    out: list[torch.Tensor | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    if not engine.packs_lengths:  # same length only: one group per length
        groups: dict[int, list[int]] = {}
        for i in order:
            groups.setdefault(len(prompts[i]), []).append(i)
        batches = list(groups.values())
    else:
        batches = [order]
    for batch in batches:
        start = 0
        while start < len(batch):
            longest = len(prompts[batch[start]]) + max_new_tokens
            rows = max(1, min(len(batch) - start, engine.token_budget // longest))
            try:
                done = _generate_rows(engine, [prompts[i] for i in batch[start : start + rows]],
                                      max_new_tokens, stop_ids, pad_id)  # fmt: skip
            except Exception as exc:
                from .scoring import is_out_of_memory

                if not is_out_of_memory(exc):
                    raise
                if rows == 1:
                    raise EngineOutOfMemoryError(
                        f"generating {max_new_tokens} tokens after a {longest - max_new_tokens}-token "
                        f"prompt does not fit in memory on {engine.device}; pass a target or lower "
                        "max_new_tokens"
                    ) from exc
                engine.recover_from_oom(longest)
                continue
            for i, new in zip(batch[start : start + rows], done):
                out[i] = new
            start += rows
    return [t for t in out if t is not None]


def _generate_rows(
    engine: Engine, prompts: list[torch.Tensor], max_new_tokens: int, stop_ids: list[int], pad_id: int | None
) -> list[torch.Tensor]:
    width = max(len(p) for p in prompts)
    pad = pad_id if pad_id is not None else (stop_ids[0] if stop_ids else 0)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for r, p in enumerate(prompts):  # left padding: every prompt ends at the last column
        ids[r, width - len(p) :] = p
        mask[r, width - len(p) :] = 1
    with torch.inference_mode():
        generated = engine.model.generate(
            input_ids=ids.to(engine.device),
            attention_mask=mask.to(engine.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stop_ids or None,
            pad_token_id=pad,
        )
    stops = set(stop_ids)
    out = []
    for row in generated[:, width:].cpu():
        ends = [i for i, t in enumerate(row.tolist()) if t in stops]
        out.append(row[: ends[0]] if ends else row)
    return out
