"""ffattr batch --backend ray on a local Ray with 2 workers: the local backend's rows and
guarantees (bad lines, an existing OUT, a killed worker, SIGTERM and --resume, progress).

Ray starts once for the module (a few seconds); each command joins it, as a job joins a Ray
already running in its process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest

from fairforge_attr.io import PartialStore, open_results
from tests.cli.conftest import ROOT, SAMPLE, ffattr_command

ray = pytest.importorskip("ray", reason="the ray extra: pip install -e '.[ray]' (CI installs it)")
psutil = pytest.importorskip("psutil")  # ray installs it

pytestmark = pytest.mark.slow
RAY = ["--backend", "ray", "--num-workers", "2"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    """The mixed sample (bad lines included) and 40 more items: 50 lines."""
    src = tmp_path_factory.mktemp("ray-in") / "in.jsonl"
    good = [json.loads(line) for line in (SAMPLE / "batch_small.jsonl").read_text().splitlines()]
    lines = (SAMPLE / "batch_mixed.jsonl").read_text().splitlines()
    lines += [json.dumps(dict(good[i % len(good)], id=f"more-{i}")) for i in range(40)]
    src.write_text("\n".join(lines) + "\n")
    return src


METHOD = ["--method", "lime", "--n-samples", "16", "--seed", "3"]


@pytest.fixture()
def batch(cli, qwen_dir):
    def go(src, out, *args):
        return cli("batch", src, out, "--model", qwen_dir, *METHOD, *args)

    return go


@pytest.fixture(scope="module")
def local_rows(big_input, qwen_dir, tmp_path_factory):
    """The local backend's output on the big input: what every ray run must equal."""
    from typer.testing import CliRunner

    from fairforge_attr.cli import app

    out = tmp_path_factory.mktemp("ray-local") / "local.parquet"
    args = ["batch", big_input, out, "--model", qwen_dir, *METHOD]
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 1, res.stderr  # the bad lines
    return pq.read_table(out).to_pylist()


def _same_rows(rows, expected, tolerance):
    assert [(r["id"], r["line"], r["status"], r["error"]) for r in rows] == [
        (r["id"], r["line"], r["status"], r["error"]) for r in expected
    ]
    for got, want in zip(rows, expected):
        assert [u["text"] for u in got["units"] or []] == [u["text"] for u in want["units"] or []]
        for a, b in zip(got["units"] or [], want["units"] or []):
            assert abs(a["score"] - b["score"]) <= tolerance, (got["id"], a, b)


def test_rows_equal_the_local_backend_bad_lines_included(batch, big_input, local_rows, tmp_path):
    out = tmp_path / "out.parquet"
    res = batch(big_input, out, *RAY)
    assert res.exit_code == 1, res.stderr  # bad lines fail the run, as locally
    assert "line 2 (id line-2): invalid JSON" in res.stderr  # line numbers kept through Ray
    assert "50 items (44 ok, 6 failed)" in res.stderr
    assert "Ray: 48 items in tasks of 32 on 2 worker(s)" in res.stderr  # 2 lines are unreadable
    assert "MapBatches" not in res.stderr and "core_worker" not in res.stderr  # Ray's own output stays off
    rows = pq.read_table(out).to_pylist()
    # the default tasks are the local loop's groups: the very same passes, the very same scores
    _same_rows(rows, local_rows, tolerance=0.0)
    assert not PartialStore(out).exists()


def test_generate_and_contrast_on_the_workers_equal_the_local_backend(cli, tmp_path):
    """--generate: the workers answer the lines without a target, as the local loop does; a
    line's contrast travels with its request."""
    src, local, remote = SAMPLE / "demo_questions.jsonl", tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    args = ["--generate", "--method", "occlusion"]  # the built-in demo model answers for real
    assert cli("batch", src, local, *args).exit_code == 0
    res = cli("batch", src, remote, *args, *RAY)
    assert res.exit_code == 0, res.stderr
    rows = [[json.loads(line) for line in path.read_text().splitlines()] for path in (local, remote)]
    keys = ("id", "target", "target_generated", "contrast", "contrast_log_prob")
    assert [[r[k] for k in keys] for r in rows[1]] == [[r[k] for k in keys] for r in rows[0]]
    assert sum(r["target_generated"] for r in rows[1]) == 6


def test_small_tasks_and_a_folder_of_parts(batch, big_input, local_rows, tmp_path, monkeypatch):
    monkeypatch.setattr("fairforge_attr.io.writers.PART_ITEMS", 20)
    out = tmp_path / "parts"
    res = batch(big_input, f"{out}/", *RAY, "--rows-per-task", "3", "--allow-errors")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert [pq.read_metadata(p).num_rows for p in sorted(out.iterdir())] == [20, 20, 10]
    rows = list(open_results(out).rows())
    # other groups pack other passes: the same scores to float32 rounding
    _same_rows(rows, local_rows, tolerance=1e-4)


