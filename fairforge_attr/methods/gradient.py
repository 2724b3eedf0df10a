"""Gradient methods on captum: f = log p(target | prompt) differentiated with respect to the
input embeddings of the content tokens (template tokens are held fixed and get no score).

Every method asks captum for a per-element map [rows, n_content_tokens, hidden]; a reduction
over the hidden dimension turns it into one number per token, and each unit sums its tokens.

- Sum over the hidden dimension (integrated gradients, GradientSHAP, input x gradient): these
  maps are (x - baseline) * gradient, a first-order share of f. Their sum over every element is
  the method's estimate of f(x) - f(baseline) (exactly so for integrated gradients, by
  completeness), so summing keeps that meaning and the sign: positive scores raised the
  target's log-probability, negative ones lowered it. The score is in nats.
- L2 norm over the hidden dimension (saliency, SmoothGrad): a bare gradient says how fast f
  changes per unit of embedding, in a direction; the sum of its components depends on the
  arbitrary basis of the embedding space (and cancels), its length does not. Scores are
  magnitudes (>= 0) of sensitivity, not nats.
- SquareGrad and VarGrad average squared gradients: the score is sqrt of the sum over the
  hidden dimension, i.e. the L2 norm of the element-wise root-mean-square, so all four
  saliency-style scores share one scale: SquareGrad = sqrt(E ||g||^2) (RMS gradient length)
  and VarGrad = sqrt(E ||g - E g||^2) (spread of the gradient), with
  SquareGrad^2 = SmoothGrad^2 + VarGrad^2 for every token.

Noise (SmoothGrad family, GradientSHAP) is Gaussian with standard deviation ``stdev`` times
the standard deviation of the item's content embeddings, so one setting means the same amount
of noise for every model. Random methods draw from a seeded fork of torch's (and numpy's)
global generators: the same seed gives the same scores and the caller's RNG state is left as
it was.

Steps and samples run in chunks of rows sized by the engine's token budget
(``token_budget // seq_len``; out of memory halves it). ``per_target_token`` replicates the
input once per target token plus once for f and differentiates each row's own output, so it
costs (n_target + 1) times the forward+backward sequences of the plain method, packed into the
same chunks. Deterministic methods give every row the same points, so the rows of integrated
gradients and input x gradient sum to the scores; noisy methods draw each row's noise afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from captum.attr import (
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)
from pydantic import BaseModel, ConfigDict, Field

from ..engine.baseline import HIDE, Baseline, resolve_baseline
from ..engine.gradients import EmbeddingObjective
from ..errors import InvalidRequestError

ZERO = "zero"
COMPLETENESS_TOLERANCE = 0.05  # |convergence_delta| above this share of the gap warns


# ------------------------------------------------------------------------------ options
class GradientOptions(BaseModel):
    """Options every gradient method takes (none so far)."""

    model_config = ConfigDict(extra="forbid")


class SaliencyOptions(GradientOptions):
    pass


class InputXGradientOptions(GradientOptions):
    pass


_BASELINE_HELP = (
    "the embedding the path starts from at every content position: 'pad' (default: the pad "
    "token's embedding, else unk, else eos; the same reference the perturbation methods "
    "remove units to), 'zero' (the zero vector), 'unk', 'eos', a token id, or a one-token string"
)


class IntegratedGradientsOptions(GradientOptions):
    n_steps: int = Field(
        default=32,
        ge=1,
        le=10_000,
        description="points on the straight path from the baseline to the input (forward+backward "
        "sequences); more steps, smaller convergence_delta",
    )
    baseline: str | int = Field(default="pad", description=_BASELINE_HELP)
    integration: Literal[
        "gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right"
    ] = Field(
        default="gausslegendre",
        description="quadrature rule for the path integral (captum's); Gauss-Legendre converges "
        "fastest for smooth paths",
    )


class GradientShapOptions(GradientOptions):
    n_samples: int = Field(
        default=32,
        ge=1,
        le=10_000,
        description="random points between the baseline and the (noisy) input; forward+backward sequences",
    )
    stdev: float = Field(
        default=0.0,
        ge=0,
        description="Gaussian noise added to the input before each sample, as a fraction of the "
        "content embeddings' standard deviation (0 = none, captum's and SHAP's default)",
    )
    baseline: str | int = Field(default="pad", description=_BASELINE_HELP)


class NoiseTunnelOptions(GradientOptions):
    n_samples: int = Field(
        default=32,
        ge=2,
        le=10_000,
        description="noisy copies of the input whose gradients are averaged; forward+backward sequences",
    )
    stdev: float = Field(
        default=0.5,
        gt=0,
        description="standard deviation of the Gaussian noise, as a fraction of the content "
        "embeddings' standard deviation (0.5 is about 10% of their range, the low end of the "
        "10-20% that Smilkov et al. recommend)",
    )


# ---------------------------------------------------------------- pure tensor functions
def reduce_sum(maps: torch.Tensor) -> torch.Tensor:
    """[rows, tokens, hidden] -> [rows, tokens]: signed first-order shares (nats)."""
    return maps.double().sum(-1)


def reduce_l2(maps: torch.Tensor) -> torch.Tensor:
    """[rows, tokens, hidden] -> [rows, tokens]: length of the gradient."""
    return torch.linalg.vector_norm(maps.double(), dim=-1)


def reduce_root_sum(maps: torch.Tensor) -> torch.Tensor:
    """[rows, tokens, hidden] of second moments -> [rows, tokens]: sqrt of their sum. Clamped
    at 0 because captum's VarGrad, E[g^2] - E[g]^2, can round to a tiny negative number."""
    return maps.double().clamp(min=0).sum(-1).sqrt()


