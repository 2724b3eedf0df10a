"""Refinement: score cheaply first, then score exactly only the units that the first stage ranks
highest. Two ways: coarse-to-fine (coarse units first, then fine units only inside the top
ones) and screened (a gradient screen ranks every unit, the method scores its top ones).

Coarse-to-fine, ``explain(..., granularity="word", coarse_granularity="sentence", refine_top_k=5)``:

1. *Coarse stage.* The method scores the item's coarse units: exactly what
   ``granularity="sentence"`` would give (same variants, same scores).
2. *Fine stage.* The ``refine_top_k`` coarse units with the largest |score| (ties: the earlier
   unit) are refined: the method scores the fine units inside them while every other unit of
   the prompt stays as it is. For occlusion these scores equal exhaustive fine occlusion's
   (one unit removed at a time, everything else kept, either way); for LIME, KernelSHAP and
   Sobol they attribute f to the refined units with the rest of the prompt held fixed. Both
   stages use the same options (``n_samples``, ``baseline``, ...) and seed. The fine stage's
   variants all share the prompt up to the first refined unit, so the engine runs them only
   from there on (``engine/anchor.py``).
3. *Result,* at the fine granularity. A fine unit belongs to the coarse unit that holds most of
   its tokens. Units inside unrefined coarse units get ``UNREFINED_SCORE`` (0.0) and
   ``refined=False``: they rank below every refined unit with a nonzero score, and after
   refined units of equal |score| (``get_top_k``), so they never outrank a refined unit by
   accident. Their coarse unit's score is in ``result.coarse_attributions``;
   ``metadata.refinement`` holds what was refined and both stages' cost.

Screened, ``explain(..., granularity="word", screen="integrated_gradients", refine_top_k=50)``
(after AttriBoT's proxies, Liu et al. 2024, https://arxiv.org/abs/2411.15102: a cheap score
picks the candidates, the exact method scores only those):

1. *Screen.* The gradient method ``screen`` (``plan.SCREENS``) scores every unit: saliency or
   input x gradient in one forward+backward pass of the item, integrated gradients with 8
   steps in 8 (and 2 forward passes for its end points).
2. *Exact stage.* The ``refine_top_k`` units with the largest |screen score| (ties: the earlier
   unit) are scored by the method, every other unit of the prompt kept, exactly as the fine
   stage above (occlusion: the same scores as exhaustive occlusion for those units).
3. *Result.* Scored units carry ``refined=True``; the others get ``UNREFINED_SCORE`` and
   ``refined=False``, with the same ranking rule as above. The screen's scores are not stored
   (they rank, they do not attribute); ``metadata.refinement`` holds the scored positions and
   both stages' cost (the screen's ``n_backward`` too).

Gradient methods cost the same at every granularity (one pass scores every token), so
refinement would save nothing there: asking for it is an error (``plan.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from .methods.base import RawScores
from .methods.registry import get_method
from .plan import SCREENS
from .prompt import EncodedInput, Unit

if TYPE_CHECKING:
    from .engine import Engine
    from .plan import Plan

UNREFINED_SCORE = 0.0


@dataclass
class StageRaw:
    """What one stage cost for one item."""

    n_units: int
    n_forward: int
    n_sequences: int
    n_backward: int = 0


@dataclass
class RefinementRaw:
    """The coarse stage of one item and how its fine units relate to it."""

    coarse_units: list[Unit]
    coarse_scores: torch.Tensor  # [n_coarse]
    coarse_std_error: torch.Tensor | None  # [n_coarse], sampled methods only
    refined: list[int]  # positions of the refined coarse units, in prompt order
    owner: list[int]  # per fine unit: its coarse unit (-1: none holds any of its tokens)
    coarse: StageRaw
    fine: StageRaw


@dataclass
class ScreenRaw:
    """The screen of one item: which units it picked and both stages' cost."""

    scored: list[int]  # positions of the units scored exactly, in prompt order
    screen: StageRaw
    fine: StageRaw


