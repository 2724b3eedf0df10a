"""Pure parts of the gradient methods: reductions, unit sums, options, baselines, noise draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairforge_attr.errors import InvalidRequestError, UnknownChoiceError
from fairforge_attr.methods.gradient import (
    IntegratedGradientsOptions,
    NoiseTunnelOptions,
    reduce_l2,
    reduce_root_sum,
    reduce_sum,
    resolve_embedding_baseline,
    sample_draws,
    sum_into_units,
)
from fairforge_attr.methods.registry import REGISTRY, Family, get_method
from fairforge_attr.types import AttributionMethod
from tests.tiny_models import byte_bpe_tokenizer

GRADIENT_METHODS = [m for m, s in REGISTRY.items() if s.family is Family.GRADIENT]


def test_reductions_over_the_hidden_dimension():
    maps = torch.tensor([[[3.0, -4.0], [1.0, 1.0]]])  # 1 row, 2 tokens, hidden 2
    assert reduce_sum(maps).tolist() == [[-1.0, 2.0]]
    assert reduce_l2(maps)[0].tolist() == pytest.approx([5.0, 2**0.5])
    second_moments = torch.tensor([[[9.0, 16.0], [-1e-9, 4.0]]])  # VarGrad may round below 0
    assert reduce_root_sum(second_moments)[0].tolist() == pytest.approx([5.0, 2.0])


def test_units_sum_their_tokens():
    token_scores = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]])
    units = sum_into_units(token_scores, torch.tensor([0, 0, 2, 1]), 3)
    assert units.tolist() == [[3.0, 4.0, 3.0], [1.0, 0.5, 0.5]]
    assert units.dtype == torch.float64


def test_embedding_baselines():
    tok = byte_bpe_tokenizer()
    assert resolve_embedding_baseline(tok, "zero", len(tok)).token_id is None
    assert resolve_embedding_baseline(tok, "pad", len(tok)).token_id == tok.pad_token_id
    assert resolve_embedding_baseline(tok, 5, len(tok)).token_id == 5
    with pytest.raises(InvalidRequestError, match="only exists for perturbation"):
        resolve_embedding_baseline(tok, "hide", len(tok))
    with pytest.raises(InvalidRequestError, match="outside the vocabulary"):
        resolve_embedding_baseline(tok, 10**6, len(tok))


def test_options_are_validated():
    assert IntegratedGradientsOptions().n_steps == 32
    with pytest.raises(ValueError):
        IntegratedGradientsOptions(n_step=8)  # extra="forbid"
    spec = get_method("var_grad")
    with pytest.raises(InvalidRequestError, match="n_samples"):
        spec.parse_options({"n_samples": 1})  # a variance needs two samples
    with pytest.raises(UnknownChoiceError, match="valid options: n_samples, stdev"):
        spec.parse_options({"n_steps": 3})
    assert NoiseTunnelOptions.model_fields["stdev"].description


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_registry_metadata(method):
    spec = get_method(method)
    assert spec.family is Family.GRADIENT
    assert spec.paper.split()[-1] and any(
        year in spec.paper for year in ("2013", "2016", "2017", "2018", "2019")
    )
    assert spec.has_convergence_delta == (method is AttributionMethod.INTEGRATED_GRADIENTS)
    noisy = {
        AttributionMethod.GRADIENT_SHAP,
        AttributionMethod.SMOOTH_GRAD,
        AttributionMethod.SQUARE_GRAD,
        AttributionMethod.VAR_GRAD,
    }
    assert spec.uses_seed == (method in noisy)
    defaults = spec.defaults()
    for knob in ("n_steps", "n_samples"):
        if knob in defaults:
            assert knob in spec.cost
    assert "forward+backward" in spec.cost
    for name, field in spec.options_model.model_fields.items():
        assert field.description, f"{method.value}.{name} has no description"


def test_sample_draws_depend_on_seed_and_sample_alone():
    torch.manual_seed(123)
    np.random.seed(7)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    u, eps = sample_draws(5, torch.tensor([0, 1, 2]), (4, 3))
    assert u.shape == (3,) and eps.shape == (3, 4, 3) and ((u >= 0) & (u < 1)).all()
    # Sample k is the same whatever else is drawn with it: its order, repeats, a longer run.
    u2, eps2 = sample_draws(5, torch.tensor([2, 2, 0, 7]), (4, 3))
    assert torch.equal(eps2[0], eps[2]) and torch.equal(eps2[1], eps[2]) and torch.equal(eps2[2], eps[0])
    assert u2[0] == u[2] and u2[2] == u[0]
    assert not torch.equal(eps[0], eps[1])
    _, other = sample_draws(6, torch.tensor([0]), (4, 3))
    assert not torch.equal(other[0], eps[0])
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
