"""What the README promises about pack neighbours, checked: the same items in the same order
give identical scores; an item alone or beside other items agrees within the stated tolerance."""

from __future__ import annotations

import re

import pytest

from fairforge_attr.methods.registry import REGISTRY
from tests.cli.conftest import ROOT

ITEMS = [
    ([{"role": "user", "content": "What is the capital of France?"}], "The capital of France is Paris."),
    ([{"role": "user", "content": "Why is the sky blue?"}], "Rayleigh scattering."),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Italy?"}], "Rome."),
]


def stated_tolerance() -> float:
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    found = re.search(r"in float32 its scores differ by at most ([0-9.e-]+) of its largest \|score\|", text)
    assert found is not None, "the README no longer states how far packing may move scores"
    return float(found.group(1))


def _options(spec) -> dict:
    """Few samples or steps: the tolerance is about rounding, not about estimator noise."""
    fields = spec.options_model.model_fields
    return {name: 8 for name in ("n_samples", "n_steps") if name in fields}


def _worst(a, b) -> float:
    peak = max(abs(x.score) for x in a.attributions) or 1.0
    return max(abs(x.score - y.score) for x, y in zip(a.attributions, b.attributions)) / peak


@pytest.mark.parametrize("method", list(REGISTRY))
def test_pack_neighbours_move_scores_only_within_the_stated_tolerance(demo_explainer, method):
    tolerance = stated_tolerance()
    options = _options(REGISTRY[method])
    packed = demo_explainer.explain_batch(ITEMS, method=method, seed=5, **options)
    again = demo_explainer.explain_batch(ITEMS, method=method, seed=5, **options)
    assert [[a.score for a in r.attributions] for r in packed] == [
        [a.score for a in r.attributions] for r in again
    ]  # the same items in the same order: identical
    reordered = list(reversed(demo_explainer.explain_batch(ITEMS[::-1], method=method, seed=5, **options)))
    for (messages, target), p, r in zip(ITEMS, packed, reordered):
        alone = demo_explainer.explain(messages, target, method=method, seed=5, **options)
        assert _worst(alone, p) <= tolerance and _worst(alone, r) <= tolerance
