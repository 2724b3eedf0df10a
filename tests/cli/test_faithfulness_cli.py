"""--faithfulness on explain (footer and view) and batch (a typed column), the settings
check, resume, and ffattr methods' cost lines."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from fairforge_attr import AttributionResult
from fairforge_attr.io.schema import FAITHFULNESS_TYPE
from tests.cli.conftest import FRANCE, PARIS, SAMPLE, read_jsonl

SMALL = SAMPLE / "batch_small.jsonl"


def test_explain_shows_faithfulness_in_the_view_and_the_footer(cli, qwen_dir):
    res = cli("explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion", "--faithfulness")
    assert res.exit_code == 0, res.stderr
    out = " ".join(res.stdout.split())
    for figure in (
        "LDS",
        "deletion AUC",
        "insertion AUC",
        "comprehensiveness",
        "sufficiency",
        "random",
        "gain",
    ):
        assert figure in out
    assert "faithfulness: LDS" in out and "deletion gain" in out  # the footer
    plain = cli("explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion")
    assert "faithfulness" not in plain.stdout


def test_explain_json_carries_the_object_and_options_apply(cli, qwen_dir):
    res = cli(
        "explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion", "-f", "json",
        "--faithfulness-option", "n_random=2", "--faithfulness-option", "n_ablations=8",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    f = AttributionResult.model_validate_json(res.stdout).faithfulness
    assert f is not None and f.n_random == 2 and f.n_ablations == 8


def test_bad_faithfulness_options_are_usage_errors_before_loading(cli, qwen_dir):
    for entry, needle in (("n_random=0", "n_random"), ("bogus=1", "bogus"), ("n_random", "NAME=VALUE")):
        res = cli("explain", FRANCE, "-t", PARIS, "-m", "/no/such/model", "--faithfulness-option", entry)
        assert res.exit_code == 2 and needle in res.stderr, res.stderr


def test_batch_writes_a_typed_faithfulness_column(cli, qwen_dir, tmp_path):
    out = tmp_path / "out.parquet"
    res = cli("batch", SMALL, out, "-m", qwen_dir, "--method", "occlusion", "--faithfulness", "--limit", "3")
    assert res.exit_code == 0, res.stderr
    table = pq.read_table(out)
    assert table.schema.field("faithfulness").type == FAITHFULNESS_TYPE
    assert pa.types.is_struct(FAITHFULNESS_TYPE)
    lds = table.column("faithfulness").combine_chunks().field("lds").to_pylist()
    assert len(lds) == 3 and all(v is None or -1 <= v <= 1 for v in lds)
    # ffattr show's summary averages the checks over the file (JSON and the terminal table)
    shown = cli("show", out, "--first", "0", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    summary = json.loads(shown.stdout)["summary"]
    known = [v for v in lds if v is not None]
    assert summary["faithfulness_checked"] == 3
    assert abs(summary["faithfulness_means"]["lds"] - sum(known) / len(known)) < 1e-9
    text = cli("show", out, "--first", "0").stdout
    assert "faithfulness, mean over 3 checked items" in text and "LDS" in text
    jsonl = tmp_path / "out.jsonl"
    assert (
        cli(
            "batch", SMALL, jsonl, "-m", qwen_dir, "--method", "occlusion", "--faithfulness", "--limit", "2"
        ).exit_code
        == 0
    )
    rows = read_jsonl(jsonl)
    assert all(isinstance(r["faithfulness"], dict) and "deletion_auc" in r["faithfulness"] for r in rows)
    plain = tmp_path / "plain.jsonl"
    assert cli("batch", SMALL, plain, "-m", qwen_dir, "--method", "occlusion", "--limit", "1").exit_code == 0
    assert read_jsonl(plain)[0]["faithfulness"] is None


def test_resume_refuses_to_mix_runs_with_and_without_faithfulness(cli, qwen_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    assert cli("batch", SMALL, out, "-m", qwen_dir, "--method", "occlusion", "--limit", "2").exit_code == 0
    res = cli("batch", SMALL, out, "-m", qwen_dir, "--method", "occlusion", "--resume", "--faithfulness")
    assert res.exit_code == 2 and "faithfulness off -> on" in res.stderr


def test_methods_states_the_faithfulness_costs(cli):
    res = cli("methods")
    text = " ".join(res.stdout.split())
    assert (
        res.exit_code == 0 and "faithfulness checks" in text and "n_ablations" in text and "n_random" in text
    )
    rows = json.loads(cli("methods", "--format", "json").stdout)
    assert all("faithfulness_cost" in row for row in rows)
