"""explain's input files: one rule for a trailing assistant message, plain errors for bad files."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import PARIS

CHAT = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": PARIS},
]


def test_a_trailing_assistant_message_is_the_target_as_in_batch(cli, qwen_dir, tmp_path):
    (tmp_path / "chat.json").write_text(json.dumps(CHAT))
    res = cli(
        "explain", "--messages", tmp_path / "chat.json", "-m", qwen_dir, "--method", "occlusion", "-f", "json"
    )
    assert res.exit_code == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["target"] == PARIS and result["metadata"]["target_generated"] is False
    assert result["messages"] == CHAT[:1]
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "messages": CHAT}) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli("batch", tmp_path / "in.jsonl", out, "-m", qwen_dir, "--method", "occlusion").exit_code == 0
    row = json.loads(out.read_text())
    assert row["target"] == result["target"] and row["messages"] == result["messages"]
    assert [u["score"] for u in row["units"]] == [a["score"] for a in result["attributions"]]


def test_the_api_follows_the_same_rule(qwen_explainer):
    result = qwen_explainer.explain(CHAT, method="occlusion")
    assert result.target == PARIS and not result.metadata.target_generated
    assert [m.role for m in result.messages] == ["user"]
    given = qwen_explainer.explain(CHAT, "Paris.", method="occlusion")  # a target given: kept as is
    assert given.target == "Paris." and [m.role for m in given.messages] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe[]", "is not UTF-8 text"),
        (b'[{"role": "user", "content": "Hi \\ud800"}]', "unpaired surrogate"),
        (b"[" * 50_000, "nesting too deep"),
        (b'[{"role": "user", "content": "Hi"}, NaN]', "NaN"),
        (b"\xef\xbb\xbf" + json.dumps(CHAT[:1]).encode(), None),  # a BOM is fine
    ],
)
def test_messages_files_that_cannot_be_read_are_one_plain_line(cli, qwen_dir, tmp_path, content, needle):
    path = tmp_path / "chat.json"
    path.write_bytes(content)
    res = cli(
        "explain", "--messages", path, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion", "-f", "json"
    )
    if needle is None:
        assert res.exit_code == 0, res.stderr
        return
    assert res.exit_code == 2, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and needle in res.stderr
    from_stdin = cli("explain", "--messages", "-", "-t", PARIS, "-m", qwen_dir, input=content)
    assert from_stdin.exit_code == 2 and needle in from_stdin.stderr
