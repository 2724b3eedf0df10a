"""Result types: what every method returns and every renderer or writer reads.

Scores are in nats of the objective f = log p(target | prompt) (teacher forcing, summed over
target tokens). A positive score means the unit raised the target's log-probability, a
negative score means it pushed the target down. A contrastive result (``contrast`` set)
explains f = log p(target | prompt) - log p(contrast | prompt): a positive score means the unit
made the target more likely *than the contrast*. ``normalized_score`` is the score divided by
the largest |score| of the same result, so it lies in [-1, 1] and keeps the sign; the unit
with the strongest influence has |normalized_score| == 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from .faithfulness.types import Faithfulness
from .types import AttributionMethod, Granularity

if TYPE_CHECKING:  # this module stays light: reading a result file must not import torch
    import torch

    from .methods.base import RawScores
    from .plan import Plan
    from .prompt import EncodedInput, Unit
    from .refine import StageRaw


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1)
    content: str


class Attribution(BaseModel):
    """The score of one input unit (token, word, sentence, paragraph or whole content of one
    message)."""

    text: str
    score: float
    normalized_score: float
    position: int = Field(description="index of the unit in the prompt, 0-based")
    message_index: int = Field(description="which message the unit belongs to (0 for a raw prompt)")
    role: str = Field(description="role of that message ('prompt' for a raw prompt)")
    char_start: int = Field(description="start offset in that message's content")
    char_end: int = Field(description="end offset (exclusive) in that message's content")
    refined: bool | None = Field(
        default=None,
        description="refined runs only: True if the unit was scored at this granularity, "
        "False if it lies in a coarse unit that was not refined, or the screen did not pick it "
        "(its score is then 0.0); for a coarse unit, whether it was refined",
    )
    coarse_position: int | None = Field(
        default=None,
        description="coarse-to-fine runs only: position of the unit's coarse unit in "
        "coarse_attributions (None when no coarse unit holds any of its tokens)",
    )
    std_error: float | None = Field(
        default=None,
        description="standard error of the score from the method's sampling (LIME, KernelSHAP, "
        "Sobol, SmoothGrad, SquareGrad, VarGrad, GradientSHAP); 0 where every sample was "
        "enumerated; None for the deterministic methods (occlusion, saliency, input x gradient, "
        "integrated gradients), for GradientSHAP with one sample and for units of an unrefined "
        "coarse unit",
    )


class RoleTotal(BaseModel):
    """The units of one role (system, user, assistant, tool, ... or 'prompt'), summed.

    ``score`` is the sum of the role's unit scores and ``abs_score`` the sum of their |score|
    (its share of the whole result's |score| is ``abs_score`` over the results' total). For
    additive methods (KernelSHAP, integrated gradients, input x gradient) ``score`` is the
    role's share of the explained difference; for occlusion it is the sum of single-unit
    effects, not the effect of removing the whole role (explain at ``granularity="message"``
    for that)."""

    role: str
    n_units: int
    score: float
    abs_score: float


def role_totals(attributions: list[Attribution]) -> list[RoleTotal]:
    """Per-role sums, roles in the order they first appear in the prompt."""
    sums: dict[str, list[float]] = {}
    for a in sorted(attributions, key=lambda a: a.position):
        acc = sums.setdefault(a.role, [0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += a.score
        acc[2] += abs(a.score)
    return [RoleTotal(role=r, n_units=int(n), score=s, abs_score=m) for r, (n, s, m) in sums.items()]


class StageCost(BaseModel):
    """One stage of a refinement: what it scored and what that cost."""

    stage: str = Field(description="'coarse' or 'fine'; a screened run: 'screen' or 'fine'")
    granularity: Granularity
    n_units: int = Field(description="units the stage scored")
    n_forward: int
    n_sequences: int
    n_backward: int = Field(default=0, description="backward passes (the screen's gradient)")


class Refinement(BaseModel):
    """How a refined result was computed (``refine.py``): coarse-to-fine (the coarse units
    scored first, which of them were refined) or screened (the gradient screen that picked the
    units scored exactly), and both stages' cost (``metadata.n_forward``, ``n_sequences`` and
    ``n_backward`` are their sums)."""

    coarse_granularity: Granularity | None = Field(default=None, description="coarse-to-fine runs")
    screen: str | None = Field(default=None, description="screened runs: the screening gradient method")
    refine_top_k: int
    refined: list[int] = Field(
        description="coarse-to-fine: positions of the refined units in coarse_attributions; "
        "screened: positions of the units scored exactly in attributions"
    )
    unrefined_score: float = Field(
        description="the score every unit not scored at this granularity carries (inside an "
        "unrefined coarse unit, or not picked by the screen)"
    )
    stages: list[StageCost]


class PerTargetToken(BaseModel):
    """Row i holds every input unit's score for target token i alone (rows sum to the scores
    of linear methods; Sobol rows are indices of each token's own log-prob)."""

    target_tokens: list[str]
    scores: list[list[float]]


