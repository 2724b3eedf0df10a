"""Batch throughput and memory scaling.

- throughput: ``explain_batch`` (cross-item packing) against a Python loop over ``explain``,
  on the same short items, same method; items per second of each;
- memory vs input lines: the peak of ``explain_batch`` on n and 4n items (should not grow);
- memory vs samples / budget: one item's peak at n_samples and 4 x n_samples (should not grow),
  and at two token budgets (should follow the budget).
"""

from __future__ import annotations

from typing import Any

from fairforge_attr import AttributionExplainer

from .inputs import SHORT, batch_items
from .measure import Timing, measure_once


def batch_throughput(model, tokenizer, device, n_items: int, method: str, options: dict, repeats: int):
    items = batch_items(n_items)
    explainer = AttributionExplainer(model, tokenizer)

    def loop():
        for item in items:
            explainer.explain(item["messages"], item["target"], method=method, **options)

    def batch():
        explainer.explain_batch(items, method=method, **options)

    timings = {"loop": Timing(), "batch": Timing()}
    loop()  # warm-up (also of the tokenizer's caches)
    for rep in range(repeats):
        for name, fn in (("loop", loop), ("batch", batch)):
            measure_once(fn, device, timings[name], memory=rep == 0)
    out: dict[str, Any] = {"n_items": n_items, "method": method, "options": options}
    for name, t in timings.items():
        out[name] = {**t.to_json(), "items_per_s": n_items / t.median}
    out["batch_over_loop"] = out["batch"]["items_per_s"] / out["loop"]["items_per_s"]
    return out


def memory_scaling(model, tokenizer, device, n_items: int, n_samples: int, budget: int):
    """Peaks (MB) of: occlusion over a batch of n and 4n items; one LIME item at n_samples
    and 4 x n_samples (both fill several chunks); and at a quarter of the token budget."""

    def peak(fn) -> float | None:
        t = Timing()
        measure_once(fn, device, t, memory=True)
        return None if t.peak_bytes is None else round(t.peak_bytes / 2**20, 1)

    explainer = AttributionExplainer(model, tokenizer, token_budget=budget)
    small = AttributionExplainer(model, tokenizer, token_budget=budget // 4)

    def one(ex, samples):
        return lambda: ex.explain(SHORT["messages"], SHORT["target"], method="lime", n_samples=samples)

    def many(n):
        return lambda: explainer.explain_batch(batch_items(n), method="occlusion")

    one(explainer, n_samples)()  # warm-up
    return {
        "token_budget": budget,
        f"batch_{n_items}_items_mb": peak(many(n_items)),
        f"batch_{4 * n_items}_items_mb": peak(many(4 * n_items)),
        f"item_{n_samples}_samples_mb": peak(one(explainer, n_samples)),
        f"item_{4 * n_samples}_samples_mb": peak(one(explainer, 4 * n_samples)),
        f"item_{4 * n_samples}_samples_budget_{budget // 4}_mb": peak(one(small, 4 * n_samples)),
    }
