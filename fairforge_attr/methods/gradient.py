"""Gradient methods: f = log p(target | prompt) differentiated with respect to the input
embeddings of the content tokens (template tokens are held fixed and get no score).

A method is the points where it takes the gradient and how the gradients make its map
[n_content_tokens, hidden]. Each point k has a weight w_k and a factor m_k (1, x, x - baseline)
and the map is sum_k w_k m_k g_k, or for the noise tunnel's second moments sum_k w_k g_k^2:

- saliency: g(x). Input x gradient: x g(x).
- integrated gradients: (x - b) sum_k s_k g(b + a_k (x - b)), with captum's quadrature rules
  (``quadrature.py``: the a_k and step sizes s_k of Gauss-Legendre or Riemann sums).
- SmoothGrad / SquareGrad / VarGrad (captum's NoiseTunnel types smoothgrad, smoothgrad_sq,
  vargrad): g at x + sigma eps_k, averaged: E g, E g^2 and E g^2 - (E g)^2.
- GradientSHAP (captum's GradientShap with one baseline): x'_k = x + sigma eps_k,
  E (x'_k - b) g(b + u_k (x'_k - b)) with u_k ~ U(0, 1).

The engine (``engine/gradients.py``) computes the gradients of many points of many items in
shared passes; these formulas are written here rather than taken from captum's ``attribute``
because captum's expands one batch of inputs at a time and draws its noise for the whole batch
from the global generator, so an item's noise would depend on the items beside it.

A reduction over the hidden dimension turns a map into one number per token, and each unit
sums its tokens:

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
of noise for every model. Sample k of an item draws (u_k, eps_k) from a CPU generator seeded
by (seed, k) alone (``sample_draws``): the same seed gives the same scores on every device,
whichever items share the item's passes and however they are chunked, and the caller's RNG
state is never touched. Sample k of a larger ``n_samples`` is the same sample k. The sampled
methods report each unit's standard error from the spread of their samples
(``gradient_spread.py``: a delete-a-group jackknife, exact sample SD / sqrt(n) for GradientSHAP).

``per_target_token`` differentiates each target token's log-probability, and f, at the same
points: (n_target + 1) times the backward rows of the plain method (packed into the same
passes); its row for f is the plain method's scores, and the rows of the linear methods
(integrated gradients, input x gradient, GradientSHAP) sum to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..engine.baseline import HIDE, Baseline, resolve_baseline
from ..engine.gradients import ItemEmbeddings
from ..errors import InvalidRequestError
from .quadrature import Rule, min_steps, quadrature

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ZERO = "zero"
COMPLETENESS_TOLERANCE = 0.05  # |convergence_delta| above this share of the gap warns


# ------------------------------------------------------------------------------ options
class GradientOptions(BaseModel):
    """Options every gradient method takes (none so far)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
    integration: Rule = Field(
        default="gausslegendre",
        description="quadrature rule for the path integral (captum's); Gauss-Legendre converges "
        "fastest for smooth paths",
    )

    @field_validator("integration")
    @classmethod
    def _enough_steps(cls, rule: str, info: ValidationInfo) -> str:
        n_steps = info.data.get("n_steps")
        if n_steps is not None and n_steps < min_steps(rule):
            raise ValueError(f"{rule} needs n_steps >= {min_steps(rule)}, got {n_steps}")
        return rule


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
    at 0 because VarGrad, E[g^2] - E[g]^2, can round to a tiny negative number."""
    return maps.double().clamp(min=0).sum(-1).sqrt()


def sum_into_units(token_scores: torch.Tensor, token_units: torch.Tensor, n_units: int) -> torch.Tensor:
    """[rows, tokens] -> [rows, n_units]: each unit sums the scores of its tokens."""
    out = torch.zeros(token_scores.shape[0], n_units, dtype=torch.float64)
    return out.index_add_(1, token_units.cpu(), token_scores.double().cpu())


def resolve_embedding_baseline(
    tokenizer: PreTrainedTokenizerBase, spec: str | int, vocab_size: int
) -> Baseline:
    """A baseline token for the path methods; ``token_id=None`` means the zero embedding."""
    if spec == ZERO:
        return Baseline(None, "zero embedding")
    if spec == HIDE:
        raise InvalidRequestError(
            "baseline='hide' only exists for perturbation methods; gradient methods need an "
            "embedding: 'pad', 'zero', 'unk', 'eos', a token id or a one-token string"
        )
    return resolve_baseline(tokenizer, spec, vocab_size)


def sample_draws(
    seed: int, samples: torch.Tensor, shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(u [k], eps [k, *shape]) float32 on the CPU: u ~ U(0, 1) and eps ~ N(0, 1) of each
    sample index, from a generator seeded by (seed, index) alone. Repeated indices (the rows
    of one point for several target tokens) get the same draws."""
    unique, inverse = torch.unique(samples.cpu(), return_inverse=True)
    us, eps = [], []
    for k in unique.tolist():
        words = np.random.SeedSequence([seed % 2**64, k]).generate_state(2, np.uint32)
        gen = torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))
        us.append(torch.rand((), generator=gen))
        eps.append(torch.randn(shape, generator=gen))
    return torch.stack(us)[inverse], torch.stack(eps)[inverse]


