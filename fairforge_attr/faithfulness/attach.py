"""Faithfulness for results: of freshly computed ones (``explain(..., faithfulness=True)``) and
of existing ones, whose items are encoded again (``explainer.faithfulness(result)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..engine import Baseline, Engine
from ..errors import FairForgeError, InvalidRequestError
from ..prompt import EncodedInput, encode
from ..results import AttributionResult
from .scoring import FaithfulnessTask, ValueOf, score_faithfulness, summed_log_prob
from .types import FaithfulnessOptions

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def task_of(encoded: EncodedInput, result: AttributionResult) -> FaithfulnessTask:
    return FaithfulnessTask(encoded, np.array([a.score for a in result.attributions], dtype=np.float64))


def attach(
    engine: Engine,
    pairs: Sequence[tuple[EncodedInput, AttributionResult]],
    options: FaithfulnessOptions,
    baseline: Baseline,
    *,
    value_of: ValueOf = summed_log_prob,
) -> list[AttributionResult | FairForgeError]:
    """Each result with its ``faithfulness`` filled in, or the error that stopped it. The items
    share forward passes; if the shared call fails, each item is tried alone, so one bad item
    does not sink the others."""
    try:
        checks = score_faithfulness(
            engine, [task_of(e, r) for e, r in pairs], options, baseline, value_of=value_of
        )
    except FairForgeError as exc:
        if len(pairs) == 1:
            return [exc]
        return [attach(engine, [p], options, baseline, value_of=value_of)[0] for p in pairs]
    return [r.model_copy(update={"faithfulness": f}) for (_, r), f in zip(pairs, checks)]


def encode_result(
    tokenizer: PreTrainedTokenizerBase, result: AttributionResult, max_length: int | None = None
) -> EncodedInput:
    """The item of an existing result, encoded again; its units must be the result's units (the
    same tokenizer and granularity), or the scores would be checked against other units."""
    encoded = encode(
        tokenizer,
        target=result.target,
        granularity=result.granularity,
        messages=result.messages,
        prompt=result.prompt if result.messages is None else None,
        max_length=max_length,
        contrast=result.contrast,  # a contrastive result is checked against its own f
    )
    mine = [(u.text, u.message_index, u.char_start, u.char_end) for u in encoded.units]
    theirs = [(a.text, a.message_index, a.char_start, a.char_end) for a in result.attributions]
    if mine != theirs:
        raise InvalidRequestError(
            f"this result's {len(theirs)} units do not match the {len(mine)} units this explainer's "
            f"tokenizer makes of its input ({result.granularity.value} granularity); check it with the "
            f"model that computed it ({result.metadata.model})"
        )
    return encoded


__all__ = ["attach", "encode_result", "task_of"]
