"""--model, --revision, --trust-remote-code: refusals are one plain line and exit 2."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import FRANCE, PARIS
from tests.model_folders import custom_code_folder, pickled_weights_folder


def _one_line_exit_2(res) -> str:
    assert res.exit_code == 2, res.stdout + res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    return res.stderr


def test_custom_code_and_pickles_are_refused_plainly(cli, qwen_dir, tmp_path):
    folder, marker = custom_code_folder(Path(qwen_dir), tmp_path)
    for command in (["explain", FRANCE, "-t", PARIS], ["batch", "in.jsonl", tmp_path / "out.jsonl"]):
        if command[0] == "batch":
            (tmp_path / "in.jsonl").write_text('{"prompt": "Hi", "target": " there"}\n')
            command[1] = tmp_path / "in.jsonl"
        stderr = _one_line_exit_2(cli(*command, "-m", folder, "--method", "occlusion"))
        assert "custom code" in stderr and "--trust-remote-code" in stderr
    assert not marker.exists()
    pickled, marker = pickled_weights_folder(Path(qwen_dir), tmp_path / "p")
    stderr = _one_line_exit_2(cli("explain", FRANCE, "-t", PARIS, "-m", pickled))
    assert "pickle" in stderr and not marker.exists()


def test_revision_and_trust_remote_code_reach_the_loader(cli, qwen_dir, monkeypatch):
    from fairforge_attr import api

    seen = []
    real = api.load_model

    def spy(*args, **kwargs):
        seen.append((kwargs.get("revision"), kwargs.get("trust_remote_code")))
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "load_model", spy)
    base = ["explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion", "-f", "json"]
    assert cli(*base).exit_code == 0
    assert cli(*base, "--revision", "v2", "--trust-remote-code").exit_code == 0
    assert seen == [(None, False), ("v2", True)]


def test_help_states_the_risk_of_trust_remote_code(cli):
    for command in ("explain", "batch"):
        text = " ".join(cli(command, "--help").stdout.replace("│", " ").split())
        assert "--trust-remote-code" in text and "your permissions" in text and "--revision" in text
