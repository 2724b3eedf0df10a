"""ffattr batch: one run per OUT, a damaged store, counts that agree with the exit code, settings
and output problems reported plainly and before any work where possible."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import time

import pytest

from fairforge_attr.batch.lock import OutputLock
from fairforge_attr.io import PartialStore
from tests.cli.conftest import ROOT, SAMPLE, ffattr_command, read_jsonl

SMALL = SAMPLE / "batch_small.jsonl"
GOOD = {"prompt": "The capital of France is", "target": " Paris."}


@pytest.fixture()
def run(cli, qwen_dir):
    def go(src, out, *args, **kwargs):
        return cli("batch", src, out, "--model", qwen_dir, "--method", "occlusion", *args, **kwargs)

    return go


def _write(path, *objects) -> None:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects))


@pytest.mark.slow
def test_a_second_run_on_the_same_output_is_refused_and_the_first_loses_nothing(run, qwen_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    _write(src, *[{**GOOD, "id": f"item-{i}"} for i in range(64)])
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["batch", "-", out, "--model", qwen_dir, "--method", "lime", "--n-samples", "1024"]
    # The first run reads stdin, which stays open until both refusals are seen: it is still at
    # work then however fast the machine is (a file input let it finish first on a quiet one).
    first = subprocess.Popen(
        [*ffattr_command(), *args], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    first.stdin.write(src.read_text())
    first.stdin.flush()
    try:
        deadline = time.monotonic() + 120
        while not (OutputLock(out).holder() or {}).get("pid"):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = run(src, out, "--overwrite")
        assert second.exit_code == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "another ffattr batch run" in second.stderr
        resumed = run(src, out, "--resume")
        assert resumed.exit_code == 2 and f"pid {first.pid}" in resumed.stderr
        assert first.poll() is None  # both were refused while the first run was still at work
        stderr = first.communicate(timeout=240)[1]
    finally:
        first.kill()
    assert first.returncode == 0, stderr
    assert [r["id"] for r in read_jsonl(out)] == [f"item-{i}" for i in range(64)]
    assert not OutputLock(out).path.exists() and not PartialStore(out).exists()


def test_resume_over_a_damaged_store_recomputes_the_damaged_rows(run, tmp_path):
    reference = tmp_path / "reference.jsonl"
    assert run(SMALL, reference).exit_code == 0
    rows = read_jsonl(reference)
    out = tmp_path / "out.jsonl"
    store = PartialStore(out)
    store.dir.mkdir()
    lines = [json.dumps(rows[0]).encode(), b"\xff\xfe\n"[:-1], json.dumps({**rows[1], "id": ["x"]}).encode()]
    lines += [json.dumps({**rows[2], "line": "3"}).encode(), json.dumps({"id": rows[3]["id"]}).encode()]
    (store.dir / "run-000.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (store.dir / "run-001.jsonl").mkdir()
    res = run(SMALL, out, "--resume")
    assert res.exit_code == 0, res.stderr
    assert res.stderr.count("damaged rows") == 1 and "1 already done" in res.stderr
    assert [r["id"] for r in read_jsonl(out)] == [r["id"] for r in rows]


def test_counts_and_exit_code_agree_and_no_error_row_vanishes(run, tmp_path):
    src = tmp_path / "in.jsonl"
    # line 2 cannot be read, and its line number is an id of line 1 and of line 4
    _write(
        src, {**GOOD, "id": 2}, "{broken", {**GOOD, "id": "x"}, {**GOOD, "id": "line-2x"}, {**GOOD, "id": "x"}
    )
    out = tmp_path / "out.jsonl"
    res = run(src, out)
    assert res.exit_code == 1
    rows = read_jsonl(out)
    assert [(r["id"], r["line"], r["status"]) for r in rows] == [
        ("2", 1, "ok"),
        ("line-2", 2, "error"),
        ("x", 3, "ok"),
        ("line-2x", 4, "ok"),
    ]
    summary = " ".join(res.stderr.split())
    assert "4 items (3 ok, 1 failed)" in summary and "1 line left out" in summary

    only_repeats = tmp_path / "repeats.jsonl"
    _write(only_repeats, {**GOOD, "id": "a"}, {**GOOD, "id": "a"})
    res = run(only_repeats, tmp_path / "r.jsonl")
    assert res.exit_code == 1 and "1 items (1 ok, 0 failed)" in res.stderr and "1 line left out" in res.stderr
    assert run(only_repeats, tmp_path / "r2.jsonl", "--allow-errors").exit_code == 0


def test_a_fixed_unreadable_line_leaves_no_stale_error_row(run, tmp_path):
    src = tmp_path / "in.jsonl"
    _write(src, {**GOOD, "id": "a"}, "{broken", {**GOOD, "id": "c"})
    out = tmp_path / "out.jsonl"
    assert run(src, out).exit_code == 1
    _write(src, {**GOOD, "id": "a"}, {**GOOD, "id": "b"}, {**GOOD, "id": "c"})
    res = run(src, out, "--resume")
    assert res.exit_code == 0, res.stderr
    assert [(r["id"], r["status"]) for r in read_jsonl(out)] == [("a", "ok"), ("b", "ok"), ("c", "ok")]


def test_an_explicit_id_equal_to_a_done_line_number_does_not_hide_a_broken_line(run, tmp_path):
    src = tmp_path / "in.jsonl"
    _write(src, {**GOOD, "id": 2}, {**GOOD, "id": "b"})
    out = tmp_path / "out.jsonl"
    assert run(src, out).exit_code == 0
    _write(src, {**GOOD, "id": 2}, "{broken")
    res = run(src, out, "--resume")
    assert res.exit_code == 1 and "line 2" in res.stderr
    assert ("line-2", "error") in [(r["id"], r["status"]) for r in read_jsonl(out)]


def test_a_refused_resume_leaves_no_store_behind(run, tmp_path):
    out = tmp_path / "out.jsonl"
    assert run(SMALL, out).exit_code == 0
    before = out.read_text()
    res = run(SMALL, out, "--resume", "--granularity", "sentence")
    assert res.exit_code == 2 and "granularity word -> sentence" in res.stderr
    assert not PartialStore(out).exists() and out.read_text() == before
    again = run(SMALL, out)
    assert again.exit_code == 2 and "exists" in again.stderr and "unfinished" not in again.stderr


def test_bad_settings_never_create_a_store(run, tmp_path):
    out = tmp_path / "out.jsonl"
    res = run(SMALL, out, "--baseline", "two words")
    assert res.exit_code == 2 and "one token" in res.stderr and "--resume" not in res.stderr
    assert list(tmp_path.iterdir()) == []


def _refuse_to_load(monkeypatch):
    from fairforge_attr.model_spec import ModelSpec

    def boom(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(ModelSpec, "load", boom)


def test_an_unwritable_output_is_refused_before_any_work(cli, run, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    _refuse_to_load(monkeypatch)
    for out in (tmp_path / "a-file" / "sub" / "out.jsonl", "/proc/self/out.jsonl"):
        res = run(SMALL, out)
        assert res.exit_code == 2, res.stderr
        assert res.stderr.startswith("error: ") and "kept" not in res.stderr and "--resume" not in res.stderr
    for target in (tmp_path / "a-file" / "r.html", "/proc/self/r.json"):
        res = cli("explain", "Hi", "-t", "there", "-o", target)
        assert res.exit_code == 2 and res.stderr.startswith("error: ") and str(target) in res.stderr


def test_explain_creates_the_output_folder(cli, qwen_dir, tmp_path):
    target = tmp_path / "missing" / "dir" / "x.html"
    res = cli("explain", "Hi", "-t", "there", "-m", qwen_dir, "--method", "occlusion", "-o", target)
    assert res.exit_code == 0, res.stderr
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_a_full_disk_is_one_plain_line_that_says_what_was_kept(run, tmp_path, monkeypatch):
    src = tmp_path / "in.jsonl"
    _write(src, {**GOOD, "id": "a"}, {**GOOD, "id": "b"}, "{broken", {**GOOD, "id": "d"})
    out = tmp_path / "out.jsonl"
    res = run(src, out, "--errors", "/dev/full")  # every write there fails: No space left on device
    assert res.exit_code == 2, res.stderr
    assert "No space left on device" in res.stderr and "3 finished items are kept" in res.stderr
    assert "Traceback" not in res.stderr and "unexpected" not in res.stderr
    assert {r["id"] for r in PartialStore(out).rows()} == {"a", "b", "line-3"}

    from fairforge_attr.io import formats

    def full(tmp, rows, layout):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    patched = [dataclasses.replace(f, write_rows=full) if f.name == "jsonl" else f for f in formats.FORMATS]
    monkeypatch.setattr(formats, "FORMATS", tuple(patched))
    res = run(src, out, "--resume")
    assert res.exit_code == 2, res.stderr
    assert (
        "No space left on device" in res.stderr
        and f"all 4 items are kept in {PartialStore(out).dir}" in res.stderr
    )
    assert not out.exists() and PartialStore(out).count() == 4
