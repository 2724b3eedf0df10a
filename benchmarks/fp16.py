"""float16 correctness on a GPU: the same attributions in float16 and float32 (30M model)."""

from __future__ import annotations

import torch

from fairforge_attr import AttributionExplainer

from .inputs import INPUTS
from .models import load


def fp16_check(model_name: str, device) -> list[dict]:
    half, tok = load(model_name, str(device), torch.float16)
    full, _ = load(model_name, str(device), torch.float32)
    ex16 = AttributionExplainer(half, tok, max_length=1 << 16)
    ex32 = AttributionExplainer(full, tok, max_length=1 << 16)
    rows = []
    for input_name in ("short", "long"):
        item = INPUTS[input_name]
        for method, options in (("occlusion", {}), ("lime", {"n_samples": 64})):
            kw = dict(method=method, granularity=item["granularity"], **options)
            r16 = ex16.explain(item["messages"], item["target"], **kw)
            r32 = ex32.explain(item["messages"], item["target"], **kw)
            s16 = torch.tensor([a.score for a in r16.attributions], dtype=torch.float64)
            s32 = torch.tensor([a.score for a in r32.attributions], dtype=torch.float64)
            scale = float(s32.abs().max()) or 1.0
            corr = float(torch.corrcoef(torch.stack([s16, s32]))[0, 1]) if s16.numel() > 1 else 1.0
            rows.append(
                {
                    "model": model_name,
                    "input": input_name,
                    "method": method,
                    "log_p_fp16": r16.metadata.target_log_prob,
                    "log_p_fp32": r32.metadata.target_log_prob,
                    "max_abs_score_diff_over_max_score": float((s16 - s32).abs().max()) / scale,
                    "pearson": corr,
                    "nan": bool(torch.isnan(s16).any()),
                    "recomputed_in_float32": r16.metadata.recomputed_in_float32,
                }
            )
            print("fp16", rows[-1], flush=True)
    del half, full
    torch.cuda.empty_cache()
    return rows


def main() -> None:
    """``python -m benchmarks.fp16 OUT.json``: the check on the GPU, one JSON file."""
    import json
    import sys

    if not torch.cuda.is_available():
        raise SystemExit("the float16 check needs a CUDA GPU")
    rows = fp16_check("qwen3-30m", torch.device("cuda"))
    bad = [r for r in rows if r["nan"] or r["pearson"] < 0.99]
    with open(sys.argv[1], "w") as f:
        json.dump({"rows": rows, "ok": not bad}, f, indent=1)
    print("fp16 check:", "ok" if not bad else f"{len(bad)} row(s) off", flush=True)


if __name__ == "__main__":
    main()
