"""What the engine ran: its counters, and how an out-of-memory error is recognised."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EngineStats:
    """What the engine ran since it was made (or ``reset``): model calls (a chunk with a shared
    prefix makes two), scored sequences, and tokens through the model (padding included).

    ``last_layer_skipped``: of those tokens, the ones whose last decoder layer ran only its
    keys and values (no logits needed there: ``last_layer.py``), counted where the layer's MLP
    really was cut; ``last_layer_queries_skipped``: the attention queries of that layer not
    computed (0 on models whose attention is not replaced, e.g. ``eager``)."""

    calls: int = 0
    sequences: int = 0
    tokens: int = 0
    prefix_tokens_saved: int = 0
    last_layer_skipped: int = 0
    last_layer_queries_skipped: int = 0

    def reset(self) -> None:
        self.calls = self.sequences = self.tokens = self.prefix_tokens_saved = 0
        self.last_layer_skipped = self.last_layer_queries_skipped = 0


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the device ran out of memory (CUDA, MPS or host allocations)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate" in text)
