"""What a faithfulness check is asked (``FaithfulnessOptions``) and what it reports
(``Faithfulness``). Pydantic only: results, schemas and readers import this without torch."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The fractions of units removed (deletion) or restored (insertion) at which f is re-scored.
# k = ceil(fraction x n_units) units, so every fraction > 0 moves at least one unit; the areas
# are taken over the fraction actually moved, k / n_units (equal k: a segment of width 0).
FRACTIONS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
# ERASER's bins for the area over the perturbation curve (DeYoung et al. 2020, section 4).
AOPC_BINS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)


class FaithfulnessOptions(BaseModel):
    """How a result's faithfulness is measured. Every random draw comes from ``seed`` and the
    number of units alone, so every method explained on one item meets the same random
    orderings and the same held-out ablations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_ablations: int = Field(
        32, ge=2, description="LDS: held-out random ablations, each unit kept with keep_probability"
    )
    keep_probability: float = Field(0.5, gt=0.0, lt=1.0, description="LDS: chance that a unit is kept")
    n_random: int = Field(8, ge=1, description="random orderings averaged for the gain over random")
    top_k: int = Field(
        3, ge=1, description="units removed / kept for comprehensiveness / sufficiency at top-k"
    )
    seed: int = Field(0, description="seed of the random orderings and of the LDS ablations")
    baseline: str | int | None = Field(
        None,
        description="how a unit is removed, as for the perturbation methods: pad (default), unk, "
        "eos, hide, a token id or a one-token string",
    )

    @classmethod
    def coerce(cls, value: Any) -> FaithfulnessOptions | None:
        """``True``/``None``/``False``, a dict of options or an instance -> options or None."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"faithfulness must be True, False, a dict or FaithfulnessOptions, not {value!r}")


class Faithfulness(BaseModel):
    """How well a result's scores predict what removing units does to f (nats of
    log p(target)), measured with forward passes only.

    Orderings: by |score| (the headline figures); by score, most positive first (``signed_*``,
    only when some score is negative, since otherwise it is the same order); and ``n_random``
    random orderings (``random_*``, their mean). Gains say how much better than random the
    scores do, so that > 0 is better for every gain.

    - Deletion / insertion curves (Petsiuk et al. 2018, RISE): f after removing the first k
      units of the ordering from the full input / after restoring them to the input with every
      unit removed, at ``fractions``; the areas are of f normalised to (f - f_empty) /
      (f_full - f_empty) over the fraction moved (None unless removing every unit lowers f by
      at least 0.001 nats). Deletion: lower is better; insertion: higher is better.
    - Comprehensiveness / sufficiency (ERASER, DeYoung et al. 2020): f_full - f(without the
      top-k) / f_full - f(only the top-k), in nats; the headline values are their mean over
      ``aopc_bins`` (AOPC), ``*_top_k`` at ``top_k`` units. Comprehensiveness: higher is better;
      sufficiency: lower is better.
    - LDS (linear datamodeling score, Cohen-Wang et al. 2024, ContextCite): Spearman
      correlation between sum of the kept units' scores and f over ``n_ablations`` random
      ablations (each unit kept with probability 0.5); random: the same with the scores
      shuffled among the units. It judges the whole score vector.
    """

    model_config = ConfigDict(extra="forbid")

    fractions: list[float]
    aopc_bins: list[float]
    top_k: int = Field(description="units in the top-k figures (the option, capped at n_units)")
    n_ablations: int
    n_random: int
    seed: int
    removal: str = Field(description="how removed units disappeared")
    f_full: float = Field(description="f with every unit present")
    f_empty: float = Field(description="f with every unit removed")
    deletion_curve: list[float] = Field(description="f at each fraction removed, by |score|")
    insertion_curve: list[float] = Field(description="f at each fraction restored, by |score|")
    deletion_auc: float | None
    insertion_auc: float | None
    comprehensiveness: float | None
    sufficiency: float | None
    comprehensiveness_top_k: float | None
    sufficiency_top_k: float | None
    lds: float | None
    signed_deletion_auc: float | None = None
    signed_insertion_auc: float | None = None
    signed_comprehensiveness: float | None = None
    signed_sufficiency: float | None = None
    random_deletion_curve: list[float]
    random_insertion_curve: list[float]
    random_deletion_auc: float | None
    random_insertion_auc: float | None
    random_comprehensiveness: float | None
    random_sufficiency: float | None
    random_comprehensiveness_top_k: float | None
    random_sufficiency_top_k: float | None
    random_lds: float | None
    deletion_gain: float | None = Field(description="random_deletion_auc - deletion_auc")
    insertion_gain: float | None = Field(description="insertion_auc - random_insertion_auc")
    comprehensiveness_gain: float | None = Field(description="comprehensiveness - random_comprehensiveness")
    sufficiency_gain: float | None = Field(description="random_sufficiency - sufficiency")
    lds_gain: float | None = Field(description="lds - random_lds")
    n_sequences: int = Field(description="distinct variants this check scored for this result")
    n_forward: int = Field(description="forward passes those variants took (shared with packed items)")
    compute_time_seconds: float


__all__ = ["AOPC_BINS", "FRACTIONS", "Faithfulness", "FaithfulnessOptions"]
