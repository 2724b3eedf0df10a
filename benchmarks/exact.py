"""Exact reference values by enumeration: every mask of d units scored once by the engine, then
Shapley values and total-order Sobol indices read off that table. Estimators are then run on
the table (any mask is a lookup), so ours, shap's and captum's see the very same value function."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fairforge_attr.engine import Engine, ScoreRequest, resolve_baseline
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from fairforge_attr.types import Granularity


def all_masks(d: int) -> torch.Tensor:
    """[2^d, d] bool; row c is the mask whose bits spell c (unit i kept iff bit i is set)."""
    codes = torch.arange(2**d)
    return ((codes[:, None] >> torch.arange(d)) & 1).bool()


def mask_codes(masks: torch.Tensor) -> torch.Tensor:
    return (masks.long() << torch.arange(masks.shape[1])).sum(1)


@dataclass
class ValueTable:
    """f of every mask of d units (teacher-forced log p(target), in nats)."""

    values: torch.Tensor  # [2^d] float64, indexed by mask code
    d: int

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """values [n, 1] of bool masks [n, d] (the shape the solvers take)."""
        return self.values[mask_codes(masks)].unsqueeze(1)

    def numpy_fn(self):
        """For shap/captum: float 0/1 rows -> values."""
        table = self.values.numpy()
        weights = 1 << np.arange(self.d)

        def f(x: np.ndarray) -> np.ndarray:
            return table[(np.rint(x).astype(np.int64) * weights).sum(1)]

        return f

    def shapley(self) -> torch.Tensor:
        d, v = self.d, self.values
        codes = torch.arange(2**d)
        size = torch.tensor([bin(c).count("1") for c in range(2**d)])
        weight = torch.tensor(
            [math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in range(d)],
            dtype=torch.float64,
        )
        phi = torch.zeros(d, dtype=torch.float64)
        for i in range(d):
            without = codes[(codes >> i) & 1 == 0]
            phi[i] = (weight[size[without]] * (v[without | (1 << i)] - v[without])).sum()
        return phi

    def total_sobol(self) -> torch.Tensor:
        """ST_i = E[(f(z) - f(z xor e_i))^2] / 4 / Var f, z uniform over masks."""
        v, codes = self.values, torch.arange(2**self.d)
        var = v.var(unbiased=False)
        return torch.stack([((v - v[codes ^ (1 << i)]) ** 2).mean() / 4 / var for i in range(self.d)])


def value_table(model, tokenizer, messages: list[dict], target: str, max_units: int = 16) -> ValueTable:
    """Score every mask of the item's word units with the engine."""
    enc = encode(
        tokenizer, target=target, granularity=Granularity.WORD, messages=[Message(**m) for m in messages]
    )
    d = enc.n_units
    if d > max_units:
        raise ValueError(f"{d} units: 2^{d} masks is too many to enumerate (at most {max_units})")
    engine = Engine(model)
    baseline = resolve_baseline(tokenizer, None, engine.vocab_size)
    (res,) = engine.score([ScoreRequest(enc, all_masks(d), baseline)])
    return ValueTable(res.values.double(), d)


def word_item(n_words: int) -> tuple[list[dict], str]:
    """A chat whose contents hold exactly ``n_words`` words (system + user), demo-model style."""
    system = ["Answer", "in", "one", "short", "sentence"]
    user = [
        "What",
        "is",
        "the",
        "capital",
        "city",
        "of",
        "France",
        "and",
        "of",
        "Italy",
        "and",
        "of",
        "Spain",
        "today",
    ]
    words = (system + user)[:n_words]
    k = min(len(system), max(1, n_words // 3))
    msgs = [
        {"role": "system", "content": " ".join(words[:k])},
        {"role": "user", "content": " ".join(words[k:])},
    ]
    return msgs, "The capital of France is Paris."


def captum_lime(value, d: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """captum's Lime (its defaults: keep-half masks, lasso) on a value function of bool masks
    [n, d] -> [n, 1]: (coefficients [d], intercept [1])."""
    import captum.attr as ca

    torch.manual_seed(seed)  # captum draws from the global generator
    lime = ca.Lime(lambda x: value(x > 0.5)[:, 0])
    attr = lime.attribute(
        torch.ones(1, d, dtype=torch.float64),
        baselines=torch.zeros(1, d, dtype=torch.float64),
        n_samples=n,
        return_input_shape=False,
    )
    return attr[0].double(), torch.tensor([float(lime.interpretable_model.bias())])