# ------------------------------------------------------------------------ the points
@dataclass(frozen=True)
class PointRequest:
    """What the point functions need besides the item: the options, the seed, the baseline."""

    options: Any
    seed: int
    baseline_token: int | None = None  # the path starts at this token's embedding; None: zero

    def baseline(self, item: ItemEmbeddings) -> torch.Tensor:
        if self.baseline_token is None:
            return torch.zeros_like(item.inputs)
        return item.token_embeddings(self.baseline_token)

    def noise(self, item: ItemEmbeddings, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u [k], x + sigma eps [k, n_content, H]) of the item's samples."""
        x = item.inputs
        u, eps = sample_draws(self.seed, samples, tuple(x.shape))
        sigma = float(self.options.stdev) * float(x.std()) if x.numel() > 1 else 0.0
        noisy = x + sigma * eps.to(x.device) if sigma > 0 else x.expand(len(samples), -1, -1)
        return u.to(x.device), noisy


@dataclass(frozen=True)
class Points:
    """k points of one item, and how their gradients g_k enter its map: sum_k w_k m_k g_k."""

    at: torch.Tensor  # [k, n_content, H] float32: where the gradients are taken
    factor: torch.Tensor | None  # m_k, broadcastable to [k, n_content, H]; None: 1
    weights: torch.Tensor  # [k] w_k


def _at_input(request: PointRequest, item: ItemEmbeddings, ks: torch.Tensor) -> Points:
    return Points(item.inputs.expand(len(ks), -1, -1), None, item.inputs.new_ones(len(ks)))


def _input_times_gradient(request: PointRequest, item: ItemEmbeddings, ks: torch.Tensor) -> Points:
    x = item.inputs
    return Points(x.expand(len(ks), -1, -1), x.unsqueeze(0), x.new_ones(len(ks)))


def _path(request: PointRequest, item: ItemEmbeddings, ks: torch.Tensor) -> Points:
    n = request.options.n_steps
    step_sizes, alphas = quadrature(request.options.integration, n)
    x, b = item.inputs, request.baseline(item)
    a = x.new_tensor(alphas)[ks.to(x.device)].view(-1, 1, 1)
    return Points(b + a * (x - b), (x - b).unsqueeze(0), x.new_tensor(step_sizes)[ks.to(x.device)])


def _noisy(request: PointRequest, item: ItemEmbeddings, ks: torch.Tensor) -> Points:
    _, noisy = request.noise(item, ks)
    return Points(noisy, None, item.inputs.new_full((len(ks),), 1 / request.options.n_samples))


def _shap(request: PointRequest, item: ItemEmbeddings, ks: torch.Tensor) -> Points:
    u, noisy = request.noise(item, ks)
    b = request.baseline(item)
    at = b + u.view(-1, 1, 1) * (noisy - b)
    return Points(at, noisy - b, item.inputs.new_full((len(ks),), 1 / request.options.n_samples))


# --------------------------------------------------------------------------- the method
@dataclass(frozen=True)
class GradientMethod:
    """One gradient method: its points, how their gradients make the map, its reduction."""

    points: Callable[[PointRequest, ItemEmbeddings, torch.Tensor], Points]
    n_points: Callable[[Any], int]  # options -> points per item
    reduce: Callable[[torch.Tensor], torch.Tensor]
    deterministic: bool
    moment: Literal["first", "second", "variance"] = "first"  # sum w m g, sum w g^2, or their spread
    baseline: bool = False  # takes a baseline embedding
    noise: bool = False  # takes a relative noise ``stdev``
    delta: bool = False  # reports the completeness gap as convergence_delta
    evaluates_at_input_only: bool = False  # every point is x, so f(x) comes for free

    def __post_init__(self) -> None:
        if self.delta and self.reduce is not reduce_sum:
            raise ValueError("completeness needs the scores to sum the attribution map")

    def finish(self, first: torch.Tensor, second: torch.Tensor | None) -> torch.Tensor:
        """The map from the weighted sums of m g and of g^2 over every point."""
        if self.moment == "first":
            return first
        if self.moment == "second":
            return second
        return second - first.square()


def _one(options: BaseModel) -> int:
    return 1


def _n_steps(options: IntegratedGradientsOptions) -> int:
    return options.n_steps


def _n_samples(options: GradientShapOptions | NoiseTunnelOptions) -> int:
    return options.n_samples


SALIENCY = GradientMethod(_at_input, _one, reduce_l2, deterministic=True, evaluates_at_input_only=True)
INPUT_X_GRADIENT = GradientMethod(
    _input_times_gradient, _one, reduce_sum, deterministic=True, evaluates_at_input_only=True
)
INTEGRATED_GRADIENTS = GradientMethod(
    _path, _n_steps, reduce_sum, deterministic=True, baseline=True, delta=True
)
GRADIENT_SHAP = GradientMethod(_shap, _n_samples, reduce_sum, deterministic=False, baseline=True, noise=True)
SMOOTH_GRAD = GradientMethod(_noisy, _n_samples, reduce_l2, deterministic=False, noise=True)
SQUARE_GRAD = GradientMethod(
    _noisy, _n_samples, reduce_root_sum, deterministic=False, moment="second", noise=True
)
VAR_GRAD = GradientMethod(
    _noisy, _n_samples, reduce_root_sum, deterministic=False, moment="variance", noise=True
)
