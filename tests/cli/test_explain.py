"""ffattr explain, through typer's CliRunner."""

from __future__ import annotations

import json
import re

import pytest

from fairforge_attr import AttributionResult
from tests.cli.conftest import FRANCE, PARIS, unmarked


def explain(cli, model, *args):
    """ffattr explain FRANCE --target PARIS --model MODEL *args"""
    return cli("explain", FRANCE, "-t", PARIS, "-m", model, *args)


def _ok(result):
    assert result.exit_code == 0, result.stdout + result.stderr
    return result


def test_text_view_shows_messages_target_table_and_footer(cli, qwen_dir):
    out = _ok(
        cli(
            "explain",
            FRANCE,
            "--system",
            "Be brief.",
            "--target",
            PARIS,
            "--model",
            qwen_dir,
            "--method",
            "occlusion",
        )
    ).stdout
    for expected in ("system", "Be brief.", "user", FRANCE, "target", PARIS, "rank", "norm."):
        assert expected in unmarked(out)
    assert "'France'" in out  # a unit row of the top-k table
    footer = " ".join(out.split())  # the footer may wrap
    assert "occlusion · word · " + qwen_dir in footer
    assert "forward" in footer and "log p(target)" in footer
    assert "\x1b[" not in out  # not a terminal: no colour


def test_json_prints_the_full_result_and_nothing_else(cli, qwen_dir):
    res = _ok(explain(cli, qwen_dir, "--method", "lime", "--n-samples", "16", "-f", "json"))
    result = AttributionResult.model_validate_json(res.stdout)  # the whole stdout is the result
    assert result.target == PARIS and result.method.value == "lime"
    assert result.metadata.params["n_samples"] == 16
    assert json.loads(res.stdout) == result.model_dump(mode="json")


def test_without_target_the_model_generates_one_and_says_so(cli, gpt2_dir):
    res = _ok(
        cli("explain", FRANCE, "-m", gpt2_dir, "--method", "occlusion", "--max-new-tokens", "4", "-f", "json")
    )
    assert json.loads(res.stdout)["metadata"]["target_generated"] is True
    text = _ok(
        cli("explain", FRANCE, "-m", gpt2_dir, "--method", "occlusion", "--max-new-tokens", "4")
    ).stdout
    assert "target (generated)" in text
    assert "generated target" in " ".join(text.split())


