"""ffattr batch through CliRunner: formats, bad lines, resume, shards, exit codes."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from fairforge_attr.io import PartialStore
from fairforge_attr.io.schema import LONG_SCHEMA, WIDE_SCHEMA
from tests.cli.conftest import SAMPLE, read_jsonl

SMALL = SAMPLE / "batch_small.jsonl"
MIXED = SAMPLE / "batch_mixed.jsonl"
SMALL_IDS = ["france", "sky", "ml", "einstein", "5", "7", "bullets", "paris"]
MIXED_BAD = {  # line -> what the message must say
    2: "invalid JSON",
    3: "no target",
    5: "'messages' is empty",
    6: "messages.0.content",
    7: "more than the limit of 1024",
    9: "'target' is empty",
}


@pytest.fixture()
def run(cli, qwen_dir):
    def go(src, out, *args):
        return cli("batch", src, out, "--model", qwen_dir, "--method", "occlusion", *args)

    return go


def test_parquet_output_matches_the_declared_schema(run, tmp_path):
    out = tmp_path / "out.parquet"
    res = run(SMALL, out)
    assert res.exit_code == 0, res.stderr
    table = pq.read_table(out)
    assert table.schema.equals(WIDE_SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == SMALL_IDS and all(r["status"] == "ok" for r in rows)
    france = rows[0]
    assert france["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert france["target"] == "The capital of France is Paris."
    assert json.loads(france["meta"]) == {"topic": "geography"}
    assert {u["text"] for u in france["units"]} >= {"capital", "France"}
    assert france["method"] == "occlusion" and france["granularity"] == "word" and france["n_forward"] >= 1
    einstein = rows[3]  # no target field: the assistant's last message is the target
    assert einstein["target"] == "Time and space depend on the observer."
    assert [m["role"] for m in einstein["messages"]] == ["user"]
    assert json.loads(einstein["meta"]) == {"source": {"kind": "chat", "turn": 2}}
    assert rows[2]["messages"] is None and rows[2]["prompt"] == "Machine learning is"
    assert not PartialStore(out).exists() and list(tmp_path.iterdir()) == [out]


def test_mixed_good_and_bad_lines(run, tmp_path):
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    res = run(MIXED, out, "--errors", errors)
    assert res.exit_code == 1
    rows = read_jsonl(out)
    ok = [r["id"] for r in rows if r["status"] == "ok"]
    assert ok == ["good-1", "good-2", "good-3", "good-4"]
    failed = {r["line"]: r for r in rows if r["status"] == "error"}
    assert set(failed) == set(MIXED_BAD)
    logged = {e["line"]: e for e in read_jsonl(errors)}
    assert set(logged) == set(MIXED_BAD)
    for line, needle in MIXED_BAD.items():
        assert needle in failed[line]["error"] and needle in logged[line]["error"]
        assert f"line {line} " in res.stderr
    assert failed[2]["id"] == "line-2"  # unreadable line: its id is line-N, never another line's id
    assert logged[3]["id"] == "no-target"
    assert "10 items (4 ok, 6 failed)" in res.stderr


def test_allow_errors_and_on_error_fail(run, tmp_path):
    assert run(MIXED, tmp_path / "a.jsonl", "--allow-errors").exit_code == 0
    out = tmp_path / "b.jsonl"
    res = run(MIXED, out, "--on-error", "fail")
    assert res.exit_code == 1
    assert "line 2" in res.stderr and "--resume" in res.stderr
    assert not out.exists()  # OUT appears only for a finished run
    kept = list(PartialStore(out).merged())
    assert [r["id"] for r in kept] == ["good-1", "line-2"]  # everything up to the bad line


def test_long_layout(run, tmp_path):
    for name in ("long.parquet", "long.jsonl"):
        out = tmp_path / name
        assert run(SMALL, out, "--layout", "long").exit_code == 0
        if name.endswith(".parquet"):
            table = pq.read_table(out)
            assert table.schema.equals(LONG_SCHEMA, check_metadata=False)
            rows = table.to_pylist()
        else:
            rows = read_jsonl(out)
        france = [r for r in rows if r["id"] == "france"]
        assert len(france) > 3 and [r["position"] for r in france] == list(range(len(france)))
        assert {r["text"] for r in france} >= {"France", "capital"}


def test_json_output_is_a_list_of_rows(run, tmp_path):
    out = tmp_path / "out.json"
    assert run(SMALL, out).exit_code == 0
    rows = json.loads(out.read_text())
    assert [r["id"] for r in rows] == SMALL_IDS and rows[0]["meta"] == {"topic": "geography"}


def test_existing_output_needs_overwrite(run, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    res = run(SMALL, out)
    assert res.exit_code == 2 and "--overwrite" in res.stderr
    assert out.read_text() == "precious\n"
    assert run(SMALL, out, "--overwrite").exit_code == 0
    assert len(read_jsonl(out)) == len(SMALL_IDS)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--shard", "3/2"], "I/N"),
        (["--shard", "x"], "I/N"),
        (["--resume", "--overwrite"], "--resume"),
        (["--layout", "tall"], "tall"),
        (["--on-error", "maybe"], "maybe"),
    ],
)
def test_usage_errors_exit_2(run, tmp_path, args, needle):
    res = run(SMALL, tmp_path / "out.parquet", *args)
    assert res.exit_code == 2 and needle in res.stderr


def test_output_name_must_say_the_format(run, tmp_path):
    res = run(SMALL, tmp_path / "out.csv")
    assert res.exit_code == 2 and ".parquet" in res.stderr


def test_shards_partition_the_input_and_limit(run, tmp_path):
    ids = []
    for i in (1, 2, 3):
        out = tmp_path / f"part-{i}.jsonl"
        assert run(SMALL, out, "--shard", f"{i}/3").exit_code == 0
        ids.append([r["id"] for r in read_jsonl(out)])
    assert ids[0] == ["france", "einstein", "bullets"]  # items 0, 3, 6
    assert sorted(i for part in ids for i in part) == sorted(SMALL_IDS)
    out = tmp_path / "limited.jsonl"
    assert run(SMALL, out, "--limit", "3").exit_code == 0
    assert [r["id"] for r in read_jsonl(out)] == SMALL_IDS[:3]


def test_resume_after_a_torn_partial_and_after_a_finished_run(run, tmp_path):
    reference = tmp_path / "reference.jsonl"
    assert run(SMALL, reference).exit_code == 0
    expected = read_jsonl(reference)

    # an interrupted run: 3 rows flushed, a 4th torn mid-write
    out = tmp_path / "out.jsonl"
    store = PartialStore(out)
    store.dir.mkdir()
    text = "".join(json.dumps(r) + "\n" for r in expected[:3]) + json.dumps(expected[3])[:40]
    (store.dir / "run-000.jsonl").write_text(text)
    assert run(SMALL, out).exit_code == 2  # an unfinished run is never silently replaced
    res = run(SMALL, out, "--resume")
    assert res.exit_code == 0, res.stderr
    assert "3 already done" in res.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == SMALL_IDS
    assert [r["units"] for r in rows] == [r["units"] for r in expected]
    assert not store.exists()

    # resuming a finished output: nothing left to compute, the file is unchanged
    res = run(SMALL, out, "--resume")
    assert res.exit_code == 0 and f"{len(SMALL_IDS)} already done" in res.stderr
    assert read_jsonl(out) == rows


def test_resume_retries_failed_items_and_refuses_other_settings(run, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = SMALL.read_text().splitlines()
    src.write_text("\n".join([*lines[:2], '{"id": "late", "prompt": "Hi"}', *lines[2:]]) + "\n")
    out = tmp_path / "out.parquet"
    assert run(src, out).exit_code == 1
    assert [r["id"] for r in pq.read_table(out).to_pylist() if r["status"] == "error"] == ["late"]
    src.write_text(
        src.read_text().replace(
            '{"id": "late", "prompt": "Hi"}', '{"id": "late", "prompt": "Hi", "target": " there"}'
        )
    )
    res = run(src, out, "--resume")
    assert res.exit_code == 0, res.stderr
    rows = pq.read_table(out).to_pylist()
    # the item without an id moved from line 5 to line 6, and so did its default id
    assert [r["id"] for r in rows] == [
        "france",
        "sky",
        "late",
        "ml",
        "einstein",
        "6",
        "7",
        "bullets",
        "paris",
    ]
    assert all(r["status"] == "ok" for r in rows)
    res = run(src, out, "--resume", "--granularity", "sentence")
    assert res.exit_code == 2 and "granularity word -> sentence" in res.stderr
    res = run(src, out, "--resume", "--baseline", "hide")
    assert res.exit_code == 2 and "baseline None -> 'hide'" in res.stderr
    res = run(src, out, "--resume", "--coarse", "sentence")
    assert res.exit_code == 2 and "refinement None -> {'coarse_granularity': 'sentence'" in res.stderr


def test_duplicate_ids_are_reported_and_written_once(run, tmp_path):
    src = tmp_path / "in.jsonl"
    line = json.dumps({"id": "x", "prompt": "The capital of France is", "target": " Paris."})
    src.write_text(line + "\n" + line + "\n")
    out = tmp_path / "out.jsonl"
    res = run(src, out)
    assert res.exit_code == 1 and "used again (first on line 1)" in res.stderr
    assert [r["id"] for r in read_jsonl(out)] == ["x"]


def test_progress_logs_plain_lines_when_stderr_is_not_a_terminal(run, tmp_path, monkeypatch):
    from fairforge_attr.cli import progress

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    res = run(SMALL, tmp_path / "out.jsonl")
    assert res.exit_code == 0
    assert f"ffattr batch: {len(SMALL_IDS)}/{len(SMALL_IDS)} items (0 failed)" in res.stderr
    assert "items/s" in res.stderr and "ETA" in res.stderr and "\x1b[" not in res.stderr


def test_per_target_token_column_and_its_view(cli, qwen_dir, tmp_path):
    out = tmp_path / "out.parquet"
    res = cli(
        "batch",
        SMALL,
        out,
        "-m",
        qwen_dir,
        "--method",
        "lime",
        "--n-samples",
        "8",
        "--per-target-token",
        "--limit",
        "2",
    )
    assert res.exit_code == 0, res.stderr
    rows = pq.read_table(out).to_pylist()
    ptt = rows[0]["per_target_token"]
    assert len(ptt["scores"]) == len(ptt["target_tokens"]) and len(ptt["scores"][0]) == len(rows[0]["units"])
    assert json.loads(rows[0]["params"])["n_samples"] == 8 and rows[0]["seed"] == 0
    shown = cli("show", out, "--per-target-token", "--no-summary")
    assert shown.exit_code == 0 and "per target token" in shown.stdout


def test_message_granularity_rows_carry_typed_role_totals(run, cli, tmp_path):
    out = tmp_path / "out.parquet"
    assert run(SMALL, out, "--granularity", "message").exit_code == 0
    table = pq.read_table(out)
    totals_type = table.schema.field("role_totals").type
    assert (
        str(totals_type.value_type)
        == "struct<role: string, n_units: int32, score: double, abs_score: double>"
    )
    rows = table.to_pylist()
    assert all(r["granularity"] == "message" for r in rows)
    france = rows[0]
    assert [u["text"] for u in france["units"]] == ["What is the capital of France?"]
    assert france["role_totals"][0]["role"] == "user"
    assert france["role_totals"][0]["score"] == pytest.approx(france["units"][0]["score"])
    shown = cli("show", out, "--first", "1")
    assert shown.exit_code == 0 and "per role" in shown.stdout
    long_out = tmp_path / "long.parquet"
    assert run(SMALL, long_out, "--layout", "long", "-g", "paragraph").exit_code == 0
    shown = cli("show", long_out, "--id", "france")
    assert shown.exit_code == 0 and "per role" in shown.stdout


def test_refined_rows_carry_their_coarse_units_and_both_stages(run, cli, tmp_path):
    out = tmp_path / "out.parquet"
    res = run(SMALL, out, "--coarse", "sentence", "--refine-top", "1")
    assert res.exit_code == 0, res.stderr
    rows = pq.read_table(out).to_pylist()
    bullets = next(r for r in rows if r["id"] == "bullets")
    assert len(bullets["coarse_units"]) > 1
    assert sum(u["refined"] for u in bullets["coarse_units"]) == 1
    assert {u["refined"] for u in bullets["units"]} == {True, False}
    assert all(u["score"] == 0.0 for u in bullets["units"] if not u["refined"])
    refinement = bullets["refinement"]
    assert refinement["coarse_granularity"] == "sentence" and refinement["refine_top_k"] == 1
    assert [s["stage"] for s in refinement["stages"]] == ["coarse", "fine"]
    assert bullets["n_sequences"] == sum(s["n_sequences"] for s in refinement["stages"])
    assert json.loads(bullets["params"])["coarse_granularity"] == "sentence"
    shown = cli("show", out, "--id", "bullets")
    assert shown.exit_code == 0 and "refined 1 of" in " ".join(shown.stdout.split())


def test_screened_rows_carry_the_screen_and_its_cost(run, cli, tmp_path):
    out = tmp_path / "out.parquet"
    res = run(SMALL, out, "--screen", "input_x_gradient", "--refine-top", "2")
    assert res.exit_code == 0, res.stderr
    bullets = next(r for r in pq.read_table(out).to_pylist() if r["id"] == "bullets")
    assert sum(u["refined"] for u in bullets["units"]) == 2
    assert all(u["score"] == 0.0 for u in bullets["units"] if not u["refined"])
    refinement = bullets["refinement"]
    assert refinement["screen"] == "input_x_gradient" and refinement["coarse_granularity"] is None
    assert [s["stage"] for s in refinement["stages"]] == ["screen", "fine"]
    assert bullets["n_sequences"] == sum(s["n_sequences"] for s in refinement["stages"])
    assert refinement["stages"][0]["n_backward"] >= 1
    shown = cli("show", out, "--id", "bullets")
    assert shown.exit_code == 0 and "input_x_gradient screen picked 2 of" in " ".join(shown.stdout.split())
    res = run(SMALL, out, "--resume", "--screen", "saliency", "--refine-top", "2")
    assert res.exit_code == 2 and "'screen': 'input_x_gradient'" in res.stderr