def coarse_owner(encoded: EncodedInput, coarse_units: Sequence[Unit]) -> list[int]:
    """Per fine unit of ``encoded``: the coarse unit holding most of its tokens (ties: the
    earlier one). A fine unit that no coarse unit holds (a whitespace token between two words
    at TOKEN granularity) goes with the nearest coarse unit of its message, the one before it
    if any; -1 only when its message has no coarse unit."""
    owner_of_token = torch.full((encoded.seq_len,), -1, dtype=torch.long)
    for c, unit in enumerate(coarse_units):
        owner_of_token[list(unit.token_indices)] = c
    owners = []
    for unit in encoded.units:
        held = owner_of_token[list(unit.token_indices)]
        held = held[held >= 0]
        owners.append(int(torch.bincount(held).argmax()) if held.numel() else _nearest(unit, coarse_units))
    return owners


def _nearest(unit: Unit, coarse_units: Sequence[Unit]) -> int:
    same = [c for c, cu in enumerate(coarse_units) if cu.message_index == unit.message_index]
    first = min(unit.token_indices)
    before = [c for c in same if max(coarse_units[c].token_indices) < first]
    if before:
        return before[-1]
    return same[0] if same else -1


def top_units(scores: torch.Tensor, k: int) -> list[int]:
    """The ``k`` positions with the largest |score| (ties: the earlier), in prompt order."""
    order = sorted(range(scores.shape[0]), key=lambda i: (-abs(float(scores[i])), i))
    return sorted(order[:k])


def score_refined(engine: Engine, plan: Plan, items: Sequence[EncodedInput]) -> list[RawScores]:
    """Both stages for a group of items (each stage packs the group's variants together)."""
    score = plan.spec.score
    coarse_items = [_with_units(e, _coarse_units(e)) for e in items]
    coarse = score(engine, plan, coarse_items)
    owners = [coarse_owner(e, c.units) for e, c in zip(items, coarse_items)]
    chosen = [top_units(c.scores, plan.refine_top_k or 1) for c in coarse]
    inside = [[i for i, o in enumerate(own) if o in set(picked)] for own, picked in zip(owners, chosen)]
    todo = [i for i, fine in enumerate(inside) if fine]
    fine = dict(
        zip(
            todo,
            score(
                engine, plan, [_with_units(items[i], [items[i].units[u] for u in inside[i]]) for i in todo]
            ),
        )
    )
    out = []
    for i, e in enumerate(items):
        stage1, stage2 = coarse[i], fine.get(i)
        # NaN: not sampled (results store None); a stage that sampled nothing has no errors
        scores, ptt, std = _spread(e, plan, stage2, inside[i], sampled=stage1.std_error is not None)
        fine_cost = StageRaw(len(inside[i]), *_cost(stage2))
        out.append(
            RawScores(
                scores=scores,
                per_target_token=ptt,
                target_log_prob=stage1.target_log_prob,
                contrast_log_prob=stage1.contrast_log_prob,
                n_forward=stage1.n_forward + fine_cost.n_forward,
                n_sequences=stage1.n_sequences + fine_cost.n_sequences,
                warnings=stage1.warnings + (stage2.warnings if stage2 is not None else []),
                std_error=std,
                refinement=RefinementRaw(
                    coarse_units=coarse_items[i].units,
                    coarse_scores=stage1.scores.double(),
                    coarse_std_error=stage1.std_error,
                    refined=chosen[i],
                    owner=owners[i],
                    coarse=StageRaw(coarse_items[i].n_units, stage1.n_forward, stage1.n_sequences),
                    fine=fine_cost,
                ),
            )
        )
    return out


