"""Scores are bit-identical to the golden file (see ``make_golden.py`` for when to regenerate)."""

from __future__ import annotations

import json

import pytest

from tests.golden.make_golden import GOLDEN, compute, dumps


@pytest.fixture(scope="module")
def now() -> dict:
    # through JSON, as stored: tuples become lists, floats keep every bit (repr round-trips)
    return json.loads(dumps(compute()))


@pytest.fixture(scope="module")
def stored() -> dict:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_the_golden_cases_are_all_there(now, stored):
    assert sorted(now["cases"]) == sorted(stored["cases"])
    methods = {key.split("/")[0] for key in stored["cases"]}
    from fairforge_attr.types import AttributionMethod

    assert methods == {m.value for m in AttributionMethod}


def test_scores_and_counts_are_bit_identical(now, stored):
    differ = []
    for key, expected in stored["cases"].items():
        got = now["cases"].get(key)
        if got != expected:  # exact ==: no tolerance
            fields = expected if isinstance(expected, dict) else expected[0]
            wrong = [f for f in fields if _field(got, f) != _field(expected, f)]
            differ.append(f"{key}: {', '.join(wrong)}")
    assert not differ, "scores changed:\n" + "\n".join(differ)


def _field(case, name: str):
    if case is None:
        return None
    return case.get(name) if isinstance(case, dict) else [c.get(name) for c in case]
