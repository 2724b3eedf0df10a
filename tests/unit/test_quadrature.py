"""Our quadrature rules are captum's, to the last bit (captum's module is private, so we keep
our own copy and compare)."""

from __future__ import annotations

import pytest
from captum.attr._utils import approximation_methods  # in the test extra, so never skipped

from fairforge_attr.methods.quadrature import RULES, min_steps, quadrature


@pytest.mark.parametrize("rule", RULES)
def test_rules_equal_captums(rule):
    steps_of, points_of = approximation_methods.approximation_parameters(rule)
    for n in range(min_steps(rule), 65):
        steps, points = quadrature(rule, n)
        assert steps == steps_of(n) and points == points_of(n), (rule, n)
        assert all(type(x) is float for x in steps + points)


def test_rules_integrate_and_refuse_too_few_steps():
    for rule in RULES:
        steps, points = quadrature(rule, 64)
        assert sum(steps) == pytest.approx(1.0, abs=1 / 64)  # captum's trapezoid sums to 1 - 1/n
        assert sum(s * a for s, a in zip(steps, points)) == pytest.approx(0.5, abs=1e-2)  # integral of a
    with pytest.raises(ValueError, match="at least 2"):
        quadrature("riemann_left", 1)
    with pytest.raises(ValueError, match="unknown quadrature rule"):
        quadrature("simpson", 8)