def test_messages_file_and_stdin_and_target_file(cli, qwen_dir, tmp_path):
    messages = [
        {"role": "system", "content": "Answer concisely."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
    (tmp_path / "chat.json").write_text(json.dumps(messages))
    (tmp_path / "answer.txt").write_text("Rayleigh scattering.\n")
    args = ["--target-file", tmp_path / "answer.txt", "-m", qwen_dir, "--method", "occlusion", "-f", "json"]
    from_file = json.loads(_ok(cli("explain", "--messages", tmp_path / "chat.json", *args)).stdout)
    from_stdin = json.loads(_ok(cli("explain", "--messages", "-", *args, input=json.dumps(messages))).stdout)
    assert from_file["messages"] == messages == from_stdin["messages"]
    assert from_file["target"] == "Rayleigh scattering."
    assert [a["score"] for a in from_file["attributions"]] == [a["score"] for a in from_stdin["attributions"]]


def test_raw_prompt_has_no_template(cli, gpt2_dir):
    res = _ok(
        cli(
            "explain",
            "The capital of France is",
            "--raw",
            "-t",
            " Paris.",
            "-m",
            gpt2_dir,
            "--method",
            "occlusion",
            "-f",
            "json",
        )
    )
    result = json.loads(res.stdout)
    assert result["prompt"] == "The capital of France is" and result["messages"] is None
    assert {a["role"] for a in result["attributions"]} == {"prompt"}


def test_output_file_json_and_html(cli, qwen_dir, tmp_path):
    base = ["explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion"]
    _ok(cli(*base, "--output", tmp_path / "r.json"))
    assert AttributionResult.model_validate_json((tmp_path / "r.json").read_text()).target == PARIS
    _ok(cli(*base, "--output", tmp_path / "r.html"))
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "France" in html
    bad = cli(*base, "--output", tmp_path / "r.txt")
    assert bad.exit_code == 2 and ".html" in bad.stderr


def test_per_target_token_draws_a_target_by_input_matrix(cli, qwen_dir):
    out = _ok(explain(cli, qwen_dir, "--method", "occlusion", "--per-target-token")).stdout
    assert "per target token" in out
    matrix = out.split("per target token")[1]
    assert "capital" in matrix and "France" in matrix  # target-token row labels
    res = _ok(explain(cli, qwen_dir, "--method", "occlusion", "--per-target-token", "-f", "json"))
    ptt = json.loads(res.stdout)["per_target_token"]
    assert len(ptt["scores"]) == len(ptt["target_tokens"]) > 1


def test_colour_on_a_terminal_and_off_with_no_color(cli, qwen_dir):
    args = ["explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion"]
    terminal = {"FORCE_COLOR": "1", "COLORTERM": "truecolor", "NO_COLOR": None}
    coloured = _ok(cli(*args, env=terminal)).stdout
    backgrounds = {tuple(map(int, m)) for m in re.findall(r"48;2;(\d+);(\d+);(\d+)", coloured)}
    # a diverging scale: units that raised the target are red, units that lowered it are blue
    assert any(r > b for r, _, b in backgrounds) and any(b > r for r, _, b in backgrounds)
    plain = _ok(cli(*args, env={**terminal, "NO_COLOR": "1"})).stdout
    assert "48;2;" not in plain


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "occlusion", "--n-steps", "8"], "--n-steps: does not apply to occlusion"),
        (["--method", "occlusion", "--n-samples", "8"], "--n-samples: does not apply to occlusion"),
        (["--method", "lime", "--option", "no_such=1"], "--option: no_such does not apply to lime"),
        (["--method", "lime", "--n-samples", "1"], "n_samples"),
        (["--method", "nonsense"], "nonsense"),
        (["--granularity", "page"], "page"),
        (["--top-k", "-1"], "top-k"),
        (["--method", "saliency", "--coarse", "sentence"], "--coarse: coarse-to-fine refinement is for"),
        (["--method", "occlusion", "-g", "sentence", "--coarse", "word"], "not coarser than"),
        (["--method", "occlusion", "--refine-top", "2"], "--refine-top needs --coarse"),
        (
            ["--method", "occlusion", "--screen", "lime"],
            "--screen: unknown --screen 'lime'; choose one of: saliency",
        ),
        (["--method", "occlusion", "--screen", "saliency", "--coarse", "sentence"], "give one of them"),
        (
            ["--method", "saliency", "--screen", "saliency"],
            "--screen: screened refinement is for perturbation methods",
        ),
        (["--method", "occlusion", "--coarse", "sentence", "--refine-top", "0"], "refine-top"),
    ],
)
def test_bad_method_flags_are_usage_errors(cli, qwen_dir, args, message):
    res = explain(cli, qwen_dir, *args)
    assert res.exit_code == 2
    assert message in " ".join(res.stderr.replace("│", " ").split())
    assert "Traceback" not in res.stderr


def test_extra_options_reach_the_method(cli, qwen_dir):
    res = _ok(
        explain(
            cli,
            qwen_dir,
            "--method",
            "lime",
            "--n-samples",
            "12",
            "--option",
            "kernel_width=0.5",
            "--baseline",
            "hide",
            "-f",
            "json",
        )
    )
    params = json.loads(res.stdout)["metadata"]["params"]
    assert params["kernel_width"] == 0.5 and params["baseline"] == "hide" and params["n_samples"] == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the user message"),
        ([FRANCE, "--messages", "chat.json"], "not both"),
        ([FRANCE, "--raw", "--system", "x"], "raw prompt has no roles"),
        ([FRANCE, "--target", "a", "--target-file", "pyproject.toml"], "not both"),
    ],
)
def test_conflicting_inputs_are_usage_errors(cli, qwen_dir, args, message):
    res = cli("explain", *args, "-m", qwen_dir)
    assert res.exit_code == 2
    assert message in " ".join(res.stderr.replace("│", " ").split())


def test_library_errors_are_one_red_line_and_exit_2(cli, qwen_dir, tmp_path):
    (tmp_path / "notes.json").write_text('{"role": "user"}')
    cases = [
        ["explain", FRANCE, "-t", PARIS, "-m", tmp_path],  # a folder without config.json
        ["explain", "--messages", tmp_path / "notes.json", "-t", PARIS, "-m", qwen_dir],
        ["explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--device", "tpu9"],
        ["explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--max-length", "5"],
    ]
    for args in cases:
        res = cli(*args)
        assert res.exit_code == 2, (args, res.stdout, res.stderr)
        assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
        assert "Traceback" not in res.stderr and res.stdout == ""


