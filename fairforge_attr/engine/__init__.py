"""The engine package: objective, baselines, batched scoring (and gradients)."""

from .baseline import Baseline, resolve_baseline
from .scoring import Engine, ScoreRequest, ScoreResult

__all__ = ["Baseline", "Engine", "ScoreRequest", "ScoreResult", "resolve_baseline"]
