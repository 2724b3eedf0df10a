"""The commands on the built-in demo model (shipped in fairforge_attr/demo_model/)."""

from __future__ import annotations

import json

from tests.cli.conftest import FRANCE, PARIS, SAMPLE


def test_explain_defaults_to_the_demo_model_and_says_so(cli):
    res = cli("explain", FRANCE, "-t", PARIS, "--method", "occlusion")
    assert res.exit_code == 0, res.stderr
    assert "fairforge-demo (built-in demo)" in " ".join(res.stdout.split())
    result = json.loads(cli("explain", FRANCE, "-t", PARIS, "--method", "occlusion", "-f", "json").stdout)
    assert result["metadata"]["model"] == "fairforge-demo"


def test_batch_and_show_on_the_demo_batch(cli, tmp_path):
    demo = SAMPLE / "demo_batch.jsonl"
    out = tmp_path / "demo.parquet"
    res = cli("batch", demo, out, "--method", "occlusion", "--limit", "4")
    assert res.exit_code == 0, res.stderr
    shown = cli("show", out, "--first", "1")
    assert shown.exit_code == 0 and "rank" in shown.stdout and "4 (4 ok, 0 failed)" in shown.stdout
