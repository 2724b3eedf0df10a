"""What a contrastive explanation costs: one contrastive run against two separate runs.

A contrastive item explains f = log p(target) - log p(contrast). The engine scores both
answers of every variant in the same chunks (one shared prompt prefix per chunk, one forward
per chunk), and the gradient methods put both answers' sequences in one forward+backward. The
alternative a user has without it is two runs (target, then contrast) and a subtraction. Both
are timed round-robin (A, B, A, B, ...) in one process on the same inputs; the table gives min
and median seconds and the work done: model calls, sequences, tokens through the model and
prefix tokens not recomputed (perturbation), passes (gradient).

    python -m benchmarks.contrast                    # demo + 30M Qwen3, short + long, 5 repeats
    python -m benchmarks.contrast --models demo --repeats 3
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Any

import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.errors import PromptTooLongError

from .inputs import CONTEXT, LONG, SHORT
from .models import load

# Per input: a contrast about as long as the target, and a much shorter one (the two answers
# of a chunk are padded to the longer one, so the length difference is what padding costs).
CONTRASTS = {
    "short": {
        "similar": "The sky looks blue because the water of the oceans reflects its deep blue colour "
        "up into the air much more strongly than the land does, so blue light reaches our eyes "
        "from every part of the sky.",
        "shorter": "The sky looks blue because the sea reflects its colour.",
    },
    "long": {
        "similar": "The stone tower was designed by the keeper Tomas Reyes and was built in 1986.",
        "shorter": "Tomas Reyes, in 1986.",
    },
}
CASES = {"occlusion": {}, "integrated_gradients": {"n_steps": 8}}
# The long input's first seven sentences (~440 tokens): within the demo model's 512-token context.
MEDIUM = {
    **LONG,
    "messages": [
        LONG["messages"][0],
        {
            "role": "user",
            "content": ". ".join(CONTEXT.split(". ")[:7])
            + ".\n\nQuestion: Who designed the stone tower, and when was it built?",
        },
    ],
}
CONTRASTS["medium"] = CONTRASTS["long"]


def _run(explainer: AttributionExplainer, item: dict, method: str, options: dict, contrast: str | None):
    kw = {"granularity": item["granularity"], "method": method, **options}
    return explainer.explain(item["messages"], item["target"], contrast=contrast, **kw)


def measure(explainer: AttributionExplainer, item: dict, contrast: str, method: str, repeats: int) -> dict:
    """Round-robin timing of one contrastive run (A) and two separate runs (B)."""
    options = CASES[method]
    stats = explainer.engine.stats

    def contrastive() -> dict[str, Any]:
        r = _run(explainer, item, method, options, contrast)
        return {"forward": r.metadata.n_forward, "sequences": r.metadata.n_sequences, "f": r.objective_value}

    def separate() -> dict[str, Any]:
        a = _run(explainer, item, method, options, None)
        b = _run(explainer, {**item, "target": contrast}, method, options, None)
        return {
            "forward": a.metadata.n_forward + b.metadata.n_forward,
            "sequences": a.metadata.n_sequences + b.metadata.n_sequences,
            "f": a.metadata.target_log_prob - b.metadata.target_log_prob,
        }

    runs: dict[str, dict[str, Any]] = {}
    contrastive(), separate()  # warm-up
    for _ in range(repeats):
        for name, fn in (("contrastive", contrastive), ("two runs", separate)):
            stats.reset()
            start = time.perf_counter()
            work = fn()
            seconds = time.perf_counter() - start
            entry = runs.setdefault(name, {"seconds": [], **work})
            entry["seconds"].append(seconds)
            entry.update(calls=stats.calls, tokens=stats.tokens, prefix_saved=stats.prefix_tokens_saved)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["demo", "qwen3-30m"])
    parser.add_argument("--inputs", nargs="+", default=["short", "long"])
    parser.add_argument("--methods", nargs="+", default=list(CASES))
    parser.add_argument("--contrasts", nargs="+", default=["similar", "shorter"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    items = {"short": SHORT, "medium": MEDIUM, "long": LONG}
    print(
        "| model | input | contrast | method | run | min s | median s | forward | sequences | model calls "
        "| tokens | prefix tokens reused | f |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        model, tokenizer = load(name, "cpu", torch.float32)
        explainer = AttributionExplainer(model, tokenizer)
        for inp, kind, method in itertools.product(args.inputs, args.contrasts, args.methods):
            try:
                runs = measure(explainer, items[inp], CONTRASTS[inp][kind], method, args.repeats)
            except PromptTooLongError:  # the demo model's context is 512 tokens
                continue
            for run, r in runs.items():
                s = r["seconds"]
                calls = r["calls"] if method == "occlusion" else "-"
                tokens = r["tokens"] if method == "occlusion" else "-"
                saved = r["prefix_saved"] if method == "occlusion" else "-"
                print(
                    f"| {name} | {inp} | {kind} | {method} | {run} | {min(s):.3f} | {statistics.median(s):.3f} | "
                    f"{r['forward']} | {r['sequences']} | {calls} | {tokens} | {saved} | {r['f']:.3f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
