"""Running a chunk's shared prefix once and handing its keys/values to every row.

All rows of a chunk agree on their first ``P`` tokens (the chat template's header, and the
units that none of the chunk's masks removes). Their keys and values over those tokens are
identical, so the backbone runs ``[1, P]`` once with the model's own cache, the cache is
expanded (a stride-0 view, no copy) to the chunk's rows, and the model then runs only the
``[rows, S]`` remaining tokens against it. Same numbers as the plain pass, up to float
rounding (tested to 1e-4).

Support is detected, not assumed: the model's forward must take a cache (``cache`` in
transformers >= 5.x, ``past_key_values`` before) and ``position_ids``. A model whose cached
pass fails is marked unsupported once and scored by plain passes from then on.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch


class PrefixCache:
    """How to run a prefix and reuse its cache with one model; ``supported`` says whether to."""

    def __init__(self, model: torch.nn.Module) -> None:
        params = inspect.signature(model.forward).parameters
        self.cache_kwarg = next((k for k in ("cache", "past_key_values") if k in params), None)
        self.supported = self.cache_kwarg is not None and "position_ids" in params
        base = getattr(model, "base_model", None)
        # The backbone gives the cache without the LM head; a model without a separate
        # backbone runs whole, keeping one position of logits.
        self.backbone = base if base is not None and base is not model else None
        self.model = model
        self._logits_to_keep = "logits_to_keep" in params

    def disable(self) -> None:
        self.supported = False

    def run_prefix(self, ids: torch.Tensor, mask: torch.Tensor | None) -> Any:
        """The model's cache after ``ids`` [1, P] (``mask`` [1, P], 0 = hidden; None: none
        hidden, decided on the host so that no device value is waited for)."""
        p = ids.shape[1]
        kwargs = {
            "input_ids": ids,
            "position_ids": torch.arange(p, device=ids.device).unsqueeze(0),
            "use_cache": True,
        }
        if mask is not None:
            kwargs["attention_mask"] = mask
        if self.backbone is not None:
            out = self.backbone(**kwargs)
        else:
            if self._logits_to_keep:
                kwargs["logits_to_keep"] = 1
            out = self.model(**kwargs)
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        if cache is None:
            raise RuntimeError("the model returned no cache for the prefix")
        return cache

    @staticmethod
    def cut(cache: Any, length: int) -> Any:
        """A new cache holding the first ``length`` positions of ``cache`` (views; ``cache``
        itself is left as it is, so it can be cut again), or None for a cache this cannot
        cut safely (sliding-window, quantised or static layers keep positions differently)."""
        from transformers.cache_utils import DynamicLayer

        layers = getattr(cache, "layers", None)
        if layers and all(type(layer) is DynamicLayer and layer.is_initialized for layer in layers):
            out = copy.copy(cache)
            out.layers = []
            for layer in layers:
                part = copy.copy(layer)
                part.keys, part.values = layer.keys[:, :, :length], layer.values[:, :, :length]
                out.layers.append(part)
            return out
        if isinstance(cache, tuple) and all(isinstance(t, torch.Tensor) for layer in cache for t in layer):
            return tuple(tuple(t[:, :, :length] for t in layer) for layer in cache)
        return None

    def expand(self, cache: Any, rows: int) -> Any:
        """The prefix cache seen by ``rows`` rows."""
        layers = getattr(cache, "layers", None)
        if layers and all(isinstance(getattr(layer, "keys", None), torch.Tensor) for layer in layers):
            for layer in layers:  # views: the next update concatenates into fresh tensors
                layer.keys = layer.keys.expand(rows, -1, -1, -1)
                layer.values = layer.values.expand(rows, -1, -1, -1)
                _forget_updates(layer)
            return cache
        if hasattr(cache, "batch_repeat_interleave"):
            cache.batch_repeat_interleave(rows)
            return cache
        if isinstance(cache, tuple):  # legacy tuple-of-tuples caches
            return tuple(tuple(t.expand(rows, *t.shape[1:]) for t in layer) for layer in cache)
        raise RuntimeError(f"cannot expand a {type(cache).__name__} to {rows} rows")


def _forget_updates(layer: Any) -> None:
    """Make a plain cache layer hand back prefix + new keys/values without storing them.

    A chunk's own keys/values are needed only inside each layer's attention; stored, they
    would stay alive for every layer until the forward ends (rows x tokens x layers x 2 x
    kv width: 100 MB for 117 rows of a 30M model in float16), so a cached pass would hold
    far more than a plain one. Nothing reads the cache after the chunk's single forward,
    and the mask sizes are read from the prefix alone, which stays as it is. Layers of any
    other kind (sliding windows, quantised, static) keep their own update."""
    from transformers.cache_utils import DynamicLayer

    if type(layer) is not DynamicLayer:
        return
    keys, values = layer.keys, layer.values

    def update(
        key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat([keys, key_states], dim=-2), torch.cat([values, value_states], dim=-2)

    layer.update = update
