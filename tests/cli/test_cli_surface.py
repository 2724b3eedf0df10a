"""The command line's surface: --debug anywhere, readable --help, --top-k 0, completion, packaging."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from tests.cli.conftest import FRANCE, PARIS, ROOT, unmarked

COMMANDS = ("explain", "batch", "show", "methods")


@pytest.mark.parametrize("where", ["before", "after", "last"])
def test_debug_is_accepted_before_or_after_the_subcommand(cli, qwen_dir, monkeypatch, where):
    from fairforge_attr.api import AttributionExplainer

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(AttributionExplainer, "explain", boom)
    args = ["explain", FRANCE, "-t", PARIS, "-m", qwen_dir]
    args = {
        "before": ["--debug", *args],
        "after": [args[0], "--debug", *args[1:]],
        "last": [*args, "--debug"],
    }[where]
    res = cli(*args)
    assert res.exit_code == 1 and "Traceback" in res.stderr and "kaboom" in res.stderr


def test_debug_after_a_double_dash_is_a_message(cli, qwen_dir):
    res = cli("explain", "-t", PARIS, "-m", qwen_dir, "--method", "occlusion", "-f", "json", "--", "--debug")
    assert res.exit_code == 0, res.stderr
    assert '"content": "--debug"' in res.stdout


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_no_python_types_as_metavars(cli, command):
    res = cli(*([command] if command else []), "--help")
    assert res.exit_code == 0
    found = re.findall(r"<(?:bool|str|list\[[^\]]*\]|int|float|file|path)>", res.stdout)
    assert not found, f"ffattr {command} --help shows {sorted(set(found))}"


def test_top_k_zero_prints_no_table(cli, qwen_dir, tmp_path):
    base = ["explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion"]
    res = cli(*base, "--top-k", "0", "-o", tmp_path / "r.html")
    assert res.exit_code == 0, res.stderr
    assert "top 0" not in res.stdout and "rank" not in res.stdout
    assert FRANCE in unmarked(res.stdout) and "log p(target)" in " ".join(res.stdout.split())
    assert "<table>" not in (tmp_path / "r.html").read_text()


def test_shell_completion_is_offered(cli, monkeypatch):
    top = " ".join(cli("--help").stdout.split())
    assert "--install-completion" in top and "--show-completion" in top
    # typer finds the shell from the process tree (shellingham), which depends on how and
    # after what the tests run (it found none after the batch tests): name it here
    monkeypatch.setattr("typer.completion._get_shell_name", lambda: "bash")
    res = cli("--show-completion")
    assert res.exit_code == 0 and "complete" in res.stdout


def test_pyproject_license_raises_no_deprecation_at_install():
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_configuration(Distribution(), ROOT / "pyproject.toml")
    about_license = [str(w.message) for w in caught if "license" in str(w.message).lower()]
    assert about_license == []


def test_a_status_line_while_the_model_loads_on_a_terminal_only(cli, qwen_dir):
    args = ["explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion"]
    on_terminal = cli(*args, env={"FORCE_COLOR": "1", "COLORTERM": "truecolor", "NO_COLOR": None})
    assert on_terminal.exit_code == 0, on_terminal.stderr
    assert (
        f"loading torch and {qwen_dir}" in on_terminal.stderr
        and "explaining with occlusion" in on_terminal.stderr
    )
    piped = cli(*args)
    assert piped.exit_code == 0 and piped.stderr == ""


def test_batch_reads_stdin_given_a_dash(cli, qwen_dir, tmp_path, monkeypatch):
    from fairforge_attr.cli import progress

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    lines = "".join(
        json.dumps({"id": f"s{i}", "prompt": "The capital of France is", "target": " Paris."}) + "\n"
        for i in range(3)
    )
    out = tmp_path / "out.jsonl"
    res = cli("batch", "-", out, "-m", qwen_dir, "--method", "occlusion", input=lines)
    assert res.exit_code == 0, res.stderr
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["s0", "s1", "s2"]
    assert "3 items (3 ok, 0 failed)" in res.stderr and "3 items (0 failed)" in res.stderr  # no total