def sum_into_units(token_scores: torch.Tensor, token_units: torch.Tensor, n_units: int) -> torch.Tensor:
    """[rows, tokens] -> [rows, n_units]: each unit sums the scores of its tokens."""
    out = torch.zeros(token_scores.shape[0], n_units, dtype=torch.float64)
    return out.index_add_(1, token_units.cpu(), token_scores.double().cpu())


def resolve_embedding_baseline(tokenizer, spec: str | int, vocab_size: int) -> Baseline:
    """A baseline token for the path methods; ``token_id=None`` means the zero embedding."""
    if spec == ZERO:
        return Baseline(None, "zero embedding")
    if spec == HIDE:
        raise InvalidRequestError(
            "baseline='hide' only exists for perturbation methods; gradient methods need an "
            "embedding: 'pad', 'zero', 'unk', 'eos', a token id or a one-token string"
        )
    return resolve_baseline(tokenizer, spec, vocab_size)


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """captum draws noise from torch's global RNG (on the input's device) and GradientSHAP's
    path points from numpy's: seed both for the duration, then restore the caller's state."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


# ------------------------------------------------------------------- captum attributions
@dataclass(frozen=True)
class _Call:
    options: Any
    baseline: torch.Tensor | None  # [n_content, H]
    sigma: float  # absolute noise standard deviation
    rows: int  # sequences per forward pass


# Each takes inputs [g, n_content, H] (g copies of x) and one captum target per row and
# returns the per-element map [g, n_content, H].
def _saliency(obj, inputs, targets, call: _Call) -> torch.Tensor:
    return Saliency(obj).attribute(inputs, target=targets, abs=False)


def _input_x_gradient(obj, inputs, targets, call: _Call) -> torch.Tensor:
    return InputXGradient(obj).attribute(inputs, target=targets)


def _integrated_gradients(obj, inputs, targets, call: _Call) -> torch.Tensor:
    return IntegratedGradients(obj).attribute(
        inputs,
        baselines=call.baseline.unsqueeze(0).expand_as(inputs),
        target=targets,
        n_steps=call.options.n_steps,
        method=call.options.integration,
        internal_batch_size=max(call.rows, len(targets)),
    )


def _gradient_shap(obj, inputs, targets, call: _Call) -> torch.Tensor:
    # captum's GradientShap scores all its samples in one pass: feed it chunks and average.
    per_pass = max(1, call.rows // len(targets))
    total, done = torch.zeros_like(inputs), 0
    while done < call.options.n_samples:
        k = min(per_pass, call.options.n_samples - done)
        part = GradientShap(obj).attribute(
            inputs, baselines=call.baseline.unsqueeze(0), n_samples=k, stdevs=call.sigma, target=targets
        )
        total, done = total + part * k, done + k
    return total / call.options.n_samples


def _noise_tunnel(nt_type: str) -> Callable[..., torch.Tensor]:
    def attribution(obj, inputs, targets, call: _Call) -> torch.Tensor:
        return NoiseTunnel(Saliency(obj)).attribute(
            inputs,
            nt_type=nt_type,
            nt_samples=call.options.n_samples,
            nt_samples_batch_size=max(1, call.rows // len(targets)),
            stdevs=call.sigma,
            target=targets,
            abs=False,
        )

    return attribution


# --------------------------------------------------------------------------- the method
@dataclass(frozen=True)
class GradientMethod:
    """One gradient method: a captum attribution, its reduction, and what it needs."""

    attribution: Callable[..., torch.Tensor]
    reduce: Callable[[torch.Tensor], torch.Tensor]
    deterministic: bool
    baseline: bool = False  # takes a baseline embedding
    noise: bool = False  # takes a relative noise ``stdev``
    delta: bool = False  # reports the completeness gap as convergence_delta
    evaluates_at_input_only: bool = False  # every forward is at x, so f(x) comes for free

    def __post_init__(self) -> None:
        if self.delta and self.reduce is not reduce_sum:
            raise ValueError("completeness needs the scores to sum the attribution map")

    def attribute(
        self,
        engine,
        encoded,
        options: BaseModel,
        seed: int,
        per_target_token: bool,
        baseline: Baseline | None = None,
    ):
        """Scores of one item: RawScores(scores [n_units], per_target_token [n_target, n_units])."""
        from ..runner import RawScores  # the runner imports the registry, which imports this

        obj = EmbeddingObjective(engine, encoded)
        x = obj.inputs
        targets = list(range(obj.n_target + 1)) if per_target_token else [obj.total_column]
        base = None
        if self.baseline:
            token = baseline.token_id if baseline is not None else None
            base = torch.zeros_like(x) if token is None else obj.token_embeddings(token)
        sigma = float(options.stdev) * float(x.std()) if self.noise else 0.0

        def compute(rows: int) -> torch.Tensor:
            call = _Call(options, base, sigma, rows)
            parts = []
            for start in range(0, len(targets), rows):
                group = targets[start : start + rows]
                inputs = x.unsqueeze(0).repeat(len(group), 1, 1).requires_grad_()
                # Reduce at once: [g, n_content, H] maps would be large for long inputs.
                parts.append(self.reduce(self.attribution(obj, inputs, group, call).detach()))
            return torch.cat(parts)

        if self.deterministic:
            token_scores = obj.run(compute)
        else:
            with seeded(seed, engine.device):
                token_scores = obj.run(compute)
        # Deterministic methods evaluate the same points for every target row: count them once.
        sequences = obj.n_sequences // len(targets) if self.deterministic else obj.n_sequences

        if self.evaluates_at_input_only:
            f_x = obj.last_output[0]
        else:  # one forward for f(x), and f(baseline) on the same pass when completeness needs it
            points = torch.stack([x, base]) if self.delta else x.unsqueeze(0)
            values = obj.evaluate(points)
            sequences += points.shape[0]
            f_x = values[0]
        delta, warnings = None, []
        if self.delta:
            gap = float(values[0, -1].double() - values[1, -1].double())
            delta = float(token_scores[-1].sum()) - gap  # the reduction is the sum: same total
            if abs(delta) > max(COMPLETENESS_TOLERANCE * abs(gap), 1e-4):
                warnings.append(
                    f"integrated gradients has not converged: the scores sum to {delta + gap:.4g}, "
                    f"but f(x) - f(baseline) = {gap:.4g} (convergence_delta {delta:.3g}); "
                    "raise n_steps or pick another baseline"
                )

        units = sum_into_units(token_scores, obj.token_units, encoded.n_units)
        return RawScores(
            scores=units[-1],
            per_target_token=units[:-1] if per_target_token else None,
            target_log_prob=float(f_x[-1]),
            n_forward=obj.n_forward,
            n_sequences=sequences,
            n_backward=obj.n_backward,
            convergence_delta=delta,
            warnings=warnings,
        )


SALIENCY = GradientMethod(_saliency, reduce_l2, deterministic=True, evaluates_at_input_only=True)
INPUT_X_GRADIENT = GradientMethod(
    _input_x_gradient, reduce_sum, deterministic=True, evaluates_at_input_only=True
)
INTEGRATED_GRADIENTS = GradientMethod(
    _integrated_gradients, reduce_sum, deterministic=True, baseline=True, delta=True
)
GRADIENT_SHAP = GradientMethod(_gradient_shap, reduce_sum, deterministic=False, baseline=True, noise=True)
SMOOTH_GRAD = GradientMethod(_noise_tunnel("smoothgrad"), reduce_l2, deterministic=False, noise=True)
SQUARE_GRAD = GradientMethod(_noise_tunnel("smoothgrad_sq"), reduce_root_sum, deterministic=False, noise=True)
VAR_GRAD = GradientMethod(_noise_tunnel("vargrad"), reduce_root_sum, deterministic=False, noise=True)
