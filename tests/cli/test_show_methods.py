"""ffattr show and ffattr methods."""

from __future__ import annotations

import json

import pytest

from fairforge_attr.methods.registry import REGISTRY
from tests.cli.conftest import FRANCE, PARIS, SAMPLE, unmarked


@pytest.fixture(scope="module")
def results(tmp_path_factory, qwen_dir):
    """One batch run of the mixed sample, in every format and layout."""
    from typer.testing import CliRunner

    from fairforge_attr.cli import app

    folder = tmp_path_factory.mktemp("results")
    runner = CliRunner()
    for name, extra in [
        ("r.parquet", []),
        ("r.jsonl", []),
        ("r.json", []),
        ("long.parquet", ["--layout", "long"]),
    ]:
        res = runner.invoke(
            app,
            [
                "batch",
                str(SAMPLE / "batch_mixed.jsonl"),
                str(folder / name),
                "-m",
                qwen_dir,
                "--method",
                "occlusion",
                *extra,
            ],
        )
        assert res.exit_code == 1, res.stderr  # the sample has bad lines on purpose
    return folder


@pytest.mark.parametrize("name", ["r.parquet", "r.jsonl", "r.json"])
def test_show_draws_an_item_and_summarises_the_file(cli, results, name):
    res = cli("show", results / name, "--id", "good-2")
    assert res.exit_code == 0, res.stderr
    out = unmarked(res.stdout)
    assert "id good-2 · line 4" in out and "Why is the sky blue?" in out and "rank" in out
    assert "occlusion · word" in out
    assert "10 (4 ok, 6 failed)" in out  # the summary counts every item
    assert "mean time" in out and "most frequent top-3 units" in out
    assert "invalid JSON" in out  # first errors, with their lines


def test_show_first_n_includes_failed_items(cli, results):
    out = cli("show", results / "r.parquet", "--first", "2", "--no-summary").stdout
    assert "id good-1" in out and "id line-2 · line 2" in out and "failed" in out
    assert "mean time" not in out


def test_show_long_layout_draws_the_top_table(cli, results):
    res = cli("show", results / "long.parquet", "--id", "good-1")
    assert res.exit_code == 0, res.stderr
    assert "'France'" in res.stdout and "10 (4 ok, 6 failed)" in res.stdout


def test_show_json_and_a_missing_id(cli, results):
    res = cli("show", results / "r.jsonl", "--id", "good-3", "-f", "json")
    payload = json.loads(res.stdout)
    assert [i["id"] for i in payload["items"]] == ["good-3"]
    assert payload["summary"]["items"] == 10 and payload["summary"]["errors"] == 6
    missing = cli("show", results / "r.jsonl", "--id", "nope")
    assert missing.exit_code == 2 and "nope" in missing.stderr


def test_show_reads_what_explain_writes(cli, qwen_dir, tmp_path):
    out = tmp_path / "one.json"
    assert (
        cli("explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion", "-o", out).exit_code == 0
    )
    res = cli("show", out)
    assert res.exit_code == 0 and FRANCE in unmarked(res.stdout) and PARIS in res.stdout


def test_show_rejects_other_files(cli, tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    (tmp_path / "x.parquet").write_text("not parquet")
    for name in ("x.txt", "x.parquet"):
        res = cli("show", tmp_path / name)
        assert res.exit_code == 2 and res.stderr.startswith("error: ")


def test_methods_lists_the_registry(cli):
    res = cli("methods")
    assert res.exit_code == 0
    flat = " ".join(res.stdout.split())
    assert all(method.value in flat for method in REGISTRY)
    assert "n_samples=200" in flat  # lime's default, read from its options model
    rows = json.loads(cli("methods", "--format", "json").stdout)
    assert [r["method"] for r in rows] == [m.value for m in REGISTRY]
    assert [r["cost"] for r in rows] == [s.cost for s in REGISTRY.values()]
    lime = next(r for r in rows if r["method"] == "lime")
    assert lime["family"] == "perturbation"
    assert lime["options"]["n_samples"]["default"] == 200 and lime["options"]["n_samples"]["description"]
    assert "Ribeiro" in lime["paper"]


def test_methods_detail_and_unknown_name(cli):
    res = cli("methods", "kernel-shap")
    assert res.exit_code == 0 and "--n-samples" in res.stdout and "Lundberg" in res.stdout
    bad = cli("methods", "magic")
    assert bad.exit_code == 2 and "choose one of" in bad.stderr


def test_methods_catalog_matches_the_registry():
    from fairforge_attr.methods.catalog import describe, load_catalog

    expected = json.loads(json.dumps([describe(s) for s in REGISTRY.values()], default=str))
    assert load_catalog() == expected, "regenerate it: python -m fairforge_attr.methods.catalog"


def test_methods_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from fairforge_attr.cli import app\n"
        "for args in (['methods'], ['methods', 'lime'], ['methods', '-f', 'json'], ['--help']):\n"
        "    try:\n"
        "        app(args, prog_name='ffattr')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