@pytest.mark.parametrize(
    ("refine", "recorded"),
    [
        (["--coarse", "message", "--refine-top", "1"], ("coarse_granularity", "message")),
        (["--screen", "saliency", "--refine-top", "2"], ("screen", "saliency")),
    ],
)
def test_refinement_reaches_the_workers(batch, tmp_path, refine, recorded):
    """--coarse or --screen and --refine-top build the driver's Plan, which every actor scores with."""
    refine = ["--granularity", "word", *refine]
    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    assert batch(SAMPLE / "batch_small.jsonl", local, *refine).exit_code == 0
    res = batch(SAMPLE / "batch_small.jsonl", remote, *refine, *RAY)
    assert res.exit_code == 0, res.stderr
    rows, want = pq.read_table(remote).to_pylist(), pq.read_table(local).to_pylist()
    _same_rows(rows, want, tolerance=1e-4)
    for row in rows:
        assert row["refinement"][recorded[0]] == recorded[1]
        assert row["refinement"]["refine_top_k"] == int(refine[-1])
        assert [u["refined"] for u in row["units"]] == [u["refined"] for u in want[rows.index(row)]["units"]]


def test_existing_output_is_refused_and_resume_of_a_finished_run_starts_no_ray(batch, big_input, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    res = batch(big_input, out, *RAY)
    assert res.exit_code == 2 and "exists" in res.stderr and out.read_text() == "precious\n"

    done = tmp_path / "done.jsonl"
    assert batch(SAMPLE / "batch_small.jsonl", done, *RAY).exit_code == 0
    before = done.read_text()
    res = batch(SAMPLE / "batch_small.jsonl", done, *RAY, "--resume")
    assert res.exit_code == 0, res.stderr
    assert "This run: 0 items" in res.stderr and "8 already done" in res.stderr
    assert "Ray:" not in res.stderr  # nothing left to compute: no pool started
    assert [json.loads(line)["id"] for line in done.read_text().splitlines()] == [
        json.loads(line)["id"] for line in before.splitlines()
    ]


def _map_workers() -> list:
    """The Ray Data actor processes of this test's Ray (children of its raylet, so never a
    process of anybody else's Ray on this machine)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:  # a short-lived child may be gone by now
            if "MapBatches(RowMaker)" in " ".join(p.cmdline()) or "MapBatches(RowMaker)" in p.name():
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_a_worker_killed_mid_run_loses_nothing(batch, big_input, local_rows, tmp_path):
    out = tmp_path / "out.parquet"
    store = PartialStore(out)
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            stored = sum(1 for run in store.runs() for _ in run.open()) if store.exists() else 0
            workers = _map_workers()
            if stored >= 8 and workers:  # some tasks are back, others still running
                try:
                    workers[0].kill()
                except psutil.Error:
                    continue
                killed.append(workers[0].pid)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    res = batch(big_input, out, *RAY, "--rows-per-task", "2", "--allow-errors")
    killer.join()
    assert killed, "no worker was found to kill"
    if res.exit_code != 0:  # Ray restarts the worker and retries its task; if it gave up: --resume
        assert store.exists(), res.stderr
        res = batch(big_input, out, *RAY, "--rows-per-task", "2", "--allow-errors", "--resume")
        assert res.exit_code == 0, res.stderr
    rows = pq.read_table(out).to_pylist()
    assert len({r["id"] for r in rows}) == len(rows)  # each id once
    _same_rows(rows, local_rows, tolerance=1e-4)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("FFATTR_DEBUG", None)
    return env


def test_sigterm_keeps_every_row_that_came_back_then_resume_computes_the_rest(
    batch, big_input, local_rows, qwen_dir, tmp_path
):
    out = tmp_path / "out.parquet"
    store = PartialStore(out)
    args = ["--model", qwen_dir, *METHOD]
    proc = subprocess.Popen(
        [*ffattr_command(), "batch", big_input, out, *args, *RAY, "--rows-per-task", "2"],
        stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if store.exists() and sum(1 for run in store.runs() for _ in run.open()) >= 10:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    kept = store.done_ids()
    assert len(kept) >= 4 and not out.exists()

    res = batch(big_input, out, *RAY, "--rows-per-task", "2", "--resume", "--allow-errors")
    assert res.exit_code == 0, res.stderr
    computed = int(res.stderr.split("This run: ")[1].split(" items")[0])
    assert computed == 50 - len(kept)  # only the missing ids, the bad lines retried
    rows = pq.read_table(out).to_pylist()
    _same_rows(rows, local_rows, tolerance=1e-4)


def test_without_ray_the_backend_exits_2_and_says_how_to_install(batch, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    res = batch(SAMPLE / "batch_small.jsonl", tmp_path / "out.parquet", "--backend", "ray")
    assert res.exit_code == 2
    assert "pip install 'fairforge-attr[ray]'" in res.stderr
    assert not (tmp_path / "out.parquet").exists()


def test_ray_flags_need_the_ray_backend(batch, tmp_path):
    res = batch(SAMPLE / "batch_small.jsonl", tmp_path / "out.parquet", "--num-workers", "2")
    assert res.exit_code == 2 and "--num-workers" in res.stderr and "--backend ray" in res.stderr


def test_the_package_and_the_cli_never_import_ray():
    code = (
        "import sys, fairforge_attr; from fairforge_attr import AttributionExplainer\n"
        "from typer.testing import CliRunner; from fairforge_attr.cli import app\n"
        "for args in (['--help'], ['batch', '--help'], ['merge', '--help'], ['methods']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "import fairforge_attr.batch, fairforge_attr.cli.batch\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
