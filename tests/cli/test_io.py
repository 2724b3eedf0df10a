"""The pieces under the batch command: JSONL reading, the schema, the partial store, writers."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from fairforge_attr.io import PartialStore, iter_jsonl, parse_batch_item, write_rows
from fairforge_attr.io.jsonl import JsonLine
from fairforge_attr.io.schema import (
    LONG_SCHEMA,
    WIDE_SCHEMA,
    error_row,
    from_arrow,
    long_rows,
    to_arrow,
    wide_from_long,
)

USER = {"role": "user", "content": "Hi"}


def _item(value, line=3):
    return parse_batch_item(JsonLine(line, value=value))


def test_item_shapes_ids_and_meta():
    a = _item({"id": "a", "messages": [USER], "target": "Hey", "lang": "en"})
    assert (a.id, a.request, a.meta, a.error) == (
        "a",
        {"messages": [USER], "target": "Hey"},
        {"lang": "en"},
        None,
    )
    b = _item({"prompt": "2 + 2 =", "target": " 4"}, line=9)
    assert b.id == "9" and b.request == {"prompt": "2 + 2 =", "target": " 4"}
    c = _item({"id": 12, "messages": [USER, {"role": "assistant", "content": "Hello"}]})
    assert c.id == "12" and c.request == {"messages": [USER], "target": "Hello"}
    assert "no target" in _item({"messages": [USER]}).error
    assert "no target" in _item({"messages": [USER], "target": None}).error
    assert "'id' must be" in _item({"id": True, "prompt": "x", "target": "y"}).error
    assert "'id' must be" in _item({"id": ["a"], "prompt": "x", "target": "y"}).error
    assert "expected a JSON object, got list" in _item([1, 2]).error


def test_contrast_is_part_of_the_request_and_generate_accepts_lines_without_target():
    a = _item({"id": "a", "messages": [USER], "target": "Hey", "contrast": "Go away", "lang": "en"})
    assert a.request == {"messages": [USER], "target": "Hey", "contrast": "Go away"} and a.meta == {
        "lang": "en"
    }
    b = parse_batch_item(JsonLine(4, value={"id": "b", "messages": [USER]}), generate=True)
    assert b.error is None and b.request == {"messages": [USER]}  # the model will answer it
    c = parse_batch_item(
        JsonLine(5, value={"messages": [USER, {"role": "assistant", "content": "Yo"}]}), generate=True
    )
    assert c.request == {"messages": [USER], "target": "Yo"}  # the assistant's message still wins
    assert "--generate" in _item({"messages": [USER]}).error


def test_jsonl_lines_keep_their_numbers(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"a": \n\xff\xfe\n{"a": 2}')
    lines = list(iter_jsonl(path))
    assert [x.line for x in lines] == [1, 4, 5, 6]
    assert lines[0].value == {"a": 1} and lines[3].value == {"a": 2}
    assert "invalid JSON" in lines[1].error and "UTF-8" in lines[2].error


def _row(i, status="ok", line=None):
    if status != "ok":
        return error_row(
            item_id=i, line=line, error="bad", model="m", method="lime", granularity="word", seed=0, meta={}
        )
    row = dict.fromkeys(WIDE_SCHEMA.names)
    unit = {
        "text": "x",
        "score": 0.5,
        "normalized_score": 1.0,
        "position": 0,
        "message_index": 0,
        "role": "user",
        "char_start": 0,
        "char_end": 1,
        "refined": True,
        "coarse_position": 0,
        "std_error": 0.25,
    }
    row.update(
        id=i, line=line, status="ok", units=[unit], params={"n_samples": 8}, meta={"k": [1, 2]}, warnings=[]
    )
    return row


def test_partial_store_merges_runs_newest_row_wins(tmp_path):
    store = PartialStore(tmp_path / "out.parquet")
    store.start_run()
    for i, status in [(1, "ok"), (2, "error"), (4, "ok")]:
        store.append(_row(str(i), status, line=i))
    store.close_run()
    with open(store.runs()[0], "a") as f:
        f.write('{"id": "5", "status": "ok", "li')  # a write torn by a kill
    assert store.done_ids() == {"1", "4"}
    store.start_run()  # the resumed run: retries 2, adds 3 and 5
    for i in (2, 3, 5):
        store.append(_row(str(i), line=i))
    store.close_run()
    merged = list(store.merged())
    assert [(r["id"], r["status"]) for r in merged] == [(str(i), "ok") for i in range(1, 6)]
    assert store.count() == 5
    store.remove()
    assert not store.exists()


def test_schema_round_trip_wide_and_long(tmp_path):
    rows = [_row("a", line=1), _row("b", "error", line=2)]
    table = to_arrow(rows, "wide")
    assert table.schema.equals(WIDE_SCHEMA)
    assert from_arrow(table) == rows  # params and meta come back as objects
    long = [r for row in rows for r in long_rows(row)]
    assert to_arrow(long, "long").schema.equals(LONG_SCHEMA)
    back = wide_from_long([r for r in long if r["id"] == "a"])
    assert back["units"] == rows[0]["units"] and back["meta"] == rows[0]["meta"]
    assert wide_from_long([r for r in long if r["id"] == "b"])["units"] == []


@pytest.mark.parametrize("name", ["out.parquet", "out.jsonl", "out.json"])
def test_writes_are_atomic(tmp_path, name):
    out = tmp_path / name

    def rows_then_crash():
        yield _row("a", line=1)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_rows(out, rows_then_crash())
    assert list(tmp_path.iterdir()) == []  # neither OUT nor a temporary file
    assert write_rows(out, [_row("a", line=1), _row("b", line=2)]) == 2
    if name.endswith(".parquet"):
        assert pq.read_table(out).num_rows == 2
    elif name.endswith(".json"):
        assert [r["id"] for r in json.loads(out.read_text())] == ["a", "b"]
    else:
        assert len(out.read_text().splitlines()) == 2


def test_an_empty_run_still_writes_a_readable_file(tmp_path):
    assert write_rows(tmp_path / "empty.parquet", []) == 0
    assert pq.read_table(tmp_path / "empty.parquet").schema.equals(WIDE_SCHEMA, check_metadata=False)
    assert write_rows(tmp_path / "empty.json", []) == 0
    assert json.loads((tmp_path / "empty.json").read_text()) == []


def test_batch_job_from_python(qwen_explainer, tmp_path):
    from fairforge_attr.batch import BatchJob
    from tests.cli.conftest import SAMPLE

    seen = []
    job = BatchJob(qwen_explainer, tmp_path / "out.jsonl", method="occlusion", granularity="word")
    job.on_progress = seen.append
    job.run(SAMPLE / "batch_mixed.jsonl", errors_path=tmp_path / "errors.jsonl")
    assert job.finish() == (10, 6)
    assert sorted(seen) == ["failed"] * 6 + ["ok"] * 4
    assert len((tmp_path / "errors.jsonl").read_text().splitlines()) == 6