class ResultMetadata(BaseModel):
    """How a result was computed. Also readable like a dict: ``metadata["n_forward"]``."""

    model: str
    device: str
    dtype: str
    seed: int | None
    n_forward: int = Field(description="forward passes that scored this item's variants")
    n_backward: int = 0
    n_sequences: int = Field(description="distinct sequences the model scored for this item")
    compute_time_seconds: float
    target_log_prob: float = Field(
        description="teacher-forced log p(target | prompt): f(x) unless contrastive"
    )
    contrast_log_prob: float | None = Field(
        default=None,
        description="contrastive runs: log p(contrast | prompt); f(x) = target_log_prob - contrast_log_prob",
    )
    params: dict[str, Any] = Field(description="the method options actually used")
    n_units: int
    n_prompt_tokens: int
    n_target_tokens: int
    convergence_delta: float | None = None
    recomputed_in_float32: bool = False
    target_generated: bool = False
    warnings: list[str] = Field(default_factory=list)
    refinement: Refinement | None = Field(default=None, description="coarse-to-fine runs only")

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)


class AttributionResult(BaseModel):
    """Attributions of one (prompt, target) pair."""

    prompt: str = Field(description="the prompt exactly as the model saw it (template applied)")
    messages: list[Message] | None = None
    target: str
    contrast: str | None = Field(
        default=None, description="the answer the target is compared with (a contrastive result)"
    )
    method: AttributionMethod
    granularity: Granularity
    attributions: list[Attribution]
    per_target_token: PerTargetToken | None = None
    metadata: ResultMetadata
    coarse_attributions: list[Attribution] | None = Field(
        default=None,
        description="coarse-to-fine runs only: the coarse units' scores (the first stage)",
    )

    @computed_field  # derived from the attributions, so it can never disagree with them
    @property
    def role_totals(self) -> list[RoleTotal]:
        """The scores summed per role (see :class:`RoleTotal`)."""
        return role_totals(self.attributions)

    faithfulness: Faithfulness | None = Field(
        None, description="how well the scores predict removals (explain(..., faithfulness=True))"
    )

    @property
    def contrastive(self) -> bool:
        """Whether the scores explain log p(target) - log p(contrast) rather than log p(target)."""
        return self.contrast is not None

    @property
    def objective_value(self) -> float:
        """f(x): log p(target | prompt), minus log p(contrast | prompt) for a contrastive result."""
        m = self.metadata
        return m.target_log_prob - (m.contrast_log_prob or 0.0)

    def get_top_k(self, k: int = 10) -> list[Attribution]:
        """The k units with the largest |score|, strongest first (ties: refined units first,
        then prompt order)."""
        ranked = sorted(self.attributions, key=lambda a: (-abs(a.score), a.refined is False, a.position))
        return ranked[: max(k, 0)]

    def _repr_html_(self) -> str:
        """The heatmap and top-10 table, drawn by Jupyter when a result ends a cell."""
        from .render.html import to_fragment  # rendering reads results, never the reverse at import

        return to_fragment(self)

    def to_dict_for_visualization(self) -> dict[str, list[Any]]:
        """Parallel lists in prompt order, ready for plotting."""
        return {
            "tokens": [a.text for a in self.attributions],
            "scores": [a.score for a in self.attributions],
            "normalized_scores": [a.normalized_score for a in self.attributions],
            "roles": [a.role for a in self.attributions],
            "message_indices": [a.message_index for a in self.attributions],
        }


class BatchAttributionResult(BaseModel):
    """Results of ``explain_batch``, in input order. Behaves like a read-only list."""

    results: list[AttributionResult]
    model_name: str
    total_compute_time_seconds: float

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AttributionResult]:  # type: ignore[override]
        return iter(self.results)

    def __getitem__(self, index: int) -> AttributionResult:
        return self.results[index]


