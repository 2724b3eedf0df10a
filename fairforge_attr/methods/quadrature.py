"""Quadrature rules for the path integral of integrated gradients: the points a_k in [0, 1]
where the gradient is taken and the step sizes s_k that weight them, so that
integral_0^1 g(a) da ~ sum_k s_k g(a_k).

The same rules, with the same numbers to the last bit, as captum's
``captum.attr._utils.approximation_methods`` (a private module, so not imported; the tests
compare the two): Gauss-Legendre (Xue Feng and Hauroun Habeeb's proposal in captum; exact for
polynomials of degree 2n - 1) and the left, right, middle and trapezoid Riemann sums.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Rule = Literal["gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right"]
RULES: tuple[str, ...] = (
    "gausslegendre",
    "riemann_trapezoid",
    "riemann_middle",
    "riemann_left",
    "riemann_right",
)


def min_steps(rule: str) -> int:
    """The fewest points a rule takes: a Riemann sum needs two."""
    return 1 if rule == "gausslegendre" else 2


def quadrature(rule: str, n: int) -> tuple[list[float], list[float]]:
    """(step sizes [n], points [n]) of ``rule`` with ``n`` points."""
    if rule not in RULES:
        raise ValueError(f"unknown quadrature rule {rule!r}; choose one of: {', '.join(RULES)}")
    if n < min_steps(rule):
        raise ValueError(f"{rule} needs at least {min_steps(rule)} steps, got {n}")
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)  # on [-1, 1]: scale to [0, 1]
        return (0.5 * weights).tolist(), (0.5 * (1 + nodes)).tolist()
    steps = [1 / n] * n
    if rule == "riemann_trapezoid":
        steps[0] /= 2
        steps[-1] /= 2
        points = torch.linspace(0, 1, n)
    elif rule == "riemann_left":
        points = torch.linspace(0, 1 - 1 / n, n)
    elif rule == "riemann_middle":
        points = torch.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    else:
        points = torch.linspace(1 / n, 1, n)
    return steps, points.tolist()
