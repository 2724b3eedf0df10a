"""ffattr as a real process: the console script on sample_data/, and a SIGTERM mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pyarrow.parquet as pq
import pytest

from fairforge_attr.io import PartialStore
from fairforge_attr.io.schema import WIDE_SCHEMA
from tests.cli.conftest import ROOT, SAMPLE, ffattr_command, read_jsonl

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # see one_torch_thread
    env.pop("FFATTR_DEBUG", None)
    return env


def _sigterm_after_the_first_items(src, out, args: list[str]) -> str:
    """Run ``ffattr batch src out *args`` as a process, send SIGTERM as soon as the first items
    are stored, and return its stderr (after checking it exited 143)."""
    store = PartialStore(out)
    proc = subprocess.Popen(
        [*ffattr_command(), "batch", src, out, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while store.count() == 0:  # wait for the first finished items, then kill at once
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        stderr = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    return stderr


def test_console_script_batch_on_sample_data(qwen_dir, tmp_path):
    out, errors = tmp_path / "out.parquet", tmp_path / "errors.jsonl"
    proc = subprocess.run(
        [*ffattr_command(), "batch", SAMPLE / "batch_mixed.jsonl", out, "--model", qwen_dir,
         "--method", "occlusion", "--errors", errors],
        capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the sample holds bad lines on purpose
    assert proc.stdout == ""  # data goes to files, logs to stderr
    assert "line 2 (id line-2): invalid JSON" in proc.stderr
    assert "10 items (4 ok, 6 failed)" in proc.stderr
    table = pq.read_table(out)
    assert table.schema.equals(WIDE_SCHEMA, check_metadata=False)
    assert table.column("status").to_pylist().count("ok") == 4
    assert [e["line"] for e in read_jsonl(errors)] == [2, 3, 5, 6, 7, 9]


def test_sigterm_mid_run_then_resume_equals_an_uninterrupted_run(cli, qwen_dir, tmp_path):
    items = [json.loads(line) for line in (SAMPLE / "batch_small.jsonl").read_text().splitlines()]
    src = tmp_path / "in.jsonl"
    with open(src, "w") as f:
        for i in range(128):  # four groups of 32 items that share forward passes
            item = dict(items[i % len(items)], id=f"item-{i}")
            f.write(json.dumps(item) + "\n")
    args = ["--model", qwen_dir, "--method", "lime", "--n-samples", "8", "--seed", "7"]

    reference = tmp_path / "reference.parquet"
    assert cli("batch", src, reference, *args).exit_code == 0
    expected = pq.read_table(reference).to_pylist()

    out = tmp_path / "out.parquet"
    store = PartialStore(out)
    stderr = _sigterm_after_the_first_items(src, out, args)
    assert "--resume" in stderr
    assert not out.exists()  # no half output: OUT appears only when the run is complete
    kept = store.count()
    assert 0 < kept < len(expected)

    res = cli("batch", src, out, *args, "--resume")
    assert res.exit_code == 0, res.stderr
    assert f"{kept} already done" in res.stderr
    rows = pq.read_table(out).to_pylist()
    assert [r["id"] for r in rows] == [r["id"] for r in expected]  # each id once, input order
    for got, want in zip(rows, expected):
        assert [u["text"] for u in got["units"]] == [u["text"] for u in want["units"]]
        # same seed, same samples; packing items differently only changes float rounding
        assert [u["score"] for u in got["units"]] == pytest.approx(
            [u["score"] for u in want["units"]], abs=1e-5
        )
    assert not store.exists()


def test_sigterm_mid_generate_run_then_resume_keeps_the_generated_texts(cli, tmp_path):
    """Items finished before a SIGTERM keep the answers the model gave them: the resumed run
    (here with a shorter --max-new-tokens, which a fresh generation would show) does not
    generate them again."""
    questions = [
        json.loads(line)["messages"][:1]
        for line in (ROOT / "sample_data" / "demo_corpus.jsonl").read_text().splitlines()
        if '"messages"' in line
    ]
    src = tmp_path / "in.jsonl"
    with open(src, "w") as f:
        for i in range(160):  # five groups of 32 items: answers are generated group by group
            f.write(json.dumps({"id": f"q{i}", "messages": questions[i % len(questions)]}) + "\n")
    out = tmp_path / "out.parquet"
    store = PartialStore(out)
    args = ["--generate", "--method", "occlusion"]
    _sigterm_after_the_first_items(src, out, args)
    kept = {r["id"]: r["target"] for r in store.rows() if r["status"] == "ok"}
    assert 0 < len(kept) < 160
    assert all(len(text.split()) > 2 for text in kept.values())  # whole answers

    res = cli("batch", src, out, *args, "--max-new-tokens", "2", "--resume")
    assert res.exit_code == 0, res.stderr
    assert f"{len(kept)} already done" in res.stderr
    rows = pq.read_table(out).to_pylist()
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(160)]
    assert all(r["status"] == "ok" and r["target_generated"] for r in rows)
    for r in rows:
        if r["id"] in kept:
            assert r["target"] == kept[r["id"]]  # stored, not generated again
        else:
            assert len(r["target"].split()) <= 2  # generated by the resumed run