def build_result(
    encoded: EncodedInput,
    plan: Plan,
    raw: RawScores,
    *,
    model: str,
    device: str,
    dtype: str,
    seconds: float,
    recomputed: bool = False,
    target_generated: bool = False,
) -> AttributionResult:
    """The result of one item: its units with their scores (and normalised scores), and how
    they were computed. ``recomputed``: the item was redone in float32 after ``dtype`` gave
    NaN/inf."""
    attributions = _attributions(encoded.units, raw.scores.double().tolist(), raw.std_error)
    coarse, refinement = None, None
    if raw.refinement is not None:
        coarse, refinement = _refinement(plan, raw, attributions)
    ptt = None
    if raw.per_target_token is not None:
        ptt = PerTargetToken(
            target_tokens=encoded.target_tokens, scores=raw.per_target_token.double().tolist()
        )
    meta = ResultMetadata(
        model=model,
        device=device,
        dtype="float32" if recomputed else dtype,
        seed=plan.recorded_seed,
        n_forward=raw.n_forward,
        n_backward=raw.n_backward,
        n_sequences=raw.n_sequences,
        compute_time_seconds=seconds,
        target_log_prob=raw.target_log_prob,
        contrast_log_prob=raw.contrast_log_prob,
        params=plan.params,
        n_units=encoded.n_units,
        n_prompt_tokens=encoded.prompt_length,
        n_target_tokens=encoded.n_target_tokens,
        convergence_delta=raw.convergence_delta,
        recomputed_in_float32=recomputed,
        target_generated=target_generated,
        warnings=([f"recomputed in float32: {dtype} gave NaN/inf"] if recomputed else []) + raw.warnings,
        refinement=refinement,
    )
    return AttributionResult(
        prompt=encoded.prompt_text,
        messages=encoded.messages,
        target=encoded.target_text,
        contrast=None if encoded.contrast is None else encoded.contrast.target_text,
        method=plan.method,
        granularity=plan.granularity,
        attributions=attributions,
        per_target_token=ptt,
        metadata=meta,
        coarse_attributions=coarse,
    )


def _attributions(
    units: Sequence[Unit], scores: list[float], std_error: torch.Tensor | None = None
) -> list[Attribution]:
    peak = max((abs(s) for s in scores), default=0.0)
    # NaN marks a unit the sampling did not score (inside an unrefined coarse unit): None
    errors = [None if e != e else e for e in std_error.double().tolist()] if std_error is not None else None
    return [
        Attribution(
            text=u.text,
            score=scores[i],
            normalized_score=scores[i] / peak if peak > 0 else 0.0,
            position=i,
            message_index=u.message_index,
            role=u.role,
            char_start=u.char_start,
            char_end=u.char_end,
            std_error=None if errors is None else errors[i],
        )
        for i, u in enumerate(units)
    ]


def _refinement(
    plan: Plan, raw: RawScores, attributions: list[Attribution]
) -> tuple[list[Attribution] | None, Refinement]:
    """Mark each fine unit refined or not (with its coarse unit), and the coarse stage; a
    screened run has no coarse stage."""
    from .refine import UNREFINED_SCORE, ScreenRaw

    info = raw.refinement
    if isinstance(info, ScreenRaw):
        scored = set(info.scored)
        for a in attributions:
            a.refined = a.position in scored
        stages = [
            _stage("screen", plan.granularity, info.screen),
            _stage("fine", plan.granularity, info.fine),
        ]
        return None, Refinement(
            screen=plan.screen.value,
            refine_top_k=plan.refine_top_k,
            refined=info.scored,
            unrefined_score=UNREFINED_SCORE,
            stages=stages,
        )
    refined = set(info.refined)
    for a, owner in zip(attributions, info.owner):
        a.refined = owner in refined
        a.coarse_position = owner if owner >= 0 else None
    coarse = _attributions(info.coarse_units, info.coarse_scores.tolist(), info.coarse_std_error)
    for a in coarse:
        a.refined = a.position in refined
    stages = [
        _stage("coarse", plan.coarse_granularity, info.coarse),
        _stage("fine", plan.granularity, info.fine),
    ]
    return coarse, Refinement(
        coarse_granularity=plan.coarse_granularity,
        refine_top_k=plan.refine_top_k,
        refined=info.refined,
        unrefined_score=UNREFINED_SCORE,
        stages=stages,
    )


def _stage(name: str, granularity: Granularity, cost: StageRaw) -> StageCost:
    return StageCost(
        stage=name,
        granularity=granularity,
        n_units=cost.n_units,
        n_forward=cost.n_forward,
        n_sequences=cost.n_sequences,
        n_backward=cost.n_backward,
    )
