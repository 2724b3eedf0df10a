"""How a removed unit disappears from the input (perturbation methods).

Positions never shift: a removed unit's tokens are either replaced by one baseline token
(default: the tokenizer's pad token, else its unk token, else its eos token) or hidden through
the attention mask (``baseline="hide"``), so no later token can attend to them.

Accepted ``baseline`` values: ``None``/``"pad"`` (default), ``"unk"``, ``"eos"``, ``"hide"``,
an int token id, or any other string that the tokenizer encodes as exactly one token
(e.g. ``" _"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidRequestError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

HIDE = "hide"


@dataclass(frozen=True)
class Baseline:
    token_id: int | None  # None: hide through the attention mask
    description: str

    @property
    def hides(self) -> bool:
        return self.token_id is None


def resolve_baseline(tokenizer: PreTrainedTokenizerBase, spec: str | int | None, vocab_size: int) -> Baseline:
    """The baseline a ``baseline`` option names (see the module docstring for the accepted values)."""
    if spec is None or spec == "pad":
        for name in ("pad", "unk", "eos"):
            tid = getattr(tokenizer, f"{name}_token_id", None)
            if tid is not None:
                return Baseline(int(tid), f"{name} token {getattr(tokenizer, f'{name}_token')!r}")
        raise InvalidRequestError(
            "the tokenizer has no pad, unk or eos token to replace removed units with; "
            "pass baseline='hide' or a token id / one-token string"
        )
    if spec == HIDE:
        return Baseline(None, "hidden through the attention mask")
    if spec in ("unk", "eos"):
        tid = getattr(tokenizer, f"{spec}_token_id", None)
        if tid is None:
            raise InvalidRequestError(f"the tokenizer has no {spec} token; choose another baseline")
        return Baseline(int(tid), f"{spec} token {getattr(tokenizer, f'{spec}_token')!r}")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        tid = int(spec)
        if not 0 <= tid < vocab_size:
            raise InvalidRequestError(
                f"baseline token id {tid} is outside the vocabulary (0..{vocab_size - 1})"
            )
        return Baseline(tid, f"token id {tid}")
    ids = tokenizer(spec, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise InvalidRequestError(
            f"baseline {spec!r} encodes to {len(ids)} tokens; it must be exactly one token "
            "(or use 'pad', 'unk', 'eos', 'hide' or a token id)"
        )
    return Baseline(int(ids[0]), f"token {spec!r}")
