"""Golden scores: every method x granularity on the built-in demo model, written to JSON.

``tests/golden/test_golden.py`` recomputes these cases and asserts that every score, every
per-target-token score, f(x), the convergence delta and the work counts (forward passes,
backward passes, sequences) are *bit-identical* to ``scores.json``. It guards refactors: moving
code around must not change a single float.

Regenerate (``python -m tests.golden.make_golden --update``) only when a change elsewhere
changes the numbers on purpose, e.g. a new estimator, another default option, a different
quadrature rule or sampler. Name that change, and say that the golden file was regenerated
for it, in the commit message. A refactor that makes this test fail is a bug in the refactor,
not a reason to regenerate.

Without ``--update`` the script prints whether the current code still matches the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

GOLDEN = Path(__file__).with_name("scores.json")
MESSAGES = [
    {"role": "system", "content": "Answer in one sentence."},
    {"role": "user", "content": "What is the capital of France? Tell me, please."},
]
TARGET = "The capital of France is Paris."
# Two more items for explain_batch: items of other lengths share passes with the first.
BATCH_ITEMS = [
    (MESSAGES, TARGET),
    ([{"role": "user", "content": "What is the capital of Italy?"}], "The capital of Italy is Rome."),
    ([{"role": "user", "content": "Name a large animal."}], "An elephant is large."),
]
SEED = 7
GRANULARITIES = ("token", "word", "sentence")
# Small counts keep the whole file quick to recompute (seconds on one CPU thread).
OPTIONS: dict[str, dict[str, Any]] = {
    "occlusion": {},
    "lime": {"n_samples": 24},
    "kernel_shap": {"n_samples": 24},
    "sobol": {"n_samples": 4},
    "saliency": {},
    "input_x_gradient": {},
    "integrated_gradients": {"n_steps": 6},
    "gradient_shap": {"n_samples": 5, "stdev": 0.1},
    "smooth_grad": {"n_samples": 4},
    "square_grad": {"n_samples": 4},
    "var_grad": {"n_samples": 4},
}
# Options besides the defaults that take other code paths.
EXTRA_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("occlusion", "word", {"baseline": "hide"}),
    ("lime", "word", {"n_samples": 24, "baseline": "eos"}),
    ("integrated_gradients", "word", {"n_steps": 5, "baseline": "zero", "integration": "riemann_trapezoid"}),
    ("gradient_shap", "token", {"n_samples": 3, "baseline": "zero"}),
]


def _record(result: Any) -> dict[str, Any]:
    m = result.metadata
    ptt = result.per_target_token
    return {
        "scores": [a.score for a in result.attributions],
        "normalized": [a.normalized_score for a in result.attributions],
        "units": [a.text for a in result.attributions],
        "per_target_token": None if ptt is None else ptt.scores,
        "target_log_prob": m.target_log_prob,
        "convergence_delta": m.convergence_delta,
        "n_forward": m.n_forward,
        "n_backward": m.n_backward,
        "n_sequences": m.n_sequences,
        "params": m.params,
        "warnings": m.warnings,
    }


def compute() -> dict[str, Any]:
    """Every golden case, computed now with the current code on one CPU thread."""
    from fairforge_attr import AttributionExplainer
    from fairforge_attr.models import load_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # another thread count may sum in another order
    try:
        explainer = AttributionExplainer(*load_model(None, device="cpu", dtype="float32"))
        cases: dict[str, Any] = {}
        for method, options in OPTIONS.items():
            for gran in GRANULARITIES:
                # per-target-token on word units: the matrix path of every method
                ptt = gran == "word"
                r = explainer.explain(
                    MESSAGES,
                    TARGET,
                    method=method,
                    granularity=gran,
                    seed=SEED,
                    per_target_token=ptt,
                    **options,
                )
                cases[f"{method}/{gran}"] = _record(r)
            batch = explainer.explain_batch(
                BATCH_ITEMS, method=method, granularity="word", seed=SEED, **options
            )
            cases[f"{method}/batch"] = [_record(r) for r in batch]
        for method, gran, options in EXTRA_CASES:
            r = explainer.explain(MESSAGES, TARGET, method=method, granularity=gran, seed=SEED, **options)
            cases[f"{method}/{gran}/{json.dumps(options, sort_keys=True)}"] = _record(r)
    finally:
        torch.set_num_threads(before)
    return {"seed": SEED, "messages": MESSAGES, "target": TARGET, "cases": cases}


def dumps(golden: dict[str, Any]) -> str:
    # json writes floats with repr(), the shortest text that reads back as the same double
    return json.dumps(golden, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--update", action="store_true", help=f"rewrite {GOLDEN.name} (see above when)")
    args = parser.parse_args(argv)
    golden = compute()
    stored = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {"cases": {}}
    changed = [
        k for k in golden["cases"] if k in stored["cases"] and stored["cases"][k] != golden["cases"][k]
    ]
    added = [k for k in golden["cases"] if k not in stored["cases"]]
    removed = [k for k in stored["cases"] if k not in golden["cases"]]
    for label, keys in (("changed", changed), ("new", added), ("gone", removed)):
        if keys:
            print(f"{len(keys)} case(s) {label}: {', '.join(keys)}")
    if args.update:
        GOLDEN.write_text(dumps(golden), encoding="utf-8")
        print(f"wrote {GOLDEN} ({len(golden['cases'])} cases); name the change that moved them in the commit")
        return 0
    if not (changed or added or removed):
        print("identical")
    return 1 if changed or added or removed else 0


if __name__ == "__main__":
    sys.exit(main())
