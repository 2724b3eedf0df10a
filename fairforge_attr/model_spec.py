"""How to load the model, as plain values: what the CLI's model flags say and what each Ray
worker receives (so the two cannot drift apart)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import AttributionExplainer


@dataclass(frozen=True)
class ModelSpec:
    """A model to load (picklable: shipped to each Ray actor)."""

    model: str | None = None  # folder or hub id; None: the demo model
    device: str | None = None
    dtype: str | None = None
    device_map: str | dict[str, Any] | None = None
    max_length: int | None = None
    token_budget: int | None = None
    revision: str | None = None
    trust_remote_code: bool = False

    def load(self, *, quiet: bool = False) -> AttributionExplainer:
        """The library's explainer for this model. ``quiet``: no transformers progress bars
        (a worker's bars would interleave with the driver's progress)."""
        from .api import AttributionExplainer

        if quiet:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        return AttributionExplainer(
            self.model,
            device=self.device,
            dtype=self.dtype,
            device_map=self.device_map,
            max_length=self.max_length,
            token_budget=self.token_budget,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
        )
