"""Token budget sweep: throughput and peak memory of the roofline and of the engine per
budget, on LIME's variant sequences. Used to pick ``DEFAULT_TOKEN_BUDGET`` per device."""

from __future__ import annotations

from .measure import Timing, measure_once
from .perturbation import Subject, ours, roofline

CPU_BUDGETS = (1024, 2048, 4096, 8192, 16384)
GPU_BUDGETS = (8192, 16384, 32768, 65536, 131072)


def sweep(model, tokenizer, model_name: str, items: dict, device, repeats: int, n_samples: int) -> list[dict]:
    budgets = GPU_BUDGETS if device.type == "cuda" else CPU_BUDGETS
    rows = []
    for input_name, item in items.items():
        for budget in budgets:
            subject = Subject.make(model, tokenizer, item, budget)
            options = {"n_samples": n_samples}
            roof_run, roof_counts = roofline(subject, "lime", options)
            ours_run, _ = ours(subject, "lime", options)
            t_roof, t_ours = Timing(), Timing()
            roof_run(), ours_run()  # warm-up
            for rep in range(repeats):
                measure_once(roof_run, device, t_roof, memory=rep == 0)
                measure_once(ours_run, device, t_ours, memory=rep == 0)
            tokens = roof_counts["tokens"]
            rows.append(
                {
                    "model": model_name,
                    "input": input_name,
                    "budget": budget,
                    "tokens": tokens,
                    "roofline_tokens_per_s": tokens / t_roof.median,
                    "ours_tokens_per_s": tokens / t_ours.median,
                    "roofline_peak_mb": None if t_roof.peak_bytes is None else t_roof.peak_bytes / 2**20,
                    "ours_peak_mb": None if t_ours.peak_bytes is None else t_ours.peak_bytes / 2**20,
                }
            )
            print(
                f"tune {model_name}/{input_name} budget {budget}: roofline "
                f"{rows[-1]['roofline_tokens_per_s']:.0f} tok/s, ours {rows[-1]['ours_tokens_per_s']:.0f} tok/s",
                flush=True,
            )
    return rows
