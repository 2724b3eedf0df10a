"""Second GPU pass: what the first H200 run did not cover (``python -m benchmarks.gpu_checks OUT.json``).

1. float16 vs float32 for the gradient methods on the 30M model (no NaN, scores agree);
2. packed == one-by-one on CUDA for every method (left padding with the GPU attention kernels);
3. explain_batch vs a loop over explain, items/s, for gradient and perturbation methods.
Each part writes into the JSON as soon as it is done, so a timeout keeps what finished.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.methods.registry import REGISTRY

from .inputs import INPUTS, batch_items
from .models import load

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke run of this script
DTYPE = torch.float16 if DEVICE == "cuda" else torch.float32
SMOKE = DEVICE == "cpu"
N_ITEMS = 4 if SMOKE else 64
INPUT_NAMES = ("short",) if SMOKE else ("short", "long")


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


GRADIENT_OPTIONS = {
    "saliency": {},
    "input_x_gradient": {},
    "integrated_gradients": {"n_steps": 16},
    "gradient_shap": {"n_samples": 8},
    "smooth_grad": {"n_samples": 8},
    "square_grad": {"n_samples": 8},
    "var_grad": {"n_samples": 8},
}
SMALL = {
    **GRADIENT_OPTIONS,
    "lime": {"n_samples": 32},
    "kernel_shap": {"n_samples": 32},
    "sobol": {"n_samples": 4},
}


def _scores(result) -> torch.Tensor:
    return torch.tensor([a.score for a in result.attributions], dtype=torch.float64)


def gradient_fp16(report: dict) -> None:
    half, tok = load("qwen3-30m", DEVICE, DTYPE)
    full, _ = load("qwen3-30m", DEVICE, torch.float32)
    ex16 = AttributionExplainer(half, tok, max_length=1 << 16)
    ex32 = AttributionExplainer(full, tok, max_length=1 << 16)
    rows = report.setdefault("gradient_fp16", [])
    for input_name in INPUT_NAMES:
        item = INPUTS[input_name]
        for method, options in GRADIENT_OPTIONS.items():
            kw = dict(method=method, granularity=item["granularity"], seed=0, **options)
            r16 = ex16.explain(item["messages"], item["target"], **kw)
            r32 = ex32.explain(item["messages"], item["target"], **kw)
            s16, s32 = _scores(r16), _scores(r32)
            rows.append(
                {
                    "input": input_name,
                    "method": method,
                    "pearson": float(torch.corrcoef(torch.stack([s16, s32]))[0, 1]),
                    "max_abs_diff_over_max": float((s16 - s32).abs().max() / (s32.abs().max() or 1.0)),
                    "finite": bool(torch.isfinite(s16).all()),
                    "recomputed_in_float32": r16.metadata.recomputed_in_float32,
                    "convergence_delta_fp16": r16.metadata.convergence_delta,
                    "convergence_delta_fp32": r32.metadata.convergence_delta,
                }
            )
            print("fp16", rows[-1], flush=True)


def packing(report: dict) -> None:
    model, tok = load("qwen3-30m", DEVICE, torch.float32)
    ex = AttributionExplainer(model, tok, max_length=1 << 16)
    items = [(i["messages"], i["target"]) for i in batch_items(5)] + [
        (INPUTS["short"]["messages"], INPUTS["short"]["target"])
    ]
    rows = report.setdefault("packing_cuda_fp32", [])
    for method in REGISTRY:
        options = SMALL.get(method.value, {})
        packed = ex.explain_batch(items, method=method, seed=3, **options)
        worst = 0.0
        for (msgs, target), res in zip(items, packed):
            alone = ex.explain(messages=msgs, target=target, method=method, seed=3, **options)
            a, b = _scores(res), _scores(alone)
            worst = max(worst, float((a - b).abs().max() / (b.abs().max() or 1.0)))
        rows.append({"method": method.value, "max_rel_diff": worst})
        print("packing", rows[-1], flush=True)


def throughput(report: dict) -> None:
    rows = report.setdefault("batch_vs_loop", [])
    for model_name in ("demo",) if SMOKE else ("demo", "qwen3-30m"):
        model, tok = load(model_name, DEVICE, DTYPE)
        ex = AttributionExplainer(model, tok)
        items = [(i["messages"], i["target"]) for i in batch_items(N_ITEMS)]
        for method in ("saliency", "integrated_gradients", "smooth_grad", "occlusion", "lime"):
            options = SMALL.get(method, {})
            ex.explain_batch(items[:4], method=method, **options)  # warm-up
            _sync()
            t = time.perf_counter()
            for msgs, target in items:
                ex.explain(messages=msgs, target=target, method=method, **options)
            _sync()
            loop = len(items) / (time.perf_counter() - t)
            t = time.perf_counter()
            ex.explain_batch(items, method=method, **options)
            _sync()
            batch = len(items) / (time.perf_counter() - t)
            rows.append(
                {
                    "model": model_name,
                    "method": method,
                    "loop_items_s": loop,
                    "batch_items_s": batch,
                    "ratio": batch / loop,
                }
            )
            print("throughput", rows[-1], flush=True)


def main() -> None:
    out = sys.argv[1]
    report: dict = {
        "device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu (smoke)",
        "torch": torch.__version__,
    }
    for part in (packing, gradient_fp16, throughput):
        try:
            part(report)
        except Exception as exc:  # keep the other parts
            report.setdefault("errors", []).append(f"{part.__name__}: {type(exc).__name__}: {exc}")
            print("error in", part.__name__, exc, flush=True)
        with open(out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
