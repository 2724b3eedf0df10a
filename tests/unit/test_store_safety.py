"""The output lock and the partial store under damage: nothing finished is lost or overwritten."""

from __future__ import annotations

import json
import os
import socket

import pytest

from fairforge_attr.batch.lock import OutputLock
from fairforge_attr.errors import InvalidRequestError
from fairforge_attr.io import PartialStore
from fairforge_attr.io.schema import error_row


def _row(i: str, line: int, status: str = "ok") -> dict:
    row = error_row(
        item_id=i, line=line, error="bad", model="m", method="lime", granularity="word", seed=0, meta={}
    )
    if status == "ok":
        row.update(status="ok", error=None, units=[], params={})
    return row


def test_a_second_holder_is_refused_and_named(tmp_path):
    out = tmp_path / "out.parquet"
    first = OutputLock(out)
    assert first.acquire() is None
    with pytest.raises(InvalidRequestError) as err:
        OutputLock(out).acquire()  # another open file: refused as another process would be
    message = str(err.value)
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message and "wait" in message
    assert OutputLock(out).holder()["pid"] == os.getpid()
    first.release()
    assert not first.path.exists() and OutputLock(out).holder() is None
    again = OutputLock(out)
    assert again.acquire() is None
    again.release()


def test_a_stale_lock_is_explained_and_taken_over(tmp_path):
    out = tmp_path / "out.jsonl"
    lock = OutputLock(out)
    lock.path.write_text(json.dumps({"pid": 999_999, "host": socket.gethostname(), "started": "earlier"}))
    assert OutputLock(out).holder() is None  # nobody holds it: the run that wrote it is gone
    note = lock.acquire()
    assert note is not None and "999999" in note and "stale" in note
    lock.release()


def test_a_new_run_never_truncates_an_existing_run_file(tmp_path):
    out = tmp_path / "out.jsonl"
    a, b = PartialStore(out), PartialStore(out)
    a.start_run()
    a.append(_row("1", 1))
    b.start_run()  # a second writer (a stale handle, a second process) gets its own file
    b.append(_row("2", 2))
    a.close_run()
    b.close_run()
    assert sorted(r["id"] for r in PartialStore(out).rows()) == ["1", "2"]


def test_damaged_rows_are_skipped_with_one_note(tmp_path):
    store = PartialStore(tmp_path / "out.parquet")
    store.dir.mkdir()
    good = [json.dumps(_row(str(i), i)) for i in (1, 2, 3)]
    damaged = [
        b"\xff\xfe not utf-8",
        json.dumps({"id": "4", "line": 4}).encode(),  # no status
        json.dumps({**_row("5", 5), "id": ["5"]}).encode(),  # id is a list
        json.dumps({**_row("6", 6), "line": "six"}).encode(),  # line is a string
        b"{not json",
    ]
    lines = [good[0].encode(), *damaged[:3], good[1].encode(), *damaged[3:], good[2].encode()]
    (store.dir / "run-000.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (store.dir / "run-001.jsonl").mkdir()  # a folder named like a run file
    assert store.done_ids() == {"1", "2", "3"}
    assert [r["id"] for r in store.merged()] == ["1", "2", "3"]
    note = store.damage_note()
    assert note is not None and "5 damaged rows" in note and "run-000.jsonl" in note
    assert "computed again" in note and note.count("\n") == 0
    store.start_run()  # the folder named run-001.jsonl is not in the way
    store.close_run()


def test_out_is_never_replaced_by_fewer_items_than_the_store_holds(tmp_path):
    from fairforge_attr.errors import OutputError
    from fairforge_attr.io import write_rows

    out = tmp_path / "out.jsonl"
    assert write_rows(out, [_row("1", 1), _row("2", 2), _row("3", 3)]) == 3
    before = out.read_text()
    with pytest.raises(OutputError, match="fewer than the 3"):
        write_rows(out, [_row("1", 1)], min_items=3)
    assert out.read_text() == before and list(tmp_path.iterdir()) == [out]


def test_a_refused_resume_gives_the_lock_back(qwen_explainer, tmp_path):
    from fairforge_attr.batch import BatchJob
    from fairforge_attr.io import write_rows

    out = tmp_path / "out.jsonl"
    row = {**_row("1", 1), "method": "lime", "granularity": "word", "model": qwen_explainer.model_name}
    write_rows(out, [row])
    job = BatchJob(qwen_explainer, out, method="occlusion", granularity="word")
    with pytest.raises(InvalidRequestError, match="mix settings"):
        job.resume()  # no `with`: a Python caller that does not close the job
    assert not job.lock.held and OutputLock(out).holder() is None
