"""The last decoder layer, run only where logits are kept.

A perturbation pass needs logits at a few positions only: those that predict a target token,
the last ``n_target + 1`` of each left-padded row but one (``packing.py``), the *tail*. Every
other position needs, from the last decoder layer, only its keys and values, and those are
computed from the layer's input, before its attention. So in the last layer the queries, the
attention itself, the attention's output projection and the MLP are run for the tail only; a
prefix pass (``PrefixCache.run_prefix``: no logits at all) skips them for every position.
Measured on occlusion of a 2,151-token input (``benchmarks/refine.py``, the same passes with
the layer whole): 0.85 x the CPU seconds on the 4-layer demo model, 0.89-0.92 x on an 8-layer
30M Qwen3.

How (generic, and only where the layout is recognised, :func:`find_last_layer`):

- the attention: transformers calls the attention function registered by
  ``split_attention.py`` with the attention module; for the last layer's module it computes
  the tail's queries only (against every key, causal offset kept) and returns zeros elsewhere;
  models not on ``sdpa`` keep their own attention, whole;
- the position-wise modules of that layer that are found (the query projection ``q_proj``,
  the output projection ``o_proj``/``c_proj``, the ``mlp``): a forward pre-hook cuts their
  input to the tail, a forward hook pads their output back with zeros, which nothing reads
  (the residual stream then holds the layer's input there, a finite value).

Each part is exact on its own (the tail's rows are computed from exactly the numbers a plain
pass uses), so a part that is not recognised is simply run whole. Nothing after the last layer
mixes positions (a per-position norm, then the LM head on the kept positions), which is what
makes the rest unread. The hooks exist only during the engine's own passes: gradient methods,
generation and anyone else calling the model see it unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from . import split_attention

QUERY_PROJECTIONS = ("q_proj",)  # a projection that feeds only the attention's queries
OUTPUT_PROJECTIONS = ("o_proj", "c_proj")  # the attention's output projection


def _position_wise(module: nn.Module) -> bool:
    """Whether ``module`` only maps each position on its own: built from linear maps, dropout
    and parameter-free activations (a dense MLP), with no list of experts (a mixture routes
    through modules whose outputs are not a plain per-position tensor in every version)."""
    from transformers.pytorch_utils import Conv1D

    for sub in module.modules():
        if isinstance(sub, nn.ModuleList):
            return False
        if sub is module or isinstance(sub, (nn.Linear, Conv1D, nn.Dropout)):
            continue
        if any(True for _ in sub.children()) or any(True for _ in sub.parameters(recurse=False)):
            return False
    return True


def _decoder_layers(model: nn.Module) -> nn.ModuleList | None:
    base = getattr(model, "base_model", model)
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name in ("layers", "h"):  # Llama, Qwen, Mistral, Gemma...; GPT-2
        layers = getattr(base, name, None)
        if isinstance(layers, nn.ModuleList) and n and len(layers) == n:
            return layers
    return None


@dataclass
class LastLayer:
    """What of ``model``'s last decoder layer runs on the tail only.

    ``attention``: the layer's attention module, when the model attends through ``sdpa``
    (whose function is replaced during the engine's passes); ``parts``: position-wise
    submodules whose input is cut to the tail, by name; ``reason``: why nothing is skipped."""

    attention: nn.Module | None = None
    parts: dict[str, nn.Module] = field(default_factory=dict)
    reason: str = ""

    @property
    def skips(self) -> list[str]:
        """The skipped parts, by name (``attention`` for the queries' attention)."""
        return (["attention"] if self.attention is not None else []) + list(self.parts)

    def describe(self) -> str:
        return ", ".join(self.skips) if self.skips else f"nothing ({self.reason})"


def find_last_layer(model: nn.Module) -> LastLayer:
    """The parts of the last decoder layer that can run on the tail only (see the module doc).
    A layout this does not recognise skips nothing, and ``reason`` says why."""
    layers = _decoder_layers(model)
    if layers is None:
        return LastLayer(reason="no list of decoder layers found")
    last = layers[-1]
    attn = next(
        (getattr(last, n) for n in ("self_attn", "attn") if isinstance(getattr(last, n, None), nn.Module)),
        None,
    )
    if attn is None or getattr(attn, "layer_idx", None) != len(layers) - 1:
        return LastLayer(reason="no attention module with the last layer's index")
    # a module shared with an earlier layer (tied layers) runs there on every position
    shared = {id(m) for layer in layers[:-1] for m in layer.modules()}
    found = LastLayer()
    if split_attention.supported(model) and id(attn) not in shared:
        found.attention = attn
    for names, owner in ((QUERY_PROJECTIONS, attn), (OUTPUT_PROJECTIONS, attn), (("mlp",), last)):
        name = next((n for n in names if isinstance(getattr(owner, n, None), nn.Module)), None)
        part = getattr(owner, name) if name is not None else None
        if part is not None and id(part) not in shared and _position_wise(part):
            found.parts[name] = part
    if not found.skips:
        found.reason = "no sdpa attention and no position-wise part recognised"
    return found


class _Cut:
    """Forward hooks that run one position-wise module on positions ``start:stop`` of a
    ``[rows, width, features]`` input and pad its output back to ``width`` with zeros.
    An input of another shape runs whole (nothing assumed)."""

    def __init__(self, start: int, stop: int, width: int) -> None:
        self.start, self.stop, self.width = start, stop, width
        self.active = False
        self.skipped = 0  # positions not run, over every call
        self.thread = threading.get_ident()  # another thread's call of the model is not ours

    def before(self, module: nn.Module, args: tuple) -> tuple | None:
        x = args[0] if len(args) == 1 else None
        self.active = (
            isinstance(x, torch.Tensor)
            and x.dim() == 3
            and x.shape[1] == self.width
            and threading.get_ident() == self.thread
        )
        if not self.active:
            return None
        self.skipped += x.shape[0] * (self.width - (self.stop - self.start))
        return (x[:, self.start : self.stop].contiguous(),)  # Conv1D views its input

    def after(self, module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor | None:
        if not self.active:
            return None
        self.active = False
        full = out.new_zeros(out.shape[0], self.width, *out.shape[2:])
        full[:, self.start : self.stop] = out
        return full


@dataclass
class TailPass:
    """What one pass skipped in the last layer (read after the pass)."""

    cuts: dict[str, _Cut] = field(default_factory=dict)
    attention: split_attention.Tail | None = None

    @property
    def skipped(self) -> int:
        """Positions whose last-layer MLP did not run (0 where the MLP is not recognised)."""
        cut = self.cuts.get("mlp")
        return cut.skipped if cut is not None else 0

    @property
    def queries_skipped(self) -> int:
        """Queries of the last layer's attention not computed."""
        return self.attention.queries_skipped if self.attention is not None else 0


@contextmanager
def tail_only(
    model: nn.Module,
    layer: LastLayer | None,
    span: tuple[int, int, int],
    prefix: int = 0,
    causal_only: bool = False,
) -> Iterator[TailPass]:
    """Within this block, ``model``'s last layer runs only positions ``start:stop`` of the
    ``width`` it is given (``span``; ``layer`` None: the whole layer, as ever); the attention's
    shared ``prefix`` (``split_attention.shared_prefix``) is set up here too."""
    start, stop, width = span
    done = TailPass()
    usable = layer is not None and 0 <= start <= stop <= width
    if usable and layer.attention is not None:
        done.attention = split_attention.Tail(layer.attention, start, stop)
    with ExitStack() as stack:
        stack.enter_context(split_attention.shared_prefix(model, prefix, causal_only, done.attention))
        for name, module in layer.parts.items() if usable else ():
            cut = done.cuts[name] = _Cut(start, stop, width)
            stack.callback(module.register_forward_pre_hook(cut.before).remove)
            stack.callback(module.register_forward_hook(cut.after).remove)
        yield done
