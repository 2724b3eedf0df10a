"""Items/s of ``ffattr batch --backend ray`` against the local backend (issue 12's numbers).

The same JSONL of short chats, the same method and seed, through ``BatchJob`` (local: one
process, torch's default threads) and ``RayBatchJob`` (a local Ray started once, a pool of
workers with one CPU and one torch thread each), timed round-robin (local, ray, local, ray, ...)
from the start of the job to OUT written: the Ray runs include starting the pool and loading
the model in every worker, as a real run does. Reports min and median seconds, items/s, and the
work done (items, scored sequences, forward passes), and checks the rows are the same.

    python -m benchmarks.ray_backend --json /tmp/ray_bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.batch import BatchJob
from fairforge_attr.batch.ray_backend import ModelSpec, RayBatchJob, RayOptions

from .inputs import batch_items
from .models import load


def _model_folder(name: str, root: Path) -> str | None:
    """A folder the workers can load (None: the built-in demo model)."""
    if name == "demo":
        return None
    model, tokenizer = load(name, "cpu", torch.float32)
    folder = root / name
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _run(job: BatchJob, src: Path) -> float:
    start = time.perf_counter()
    job.start_over()
    job.run(src)
    job.finish()
    return time.perf_counter() - start


def bench_model(
    name: str, n_items: int, workers: int, repeats: int, method: str, root: Path
) -> dict[str, Any]:
    folder = _model_folder(name, root)
    src = root / f"{name}.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"q{i}", **item}) + "\n" for i, item in enumerate(batch_items(n_items)))
    )
    explainer = AttributionExplainer(folder, device="cpu")  # loaded once, outside the timing
    competitors = {
        "local": lambda out: BatchJob(explainer, out, method=method, seed=0),
        f"ray x{workers}": lambda out: RayBatchJob(
            ModelSpec(folder, device="cpu"), out, ray=RayOptions(num_workers=workers), method=method, seed=0
        ),
        f"ray x{workers}, tasks of 8": lambda out: RayBatchJob(
            ModelSpec(folder, device="cpu"),
            out,
            ray=RayOptions(num_workers=workers, rows_per_task=8),
            method=method,
            seed=0,
        ),
    }
    seconds: dict[str, list[float]] = {k: [] for k in competitors}
    outputs: dict[str, list[dict]] = {}
    for rep in range(repeats):
        for label, make in competitors.items():
            out = root / f"{name}-{rep}-{len(outputs)}.parquet"
            seconds[label].append(_run(make(out), src))
            outputs[label] = pq.read_table(out).to_pylist()
            print(f"{name} {label} rep {rep}: {seconds[label][-1]:.1f}s", flush=True)
    reference = outputs["local"]
    result: dict[str, Any] = {
        "model": name,
        "method": method,
        "items": n_items,
        "sequences": sum(r["n_sequences"] for r in reference),
        "forward_passes_local": sum(r["n_forward"] for r in reference),
    }
    for label, times in seconds.items():
        rows = outputs[label]
        diff = max(
            abs(a["score"] - b["score"])
            for x, y in zip(rows, reference)
            for a, b in zip(x["units"], y["units"])
        )
        result[label] = {
            "min_s": round(min(times), 2),
            "median_s": round(statistics.median(times), 2),
            "items_per_s": round(n_items / statistics.median(times), 2),
            "forward_passes": sum(r["n_forward"] for r in rows),
            "max_score_diff_vs_local": diff,
        }
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["demo", "qwen3-30m"])
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--method", default="occlusion")
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    results = {
        "ray_init_s": round(ray_start, 1),
        "torch_threads_local": torch.get_num_threads(),
        "models": [],
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.models:
                results["models"].append(
                    bench_model(name, args.items, args.workers, args.repeats, args.method, Path(tmp))
                )
    finally:
        ray.shutdown()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
