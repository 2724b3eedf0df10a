"""Independent computations the library is checked against: a plain full-logits forward per
sequence, no batching, no chunking, no logits_to_keep."""

from __future__ import annotations

import torch


def log_prob(
    model, ids: torch.Tensor, prompt_length: int, attention_mask: torch.Tensor | None = None
) -> float:
    """sum log p(ids[t] | ids[:t]) for t >= prompt_length, by one plain forward."""
    with torch.no_grad():
        kwargs = {"input_ids": ids[None]}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask[None]
            kwargs["position_ids"] = torch.arange(ids.shape[0])[None]
        logits = model(**kwargs).logits[0].float()
    lp = torch.log_softmax(logits[:-1], -1)
    tgt = ids[1:]
    return float(lp[torch.arange(prompt_length - 1, ids.shape[0] - 1), tgt[prompt_length - 1 :]].sum())


def without_units(enc, units: list[int], baseline_id: int) -> torch.Tensor:
    ids = enc.input_ids.clone()
    for u in units:
        ids[list(enc.units[u].token_indices)] = baseline_id
    return ids
