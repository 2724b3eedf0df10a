"""ffattr evaluate on the demo model, and its ranking and recommendation (pure)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from fairforge_attr.analysis.ranking import MethodRow, rank_methods, recommend
from tests.cli.conftest import SAMPLE, read_jsonl

DEMO = SAMPLE / "demo_batch.jsonl"


def _row(method: str, lds: float | None, gains: float, seconds: float) -> MethodRow:
    return MethodRow(
        granularity="word",
        method=method,
        n_items=3,
        n_errors=0,
        lds=lds,
        deletion_gain=gains,
        insertion_gain=gains,
        comprehensiveness=gains,
        sufficiency=1.0,
        deletion_auc=0.2,
        insertion_auc=0.8,
        random_lds=0.1,
        n_forward=1.0,
        n_sequences=10.0,
        n_backward=0.0,
        seconds=seconds,
    )


def test_rank_is_the_mean_of_the_figure_ranks_and_the_recommendation_names_a_cheaper_method():
    ranked = rank_methods(
        [_row("slow", 0.8, 0.5, 1.0), _row("fast", 0.6, 0.4, 0.1), _row("bad", None, 0.1, 0.05)]
    )
    assert [r.method for r in ranked] == ["slow", "fast", "bad"]
    assert [r.rank for r in ranked] == [1.0, 2.0, 3.0]
    text = recommend(ranked)
    assert text == (
        "on this model and data, slow is the most faithful (LDS 0.80); fast is 10.0 times cheaper at 75% of its LDS."
    )
    assert recommend(rank_methods([_row("only", 0.5, 0.5, 0.1)])).endswith("and also the cheapest.")
    # a wins LDS, b the three other figures: ranks (1 + 2 + 2 + 2) / 4 and (2 + 1 + 1 + 1) / 4
    mixed = rank_methods([_row("a", 0.9, 0.1, 1.0), _row("b", 0.1, 0.9, 1.0)])
    assert [(r.method, r.rank) for r in mixed] == [("b", 1.25), ("a", 1.75)]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from typer.testing import CliRunner

    from fairforge_attr.cli import app

    folder = tmp_path_factory.mktemp("evaluate")
    args = [
        "evaluate", str(DEMO), "--methods", "occlusion,saliency,lime", "-g", "word,sentence", "--limit", "3",
        "--output", str(folder / "table.json"), "--items", str(folder / "items.jsonl"),
        "--faithfulness-option", "n_random=4",
    ]  # fmt: skip
    res = CliRunner().invoke(app, args, env={"COLUMNS": "160"})
    return res, folder


def test_evaluate_prints_one_ranked_table_per_granularity(evaluated):
    res, _ = evaluated
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "word units · 3 items" in out and "sentence units · 3 items" in out
    for method in ("occlusion", "saliency", "lime", "random ordering"):
        assert out.count(method) >= 2
    assert out.count("on this model and data,") == 2 and "is the most faithful" in out
    assert "ffattr evaluate: 24/24 steps" in res.stderr  # 3 items x (3 methods + check) x 2


def test_evaluate_writes_tables_and_item_rows_for_check_and_report(evaluated, cli, tmp_path):
    _, folder = evaluated
    table = json.loads((folder / "table.json").read_text())
    assert table["n_items"] == 3 and set(table["recommendations"]) == {"word", "sentence"}
    rows = table["tables"]
    assert {(r["granularity"], r["method"]) for r in rows} == {
        (g, m) for g in ("word", "sentence") for m in ("occlusion", "saliency", "lime")
    }
    assert all(r["n_items"] == 3 and r["rank"] >= 1 and r["n_sequences"] > 0 for r in rows)
    saliency = next(r for r in rows if r["method"] == "saliency")
    assert saliency["n_sequences"] == 1.0 and saliency["n_backward"] == 1.0  # its own cost, not the check's
    items = read_jsonl(folder / "items.jsonl")
    assert len(items) == 3 * 3 * 2 and all(r["faithfulness"]["n_random"] == 4 for r in items)
    # one random baseline per item, shared by every method
    word = [r for r in items if r["granularity"] == "word" and r["id"] == items[0]["id"]]
    assert len({json.dumps(r["faithfulness"]["random_deletion_curve"]) for r in word}) == 1
    assert cli("check", folder / "items.jsonl", "--rule", "share:error == 0").exit_code == 0
    assert cli("report", folder / "items.jsonl", tmp_path / "r.html").exit_code == 0
    parquet = tmp_path / "table.parquet"
    res = cli("evaluate", DEMO, "--methods", "saliency", "--limit", "1", "--output", parquet)
    assert res.exit_code == 0, res.stderr
    assert pq.read_table(parquet).column("method").to_pylist() == ["saliency"]


def test_evaluate_usage_errors(cli):
    assert cli("evaluate", DEMO, "--methods", "nope").exit_code == 2
    assert cli("evaluate", DEMO, "-g", "paragraphs").exit_code == 2
    assert cli("evaluate", DEMO, "--output", "x.csv").exit_code == 2


def test_all_methods_come_from_the_registry():
    from fairforge_attr.cli.evaluate import _methods
    from fairforge_attr.methods.registry import REGISTRY

    assert _methods("all") == [m.value for m in REGISTRY]
    assert _methods("LIME, occlusion,lime") == ["lime", "occlusion"]
