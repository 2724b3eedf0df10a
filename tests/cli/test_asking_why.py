"""The questions users ask, on the command line: ``explain --contrast`` and ``batch --generate``
(and a batch line's ``"contrast"``), on the built-in demo model."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from fairforge_attr.io.schema import LONG_SCHEMA, WIDE_SCHEMA
from tests.cli.conftest import FRANCE, PARIS, SAMPLE, read_jsonl

BERLIN = "The capital of Germany is Berlin."
QUESTIONS = SAMPLE / "demo_questions.jsonl"


def test_explain_contrast_names_both_answers_and_ranks_france(cli):
    res = cli("explain", FRANCE, "-t", PARIS, "--contrast", BERLIN, "--method", "occlusion")
    assert res.exit_code == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "target: why this answer" in text and "contrast: and not this one" in text
    assert f"for '{PARIS}' rather than '{BERLIN}'" in text
    assert "log p(target) - log p(contrast) =" in text
    data = json.loads(
        cli("explain", FRANCE, "-t", PARIS, "-c", BERLIN, "--method", "occlusion", "-f", "json").stdout
    )
    assert data["contrast"] == BERLIN and data["metadata"]["contrast_log_prob"] < -5
    assert max(data["attributions"], key=lambda a: abs(a["score"]))["text"] == "France"


def test_contrast_with_per_target_token_is_refused_before_the_model_loads(cli):
    res = cli("explain", FRANCE, "-t", PARIS, "-c", BERLIN, "--per-target-token", "-m", "/nonexistent")
    assert res.exit_code == 2
    assert "not defined for a contrastive item" in " ".join(res.stderr.replace("│", " ").split())


def test_batch_generate_answers_the_lines_without_a_target(cli, tmp_path):
    out = tmp_path / "answers.parquet"
    res = cli("batch", QUESTIONS, out, "--generate", "--method", "occlusion")
    assert res.exit_code == 0, res.stderr
    table = pq.read_table(out)
    assert table.schema.equals(WIDE_SCHEMA, check_metadata=False)
    rows = {r["id"]: r for r in table.to_pylist()}
    assert all(r["status"] == "ok" for r in rows.values())
    assert rows["france"]["target"] == PARIS and rows["france"]["target_generated"] is True
    assert rows["germany"]["target"] == BERLIN and rows["kenya"]["target_generated"] is True
    assert rows["given"]["target_generated"] is False  # a line with a target keeps it
    assert rows["given"]["target"] == "The capital of Japan is Tokyo."
    why = rows["why-paris"]
    assert why["contrast"] == BERLIN and why["contrast_log_prob"] < why["target_log_prob"]
    assert all(r["contrast"] is None for k, r in rows.items() if k != "why-paris")
    shown = cli("show", out, "--id", "why-paris", "--id", "france")
    assert shown.exit_code == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "contrast: and not this one" in text and "target (generated)" in text
    assert "generated targets 6 of 8" in text and "contrastive 1 of 8" in text


def test_batch_without_generate_keeps_missing_targets_as_error_rows(cli, tmp_path):
    out = tmp_path / "out.jsonl"
    res = cli("batch", QUESTIONS, out, "--method", "occlusion")
    assert res.exit_code == 1
    rows = read_jsonl(out)
    failed = [r["id"] for r in rows if r["status"] == "error"]
    assert failed == ["france", "germany", "japan-language", "kenya", "ocean", "relativity"]
    assert all("--generate" in r["error"] for r in rows if r["status"] == "error")


def test_generate_keeps_the_assistant_message_rule(cli, tmp_path):
    """A line whose last message is the assistant's explains that message, --generate or not."""
    src = tmp_path / "in.jsonl"
    chat = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    src.write_text(json.dumps({"id": "a", "messages": chat}) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli("batch", src, out, "--generate", "--method", "occlusion").exit_code == 0
    (row,) = read_jsonl(out)
    assert row["target"] == "Paris." and row["target_generated"] is False


def test_max_new_tokens_needs_generate_and_bounds_the_answers(cli, tmp_path):
    res = cli("batch", QUESTIONS, tmp_path / "x.jsonl", "--max-new-tokens", "3")
    assert res.exit_code == 2 and "add --generate" in " ".join(res.stderr.replace("│", " ").split())
    out = tmp_path / "short.jsonl"
    res = cli(
        "batch",
        QUESTIONS,
        out,
        "--generate",
        "--max-new-tokens",
        "3",
        "--method",
        "occlusion",
        "--limit",
        "2",
    )
    assert res.exit_code == 0, res.stderr
    assert [r["target"] for r in read_jsonl(out)] == ["The capital of", "The capital of"]


def test_long_layout_says_which_rows_are_contrastive_or_generated(cli, tmp_path):
    out = tmp_path / "long.parquet"
    res = cli("batch", QUESTIONS, out, "--generate", "--method", "occlusion", "--layout", "long")
    assert res.exit_code == 0, res.stderr
    table = pq.read_table(out)
    assert table.schema.equals(LONG_SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    assert {r["contrast"] for r in rows if r["id"] == "why-paris"} == {BERLIN}
    assert {r["target_generated"] for r in rows if r["id"] == "france"} == {True}