def score_screened(engine: Engine, plan: Plan, items: Sequence[EncodedInput]) -> list[RawScores]:
    """The screen, then the method on the units it picked, for a group of items."""
    screen = get_method(plan.screen)
    # the screen's own Plan: its options and baseline (plan.SCREENS), no refinement
    screen_plan = replace(
        plan,
        method=screen.method,
        options=screen.parse_options(SCREENS[plan.screen]),
        baseline=plan.screen_baseline,
        extra_params=(),
        per_target_token=False,
        screen=None,
        screen_baseline=None,
        refine_top_k=None,
    )
    screened = screen.score(engine, screen_plan, items)
    picked = [top_units(r.scores, plan.refine_top_k or 1) for r in screened]
    todo = [i for i, p in enumerate(picked) if p]
    exact = plan.spec.score(
        engine, plan, [_with_units(items[i], [items[i].units[u] for u in picked[i]]) for i in todo]
    )
    fine = dict(zip(todo, exact))
    return [_screened_raw(e, plan, screened[i], fine.get(i), picked[i]) for i, e in enumerate(items)]


def _screened_raw(
    e: EncodedInput, plan: Plan, screen: RawScores, stage: RawScores | None, picked: list[int]
) -> RawScores:
    """One item's result: exact scores at the picked units, ``UNREFINED_SCORE`` elsewhere."""
    sampled = stage is not None and stage.std_error is not None
    scores, ptt, std = _spread(e, plan, stage, picked, sampled=sampled)
    cost = StageRaw(e.n_units, screen.n_forward, screen.n_sequences, screen.n_backward)
    fine_cost = StageRaw(len(picked), *_cost(stage))
    # f(x) from the exact stage when it ran (the perturbation engine's value, as unscreened)
    ends = stage if stage is not None else screen
    return RawScores(
        scores=scores,
        per_target_token=ptt,
        target_log_prob=ends.target_log_prob,
        contrast_log_prob=ends.contrast_log_prob,
        n_forward=cost.n_forward + fine_cost.n_forward,
        n_sequences=cost.n_sequences + fine_cost.n_sequences,
        n_backward=cost.n_backward,
        # the screen's own warnings (integrated gradients' convergence gap at 8 steps) are about
        # a ranking the user did not ask to read: only the exact stage's are the result's
        warnings=stage.warnings if stage is not None else [],
        std_error=std,
        refinement=ScreenRaw(scored=picked, screen=cost, fine=fine_cost),
    )


def _spread(
    e: EncodedInput, plan: Plan, stage: RawScores | None, positions: list[int], *, sampled: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The item's scores, per-target-token rows and standard errors with ``stage``'s values at
    ``positions`` and ``UNREFINED_SCORE`` elsewhere (NaN errors: not sampled; None when
    nothing was ``sampled``)."""
    scores = torch.full((e.n_units,), UNREFINED_SCORE, dtype=torch.float64)
    ptt = None
    if plan.per_target_token:
        ptt = torch.full((e.n_target_tokens, e.n_units), UNREFINED_SCORE, dtype=torch.float64)
    std = torch.full((e.n_units,), float("nan"), dtype=torch.float64) if sampled else None
    if stage is not None:
        scores[positions] = stage.scores.double()
        if std is not None and stage.std_error is not None:
            std[positions] = stage.std_error.double()
        if ptt is not None and stage.per_target_token is not None:
            ptt[:, positions] = stage.per_target_token.double()
    return scores, ptt, std


def _with_units(encoded: EncodedInput, units: list[Unit]) -> EncodedInput:
    """The item with other units; a contrastive item's twin (the same prompt before the other
    answer) gets them too, since the engine masks both with the same table."""
    out = replace(encoded, units=units)
    if encoded.contrast is not None:
        out.contrast = replace(encoded.contrast, units=units)
    return out


def _coarse_units(encoded: EncodedInput) -> list[Unit]:
    if encoded.coarse_units is None:
        raise ValueError(
            "refinement needs items encoded with their coarse units (encode(coarse_granularity=))"
        )
    return encoded.coarse_units


def _cost(raw: RawScores | None) -> tuple[int, int]:
    return (0, 0) if raw is None else (raw.n_forward, raw.n_sequences)
