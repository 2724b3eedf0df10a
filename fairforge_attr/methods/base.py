"""What every method hands back, and the shapes of the two things a method spec carries.

A method spec (``registry.py``) holds its own ``score`` (run the engine for a group of encoded
items under a Plan, return one :class:`RawScores` per item) and its own ``baseline`` rule (turn
the ``baseline`` option into a resolved :class:`~fairforge_attr.engine.Baseline` plus the
parameters that record it). Callers use those two and never ask which family a method is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch
from pydantic import BaseModel

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..engine import Baseline, Engine
    from ..plan import Plan
    from ..prompt import EncodedInput
    from ..refine import RefinementRaw, ScreenRaw


@dataclass
class RawScores:
    """What a method computed for one item, before it becomes a result."""

    scores: torch.Tensor  # [n_units]
    per_target_token: torch.Tensor | None  # [n_target, n_units]
    target_log_prob: float  # log p(target | x)
    n_forward: int
    n_sequences: int
    n_backward: int = 0
    convergence_delta: float | None = None
    warnings: list[str] = field(default_factory=list)
    refinement: RefinementRaw | ScreenRaw | None = None  # refined runs only (``refine.py``)
    contrast_log_prob: float | None = None  # log p(contrast | x) of a contrastive item
    std_error: torch.Tensor | None = None  # [n_units], sampled methods only (of f, not per target token)

    def finite(self) -> bool:
        ends = [self.target_log_prob, 0.0 if self.contrast_log_prob is None else self.contrast_log_prob]
        ok = bool(torch.isfinite(self.scores).all()) and bool(torch.isfinite(torch.tensor(ends)).all())
        if self.per_target_token is not None:
            ok = ok and bool(torch.isfinite(self.per_target_token).all())
        return ok


class Scorer(Protocol):
    """``score(engine, plan, items)``: one RawScores per item, in order. Items of one call may
    share passes, but an item's scores never depend on the items beside it."""

    def __call__(self, engine: Engine, plan: Plan, items: Sequence[EncodedInput]) -> list[RawScores]: ...


class BaselineRule(Protocol):
    """``rule(tokenizer, options, vocab_size)``: the resolved baseline (None when the method
    takes none) and the parameters that record it in every result (e.g. ``removal``)."""

    def __call__(
        self, tokenizer: PreTrainedTokenizerBase, options: BaseModel, vocab_size: int
    ) -> tuple[Baseline | None, dict[str, str]]: ...


def no_baseline(
    tokenizer: PreTrainedTokenizerBase, options: BaseModel, vocab_size: int
) -> tuple[Baseline | None, dict[str, str]]:
    """The rule of methods that take no baseline."""
    return None, {}
