"""ffattr diff on crafted result files."""

from __future__ import annotations

import json

import pytest

from fairforge_attr.io import write_rows
from tests.crafted import error_row, ok_row, unit


def _units(scores: dict[str, float], starts: dict[str, int] | None = None) -> list[dict]:
    return [unit(t, s, i, start=(starts or {}).get(t, 10 * i)) for i, (t, s) in enumerate(scores.items())]


@pytest.fixture()
def pair(tmp_path):
    base = [
        ok_row("p", _units({"A": 2.0, "B": 1.0, "C": -0.5, "D": 0.1}), target_log_prob=-1.0),
        ok_row("q", _units({"X": 1.0, "Y": 2.0, "Z": 3.0})),
        ok_row("r", _units({"A": 1.0})),
        ok_row("e", _units({"A": 1.0})),
    ]
    new = [
        ok_row("q", _units({"X": 2.0, "Y": 4.0, "Z": 6.0, "W": 10.0}, {"W": 99})),
        ok_row("p", _units({"A": 1.9, "B": -1.0, "C": -0.6, "D": 0.2}), target_log_prob=-1.5),
        ok_row("s", _units({"A": 1.0})),
        error_row("e"),
    ]
    write_rows(tmp_path / "base.parquet", base)
    write_rows(tmp_path / "new.jsonl", new)
    return tmp_path / "base.parquet", tmp_path / "new.jsonl"


def test_per_item_figures(cli, pair):
    res = cli("diff", *pair, "--top-k", "2", "--format", "json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    items = {i["id"]: i for i in out["items"]}
    p, q = items["p"], items["q"]
    # ranks (4, 3, 1, 2) against (4, 1, 2, 3): rho = 1 - 6 x 6 / (4 x 15) = 0.4
    assert p["spearman"] == pytest.approx(0.4) and p["drift"] == pytest.approx(0.6)
    assert p["sign_flips"] == 1 and p["top_k_overlap"] == 1.0
    assert p["delta_target_log_prob"] == pytest.approx(-0.5)
    # W moved (other offsets): not matched; it tops the new item, so top-2 overlap is 1 of 2
    assert q["spearman"] == pytest.approx(1.0) and q["n_matched"] == 3 and q["n_new"] == 4
    assert q["top_k_overlap"] == 0.5 and q["sign_flips"] == 0
    assert out["only_in_base"] == ["r"] and out["only_in_new"] == ["s"]
    assert out["errors"] == [{"id": "e", "in": "new"}]
    s = out["summary"]
    assert s["common"] == 2 and s["mean_drift"] == pytest.approx(0.3) and s["sign_flips"] == 1
    assert [w["id"] for w in out["worst"]] == ["p", "q"]


def test_max_drift_sets_the_exit_code(cli, pair):
    within = cli("diff", *pair, "--max-drift", "0.5")
    assert within.exit_code == 0 and "within --max-drift 0.5" in within.stdout
    beyond = cli("diff", *pair, "--max-drift", "0.2")
    assert beyond.exit_code == 1 and "exceeds --max-drift 0.2" in beyond.stdout
    assert "only in base: r" in beyond.stdout and "only in new: s" in beyond.stdout
    assert "p" in beyond.stdout and "0.600" in beyond.stdout  # the worst id and its drift
    assert json.loads(cli("diff", *pair, "--max-drift", "0.2", "-f", "json").stdout)["passed"] is False


def test_nothing_comparable_fails_a_drift_gate_and_duplicates_are_refused(cli, tmp_path):
    one = tmp_path / "one.jsonl"
    write_rows(one, [ok_row("a", _units({"A": 1.0}))])
    assert cli("diff", one, one).exit_code == 0
    assert cli("diff", one, one, "--max-drift", "1").exit_code == 1  # one unit: no Spearman
    twice = tmp_path / "twice.jsonl"
    write_rows(twice, [ok_row("a", _units({"A": 1.0})), ok_row("a", _units({"A": 1.0}))])
    res = cli("diff", one, twice)
    assert res.exit_code == 2 and "more than once" in res.stderr


def test_contrastive_rows_compare_the_objective_they_explain(cli, tmp_path):
    """For a contrastive row f = target_log_prob - contrast_log_prob: diff reports its change
    beside log p(target)'s, and counts ids whose two rows have different contrasts."""
    scores = {"A": 2.0, "B": 1.0}

    def row(item_id: str, target: float, contrast: str | None, contrast_lp: float | None) -> dict:
        r = ok_row(item_id, _units(scores), target_log_prob=target)
        r.update(contrast=contrast, contrast_log_prob=contrast_lp)
        return r

    base = [
        row("why", -1.0, "Berlin.", -3.0),
        row("moved", -1.0, "Berlin.", -3.0),
        row("plain", -1.0, None, None),
    ]
    new = [
        row("why", -1.5, "Berlin.", -2.0),
        row("moved", -1.0, "Rome.", -5.0),
        row("plain", -2.0, None, None),
    ]
    write_rows(tmp_path / "base.jsonl", base)
    write_rows(tmp_path / "new.jsonl", new)
    pair = (tmp_path / "base.jsonl", tmp_path / "new.jsonl")
    out = json.loads(cli("diff", *pair, "--format", "json").stdout)
    items = {i["id"]: i for i in out["items"]}
    # why: f from -1 + 3 = 2 to -1.5 + 2 = 0.5, while log p(target) moved by -0.5
    assert items["why"]["delta_target_log_prob"] == pytest.approx(-0.5)
    assert items["why"]["delta_objective"] == pytest.approx(-1.5)
    assert items["why"]["contrastive"] and not items["why"]["other_objective"]
    assert items["moved"]["other_objective"] and items["moved"]["delta_objective"] == pytest.approx(2.0)
    assert items["plain"]["delta_objective"] == items["plain"]["delta_target_log_prob"] == pytest.approx(-1.0)
    assert not items["plain"]["contrastive"]
    s = out["summary"]
    assert s["contrastive"] == 2 and s["other_objective"] == 1
    assert s["mean_delta_objective"] == pytest.approx((-1.5 + 2.0 - 1.0) / 3)
    text = cli("diff", *pair).stdout
    assert "log p(target) - log p(contrast)" in text and "Δ f" in text
    assert "2 (1 with another contrast)" in text


def test_a_plain_diff_shows_no_contrast_rows(cli, pair):
    text = cli("diff", *pair).stdout
    assert "Δ log p" in text and "Δ f" not in text and "contrast" not in text
