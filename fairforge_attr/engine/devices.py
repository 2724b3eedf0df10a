"""Where a model lives: one device, or spread over several by accelerate's ``device_map``.

A model loaded with ``device_map`` (``AttributionExplainer(name, device_map="auto")``) runs
its layers on the devices the map names; accelerate's hooks move activations from one device
to the next, and the outputs of the whole model back to the device its inputs came from. So
the engine runs unchanged: it puts inputs on the device of the input embeddings
(:func:`input_device`), and its chunks are sized by the device with the least free memory
(:func:`token_budget_for`), since every chunk passes through every device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

# One token of a chunk, inside one decoder layer, holds about this many activations of
# (hidden + intermediate) size at once (hidden state, attention projections, MLP up/gate).
ACTIVATION_FACTOR = 4
FREE_MEMORY_SHARE = 0.5  # of the smallest free memory, what one chunk's activations may take
MIN_TOKEN_BUDGET = 1024


def _as_device(where: Any) -> torch.device:
    """A device_map value (``0``, ``"cuda:1"``, ``"cpu"``, a torch.device) as a torch.device."""
    return torch.device(f"cuda:{where}") if isinstance(where, int) else torch.device(where)


def input_device(model: Any) -> torch.device:
    """The device the model's input ids (or embeddings) must be on: that of its input
    embeddings, or, under accelerate's hooks, the device that module executes on (its weight
    may sit on the meta device when offloaded)."""
    if not hasattr(model, "get_input_embeddings"):  # not a transformers model: its first weight
        return next(model.parameters()).device
    embeddings = model.get_input_embeddings()
    execution = getattr(getattr(embeddings, "_hf_hook", None), "execution_device", None)
    if execution is not None:
        return _as_device(execution)
    return embeddings.weight.device


def mapped_devices(model: Any) -> list[torch.device]:
    """The distinct devices a ``device_map`` spread the model over (disk offload left out);
    empty for a model loaded whole on one device."""
    device_map = getattr(model, "hf_device_map", None) or {}
    seen: dict[str, torch.device] = {}
    for where in device_map.values():
        if where != "disk":
            device = _as_device(where)
            seen.setdefault(str(device), device)
    return list(seen.values())


def activation_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """Bytes one token of a chunk takes inside a decoder layer while it runs."""
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 1024)
    intermediate = int(getattr(config, "intermediate_size", 0) or 4 * hidden)
    return ACTIVATION_FACTOR * (hidden + intermediate) * torch.empty((), dtype=dtype).element_size()


def fitting_token_budget(default: int, free_bytes: Sequence[int], bytes_per_token: int) -> int:
    """The token budget of a chunk that fits the device with the least free memory: the
    default, capped so that one chunk's activations take at most FREE_MEMORY_SHARE of it
    (never below MIN_TOKEN_BUDGET: an out-of-memory pass still halves the chunk)."""
    if not free_bytes:
        return default
    fits = int(FREE_MEMORY_SHARE * min(free_bytes) / max(bytes_per_token, 1))
    return max(MIN_TOKEN_BUDGET, min(default, fits))


def token_budget_for(model: Any, default: int) -> int:
    """``default`` for a model on one device; for a model spread over several GPUs, the
    budget that fits the GPU with the least free memory (measured now, after loading)."""
    devices = mapped_devices(model)
    gpus = [d for d in devices if d.type == "cuda"]
    if len(devices) < 2 or not gpus:
        return default
    free = [torch.cuda.mem_get_info(d)[0] for d in gpus]
    dtype = next(model.parameters()).dtype
    return fitting_token_budget(default, free, activation_bytes_per_token(model.config, dtype))
