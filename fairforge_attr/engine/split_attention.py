"""Attention of a chunk's rows against their shared prefix, in two parts (CPU).

The rows of a chunk with a shared prefix attend to the same ``P`` prefix keys and to their own
``S`` keys. Given the usual explicit ``[rows, 1, S, P + S]`` causal mask, SDPA computes every
query against every key, ``S x (P + S)`` per row, while a plain causal pass over the whole
sequence skips the masked half: for occlusion on a long prompt, where ``S`` averages half the
sequence, reusing the prefix would save the linear layers' work but none of the attention's.
Here the two parts are computed apart and merged by their log-sum-exp (as flash attention
merges its blocks):

- prefix: no query skips a prefix key and no row hides one (the engine hides nothing in a
  shared prefix), so the rows' queries are folded into one sequence, ``[1, heads, rows x S]``
  against the prefix keys of one row, ``[1, heads, P]``, without a mask;
- own keys: each row's queries against its own keys, causal (``is_causal``, or the mask's
  last ``S`` columns where tokens are hidden or padded).

That is ``S x P + S^2 / 2`` per row, what a causal pass spends on those queries.

It runs as an attention implementation registered with transformers (``ffattr_prefix``,
selected only for the duration of such a pass, on models that use ``sdpa``); anything it does
not handle (another device, a sliding window, soft-capping, position biases, a float mask)
goes to transformers' own ``sdpa`` function unchanged. Scores equal the plain pass to float
rounding (tested to 1e-4).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

NAME = "ffattr_prefix"
_state = threading.local()
_registered = False


def _sdpa() -> Callable[..., tuple[torch.Tensor, torch.Tensor | None]]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward


def _lse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    mask: torch.Tensor | None,
    scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(output [b, h, q, d], log-sum-exp [b, h, q]) of one SDPA call."""
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, causal, attn_mask=mask, scale=scale
    )


@dataclass
class Tail:
    """In the attention of ``module`` (the last decoder layer's), only queries
    ``start:stop`` are needed (``last_layer.py``); the others' outputs are zeros.
    ``queries_skipped`` counts the queries not computed."""

    module: torch.nn.Module
    start: int
    stop: int
    queries_skipped: int = 0


def _split_usable(
    prefix: int, query: torch.Tensor, key: torch.Tensor, dropout: float, mask: Any, kw: dict
) -> bool:
    """Whether the two-part computation applies (else transformers' ``sdpa`` runs)."""
    return (
        prefix > 0
        and query.device.type == "cpu"
        and query.dtype in (torch.float32, torch.float64, torch.bfloat16)
        and key.shape[2] == prefix + query.shape[2]
        and dropout == 0.0
        and kw.get("softcap") is None
        and kw.get("position_bias") is None
        and kw.get("sliding_window") is None
        and kw.get("s_aux") is None
        and (mask is None or mask.dtype == torch.bool)
    )


def prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The attention function transformers calls while :func:`shared_prefix` is active."""
    prefix = getattr(_state, "prefix", 0)
    tail: Tail | None = getattr(_state, "tail", None)
    split = _split_usable(prefix, query, key, dropout, attention_mask, kwargs)
    if tail is not None and module is tail.module:
        out = _tail_attention(
            module, query, key, value, attention_mask, dropout, scaling, tail, split, kwargs
        )
        if out is not None:
            return out, None
    if not split:
        return _sdpa()(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    own = None
    if attention_mask is not None and not getattr(_state, "causal_only", False):
        own = attention_mask[..., prefix:]
    out = _two_parts(query, key, value, prefix, own, scaling, causal=own is None)
    return out.transpose(1, 2).contiguous(), None


def _two_parts(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    prefix: int,
    own: torch.Tensor | None,
    scaling: float | None,
    causal: bool,
) -> torch.Tensor:
    """[rows, heads, q, dim] attention of ``query`` against the shared prefix's keys and each
    row's own keys (``own``: the bool mask over them, True = seen; ``causal``: none, causal)."""
    rows, heads, s, dim = query.shape
    groups = heads // key.shape[1]
    # prefix: every row sees the same keys, so its queries join one long sequence
    pk = key[:1, :, :prefix].repeat_interleave(groups, 1)
    pv = value[:1, :, :prefix].repeat_interleave(groups, 1)
    folded = query.transpose(0, 1).reshape(1, heads, rows * s, dim)
    out_p, lse_p = _lse_attention(folded, pk, pv, causal=False, mask=None, scale=scaling)
    out_p = out_p.reshape(heads, rows, s, dim).transpose(0, 1)
    lse_p = lse_p.reshape(heads, rows, s).transpose(0, 1)
    # own keys: causal, plus whatever the mask hides there (the kernel adds a float mask)
    ok, ov = (
        key[:, :, prefix:].repeat_interleave(groups, 1),
        value[:, :, prefix:].repeat_interleave(groups, 1),
    )
    mask = None
    if own is not None:
        zero = torch.zeros((), dtype=query.dtype, device=query.device)
        mask = torch.where(own, zero, torch.finfo(query.dtype).min)
    out_s, lse_s = _lse_attention(query, ok, ov, causal=causal, mask=mask, scale=scaling)
    # a query whose own keys are all hidden (a hidden token at the start) has none: weight 0
    seen = torch.isfinite(lse_s)
    lse_s = torch.where(seen, lse_s, torch.full_like(lse_s, -torch.inf))
    lse = torch.logaddexp(lse_p, lse_s)
    w_p = torch.exp(lse_p - lse).unsqueeze(-1)
    w_s = torch.exp(lse_s - lse).unsqueeze(-1)
    out = out_p * w_p + torch.where(seen.unsqueeze(-1), out_s, torch.zeros_like(out_s)) * w_s
    return out.to(query.dtype)


def _tail_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    scaling: float | None,
    tail: Tail,
    split: bool,
    kwargs: dict,
) -> torch.Tensor | None:
    """[rows, q, heads, dim]: the attention of the tail's queries (zeros elsewhere), or None
    where this cannot cut the queries exactly (the caller then runs them all)."""
    rows, heads, s, _ = query.shape
    a, b, k = tail.start, tail.stop, key.shape[2]
    if (
        not 0 <= a <= b <= s <= k
        or kwargs.get("position_bias") is not None
        or kwargs.get("s_aux") is not None
    ):
        return None
    out = query.new_zeros(rows, s, heads, value.shape[-1])
    if a < b:
        if attention_mask is not None and not (split and getattr(_state, "causal_only", False)):
            if (
                attention_mask.dim() != 4
                or attention_mask.shape[-2] != s
                or attention_mask.dtype != torch.bool
            ):
                return None
            seen = attention_mask[:, :, a:b]
        elif attention_mask is None and kwargs.get("sliding_window") is not None:
            return None  # the window would have to be built here; keep transformers' path
        else:  # causal: query a + i sits at key position k - s + a + i and sees the keys up to it
            at = k - s + a + torch.arange(b - a, device=query.device)
            seen = (torch.arange(k, device=query.device) <= at.unsqueeze(1)).view(1, 1, b - a, k)
        q = query[:, :, a:b]
        if split:
            out[:, a:b] = _two_parts(
                q, key, value, k - s, seen[..., k - s :], scaling, causal=False
            ).transpose(1, 2)
        else:
            out[:, a:b], _ = _sdpa()(module, q, key, value, seen, dropout=dropout, scaling=scaling, **kwargs)
    tail.queries_skipped += rows * (s - (b - a))
    return out


def _register() -> None:
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    _registered = True


def supported(model: torch.nn.Module) -> bool:
    """Whether ``model`` attends through transformers' ``sdpa`` (the only one this replaces)."""
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) == "sdpa"


@contextmanager
def shared_prefix(
    model: torch.nn.Module, prefix: int, causal_only: bool, tail: Tail | None = None
) -> Iterator[None]:
    """Within this block, ``model``'s attention treats the first ``prefix`` keys as shared by
    every row and hidden from none (see the module doc). ``causal_only``: no token after the
    prefix is hidden or padded either, so the mask transformers builds is the causal one.
    ``tail``: the last layer computes only those queries (``last_layer.py``)."""
    if (prefix <= 0 and tail is None) or not supported(model):
        yield
        return
    _register()
    config = model.config
    _state.prefix, _state.causal_only, _state.tail = max(prefix, 0), causal_only, tail
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"
        _state.prefix, _state.causal_only, _state.tail = 0, False, None
