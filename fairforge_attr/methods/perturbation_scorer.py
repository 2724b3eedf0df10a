"""Running a perturbation method: its masks go to the engine, the engine's log-probs go back
to its solver. The method itself is two pure functions (``perturbation.py``, ``sobol.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel

from ..engine import Baseline, Engine, ScoreRequest, resolve_baseline
from ..engine.objective import contrastive_values
from .base import RawScores

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..plan import Plan
    from ..prompt import EncodedInput

# sample(n_units, options, seed) -> bool masks [n_variants, n_units], True = unit kept
Sampler = Callable[[int, Any, int], torch.Tensor]
# attribute(masks, values [n_variants, k], options) -> scores [k, n_units]
Solver = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
# std_error(masks, values [n_variants, k], options) -> [n_units], for the summed objective
StdError = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


@dataclass(frozen=True)
class PerturbationScorer:
    """A perturbation method's ``score``: masks out of a seed, scores out of masks + values."""

    sample: Sampler
    attribute: Solver
    std_error: StdError | None = None  # sampled methods: the scores' sampling uncertainty

    def __call__(self, engine: Engine, plan: Plan, items: Sequence[EncodedInput]) -> list[RawScores]:
        """Every item's variants go to the engine together, so short items share forward passes."""
        options, baseline = plan.options, plan.baseline
        if baseline is None:
            raise ValueError("a perturbation method needs a resolved baseline in its plan")
        masks = [self.sample(e.n_units, options, plan.seed) for e in items]
        # Row 0 of what the engine scores is always the full prompt: it gives f(x) for free
        # (the engine scores identical masks once, so methods that include it pay nothing).
        requests = [
            ScoreRequest(e, torch.cat([torch.ones(1, e.n_units, dtype=torch.bool), m]), baseline)
            for e, m in zip(items, masks)
        ]
        out = []
        for m, res in zip(masks, engine.score(requests)):
            per_token = res.log_probs[1:].double()
            contrast = res.contrast_log_probs
            # f of every variant (summed in float64): for a contrastive item, the difference
            values = contrastive_values(per_token, None if contrast is None else contrast[1:].double())
            totals = values.unsqueeze(-1)
            scores = self.attribute(m, totals, options)[0]
            se = self.std_error(m, totals, options) if self.std_error is not None else None
            ptt = self.attribute(m, per_token, options) if plan.per_target_token else None
            out.append(
                RawScores(
                    scores=scores,
                    per_target_token=ptt,
                    target_log_prob=float(res.log_probs[0].double().sum()),
                    contrast_log_prob=None if contrast is None else float(contrast[0].double().sum()),
                    n_forward=res.n_forward,
                    n_sequences=res.n_sequences,
                    std_error=se,
                )
            )
        return out


def removal_baseline(
    tokenizer: PreTrainedTokenizerBase, options: BaseModel, vocab_size: int
) -> tuple[Baseline, dict[str, str]]:
    """How a removed unit disappears (the ``baseline`` option), recorded as ``removal``."""
    baseline = resolve_baseline(tokenizer, options.baseline, vocab_size)
    return baseline, {"removal": baseline.description}