def test_unexpected_errors_exit_1_with_traceback_only_under_debug(cli, qwen_dir, monkeypatch):
    from fairforge_attr.api import AttributionExplainer

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(AttributionExplainer, "explain", boom)
    args = ["explain", FRANCE, "-t", PARIS, "-m", qwen_dir]
    quiet = cli(*args)
    assert quiet.exit_code == 1
    assert "kaboom" in quiet.stderr and "--debug" in quiet.stderr and "Traceback" not in quiet.stderr
    loud = cli("--debug", *args)
    assert loud.exit_code == 1 and "Traceback" in loud.stderr
    env = cli(*args, env={"FFATTR_DEBUG": "1"})
    assert env.exit_code == 1 and "Traceback" in env.stderr


def test_help_teaches_with_examples(cli):
    for command in ("explain", "batch", "show", "methods"):
        res = cli(command, "--help")
        assert res.exit_code == 0
        assert "Examples:" in res.stdout and f"ffattr {command}" in res.stdout
    top = cli("--help")
    assert top.exit_code == 0 and all(c in top.stdout for c in ("explain", "batch", "show", "methods"))


def test_version(cli):
    from fairforge_attr import __version__

    res = cli("--version")
    assert res.exit_code == 0 and __version__ in res.stdout


def test_gradient_method_takes_n_steps_and_reports_its_convergence_delta(cli, qwen_dir):
    res = _ok(explain(cli, qwen_dir, "--method", "integrated_gradients", "--n-steps", "4", "-f", "json"))
    meta = json.loads(res.stdout)["metadata"]
    assert meta["params"]["n_steps"] == 4 and meta["convergence_delta"] is not None
    text = _ok(explain(cli, qwen_dir, "--method", "integrated_gradients", "--n-steps", "4")).stdout
    assert "convergence delta" in " ".join(text.split())


@pytest.mark.parametrize("granularity", ["paragraph", "message"])
def test_coarse_granularities_and_the_per_role_table(cli, qwen_dir, granularity):
    out = _ok(
        cli("explain", FRANCE, "--system", "Be brief.", "-t", PARIS, "-m", qwen_dir, "-g", granularity)
    ).stdout
    assert "per role" in out and "share of |score|" in out
    assert f"· {granularity} ·" in " ".join(out.split())
    res = _ok(explain(cli, qwen_dir, "-g", granularity, "-f", "json"))
    payload = json.loads(res.stdout)
    assert "What is the capital of France?" in [a["text"] for a in payload["attributions"]]  # one unit
    assert payload["granularity"] == granularity
    assert [t["role"] for t in payload["role_totals"]] == ["user"]


def test_coarse_to_fine_flags(cli, qwen_dir):
    text = "Be brief. What is the capital of France? Answer in one word, please."
    args = ["explain", text, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion", "--coarse", "sentence"]
    res = _ok(cli(*args, "--refine-top", "1"))
    assert "refined 1 of 3 sentences" in " ".join(res.stdout.split())
    payload = json.loads(_ok(cli(*args, "-f", "json")).stdout)
    assert payload["metadata"]["refinement"]["refine_top_k"] == 5  # the default
    assert all(a["refined"] for a in payload["attributions"])  # 5 >= 3 sentences: all refined
    assert len(payload["coarse_attributions"]) == 3


def test_screen_flags(cli, qwen_dir):
    text = "Be brief. What is the capital of France? Answer in one word, please."
    args = ["explain", text, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion", "--screen", "saliency"]
    res = _ok(cli(*args, "--refine-top", "3"))
    assert "saliency screen picked 3 of 17 words" in " ".join(res.stdout.split())
    payload = json.loads(_ok(cli(*args, "--refine-top", "3", "-f", "json")).stdout)
    refinement = payload["metadata"]["refinement"]
    assert refinement["screen"] == "saliency" and refinement["refine_top_k"] == 3
    assert [s["stage"] for s in refinement["stages"]] == ["screen", "fine"]
    assert refinement["stages"][0]["n_backward"] >= 1
    assert sum(a["refined"] for a in payload["attributions"]) == 3
    assert payload["metadata"]["params"]["screen"] == "saliency"
