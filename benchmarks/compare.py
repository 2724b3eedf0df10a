"""fairforge_attr beside interpreto, captum and inseq, plus estimator accuracy (issue 11).

    python -m benchmarks.compare            # full CPU run (see RESULTS.md for its length)
    python -m benchmarks.compare --quick    # CI: demo model, tiny input, every part once

For each (model, input, method) every implementation that has the method runs with the same
prompt, target and budget, interleaved round-robin (A, B, C, A, B, C, ...) so drifting machine
load hits them alike; min and median seconds are kept with the forward calls, sequences and
tokens each pushed through the model. Perturbation methods also report accuracy per cost: the
top-k agreement of their scores with exhaustive occlusion of the same units (ours), beside the
tokens and seconds they spent. Then the estimator-accuracy runs of ``accuracy.py``.

The results go to ``--json`` and, between markers, into ``--md`` (benchmarks/RESULTS.md):
``make bench`` (benchmarks.run) keeps that section when it rewrites the rest.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from . import peers
from .compare_report import markdown, write_section
from .inputs import INPUTS
from .models import load
from .perturbation import Subject, captum, ours

HERE = Path(__file__).parent
PERTURBATION = ("occlusion", "lime", "kernel_shap", "sobol")
GRADIENT = ("saliency", "integrated_gradients", "gradient_shap", "smooth_grad", "square_grad", "var_grad")

FULL = {
    "cases": [  # (model, input, methods)
        ["qwen3-30m", "short", list(PERTURBATION + GRADIENT)],
        # the long input on the demo model: on the shared 2-core CPU the 30M model's run of
        # ten methods x four tools over 2,151-token sequences takes hours (interpreto
        # differentiates each target token on its own)
        ["demo", "rag", list(PERTURBATION + GRADIENT)],
    ],
    "options": {"lime": 32, "kernel_shap": 32, "sobol": 2, "steps": 8},
    "repeats": 2,
    "inseq_inputs": ["short"],  # one pass per target token and variant: hours on the long input
    "inseq_methods": ["occlusion", "saliency"],
    "once_over_s": 300.0,  # an implementation slower than this runs once
    "sweep": {"model": "demo", "input": "rag", "lime": [32, 64, 128], "kernel_shap": [32, 64, 128]},
    "top_k": 10,
    "accuracy_model": "demo",
}
QUICK = {
    "cases": [["demo", "tiny", ["occlusion", "lime", "kernel_shap", "sobol", "integrated_gradients"]]],
    "options": {"lime": 8, "kernel_shap": 8, "sobol": 2, "steps": 2},
    "repeats": 1,
    "inseq_inputs": [],
    "inseq_methods": [],
    "once_over_s": 60.0,
    "sweep": {"model": "demo", "input": "tiny", "lime": [8], "kernel_shap": [8]},
    "top_k": 3,
    "accuracy_model": "demo",
}


def options_for(method: str, cfg: dict) -> dict[str, Any]:
    o = cfg["options"]
    if method in ("lime", "kernel_shap", "sobol"):
        return {"n_samples": o[method]}
    if method == "integrated_gradients":
        return {"n_steps": o["steps"]}
    if method in ("gradient_shap", "smooth_grad", "square_grad", "var_grad"):
        return {"n_samples": o["steps"]}
    return {}


def implementations(subject: Subject, input_name: str, method: str, options: dict, cfg: dict):
    """name -> (run, counts) for everyone who has the method; name -> reason for who is out."""
    impls: dict[str, tuple] = {}
    skipped: dict[str, str] = {}
    impls["ours"] = ours(subject, method, options)
    if method in ("occlusion", "lime", "kernel_shap"):
        impls["captum"] = captum(subject, method, options, forward_in_tokens=False)
    why = peers.missing("interpreto")
    if why is None:
        impls["interpreto"] = peers.interpreto(subject, method, options)
    else:
        skipped["interpreto"] = why
    why = peers.missing("inseq")
    if why is not None:
        skipped["inseq"] = why
    elif method not in peers.INSEQ:
        skipped["inseq"] = f"inseq has no {method}"
    elif input_name not in cfg["inseq_inputs"] or method not in cfg["inseq_methods"]:
        skipped["inseq"] = (
            "not run here: inseq runs one pass per target token and variant, so this run gives it "
            f"only {', '.join(cfg['inseq_methods']) or 'nothing'} on {', '.join(cfg['inseq_inputs']) or 'no input'}"
        )
    else:
        impls["inseq"] = peers.inseq(subject, method, options)
    return impls, skipped


def round_robin(impls: dict[str, tuple], repeats: int, once_over_s: float) -> tuple[dict, dict]:
    """Interleaved runs; returns (timings, last outputs). Failures are recorded, not raised."""
    times: dict[str, list[float]] = {name: [] for name in impls}
    outputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for rep in range(repeats):
        for name, (run, _) in impls.items():
            if name in errors or (rep and times[name] and times[name][0] > once_over_s):
                continue
            try:
                t0 = time.perf_counter()
                outputs[name] = run()
                times[name].append(time.perf_counter() - t0)
            except Exception as exc:  # a broken peer must not stop the benchmark
                errors[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
                traceback.print_exc(file=sys.stderr)
    timed = {}
    for name, (_, counts) in impls.items():
        if name in errors:
            timed[name] = {"error": errors[name]}
            continue
        c = counts() if callable(counts) else counts
        t = times[name]
        timed[name] = {
            "min_s": min(t),
            "median_s": statistics.median(t),
            "runs": [round(x, 3) for x in t],
            **c,
        }
    return timed, outputs


def unit_scores(name: str, out: Any, subject: Subject) -> torch.Tensor | None:
    if out is None:
        return None
    if name == "ours":
        return torch.tensor([a.score for a in out.attributions], dtype=torch.float64)
    if name == "captum":
        return torch.as_tensor(out.seq_attr, dtype=torch.float64).reshape(-1)
    if name == "interpreto":
        return peers.interpreto_unit_scores(out, subject)
    return None


def reference_occlusion(subject: Subject) -> torch.Tensor:
    result = subject.explainer.explain(
        subject.messages, subject.target, method="occlusion", granularity=subject.granularity
    )
    return torch.tensor([a.score for a in result.attributions], dtype=torch.float64)


def case(subject, model_name, input_name, method, cfg, reference) -> dict[str, Any]:
    options = options_for(method, cfg)
    impls, skipped = implementations(subject, input_name, method, options, cfg)
    timed, outputs = round_robin(impls, cfg["repeats"], cfg["once_over_s"])
    row: dict[str, Any] = {
        "model": model_name,
        "input": input_name,
        "method": method,
        "options": options,
        "n_units": subject.encoded.n_units,
        "seq_len": subject.encoded.seq_len,
        "n_target": subject.encoded.n_target_tokens,
        "impls": timed,
        "skipped": skipped,
    }
    if method in PERTURBATION:
        for name, out in outputs.items():
            scores = unit_scores(name, out, subject)
            if scores is not None and scores.numel() == reference.numel():
                timed[name]["top_k_vs_occlusion"] = peers.top_k_agreement(scores, reference, cfg["top_k"])
    ours_s = timed.get("ours", {}).get("median_s")
    for name, t in timed.items():
        if name != "ours" and "median_s" in t and ours_s:
            t["over_ours"] = t["median_s"] / ours_s
    secs = ", ".join(f"{k} {v.get('median_s', float('nan')):.2f}s" for k, v in timed.items())
    print(f"  {model_name}/{input_name}/{method}: {secs}", flush=True)
    return row


def sweep(subject: Subject, cfg: dict, reference: torch.Tensor) -> list[dict[str, Any]]:
    """Accuracy per cost: top-k agreement with exhaustive occlusion against tokens and seconds."""
    engine = subject.explainer.engine
    rows = []
    plans = [("lime", {"n_samples": n}) for n in cfg["sweep"]["lime"]]
    plans += [("lime", {"n_samples": n, "solver": "lasso"}) for n in cfg["sweep"]["lime"]]
    plans += [("kernel_shap", {"n_samples": n}) for n in cfg["sweep"]["kernel_shap"]]
    plans.append(("occlusion", {}))
    for method, options in plans:
        engine.stats.reset()
        t0 = time.perf_counter()
        result = subject.explainer.explain(
            subject.messages, subject.target, method=method, granularity=subject.granularity, **options
        )
        scores = torch.tensor([a.score for a in result.attributions], dtype=torch.float64)
        rows.append(
            {
                "method": method,
                "options": options,
                "seconds": time.perf_counter() - t0,
                "tokens": engine.stats.tokens,
                "sequences": engine.stats.sequences,
                "top_k_vs_occlusion": peers.top_k_agreement(scores, reference, cfg["top_k"]),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI mode: demo model, tiny input, one run each")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-accuracy", action="store_true", help="skip the estimator-accuracy runs")
    p.add_argument("--only-accuracy", action="store_true", help="only the estimator-accuracy runs")
    p.add_argument(
        "--case", nargs=2, action="append", metavar=("MODEL", "INPUT"), help="instead of the preset's cases"
    )
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--methods", nargs="+", default=None, help="with --case: these methods only")
    p.add_argument("--no-inseq", action="store_true", help="leave inseq out (hours on a loaded CPU)")
    p.add_argument("--units", type=int, nargs="+", default=None, help="accuracy: units of the value tables")
    p.add_argument("--seeds", type=int, default=None, help="accuracy: seeds per estimator")
    p.add_argument("--json", type=Path, default=HERE / "results_peers_cpu.json")
    p.add_argument("--md", type=Path, default=HERE / "RESULTS.md")
    args = p.parse_args(argv)
    cfg = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.case:
        cfg["cases"] = [[m, i, args.methods or list(PERTURBATION + GRADIENT)] for m, i in args.case]
        cfg["sweep"]["model"], cfg["sweep"]["input"] = args.case[-1]
    if args.repeats:
        cfg["repeats"] = args.repeats
    if args.no_inseq:
        cfg["inseq_methods"] = []
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"meta": _meta(args, cfg), "cases": [], "sweep": [], "accuracy": None}
    if (args.only_accuracy or args.no_accuracy) and args.json.exists():  # keep the other half
        before = json.loads(args.json.read_text())
        keep = ("cases", "sweep") if args.only_accuracy else ("accuracy",)
        result.update({k: before.get(k) for k in keep})
        result["meta"]["kept_from_earlier_run"] = {k: before["meta"]["date"] for k in keep}
    models: dict[str, tuple] = {}

    def model(name: str):
        if name not in models:
            models[name] = load(name, "cpu", torch.float32)
        return models[name]

    if not args.only_accuracy:
        for model_name, input_name, methods in cfg["cases"]:
            if model_name not in models:  # first calls of a model (and of interpreto) untimed
                warm = Subject.make(*model(model_name), INPUTS["tiny"], None)
                for run, _ in implementations(
                    warm, "tiny", "lime", {"n_samples": 4}, {**cfg, "inseq_inputs": []}
                )[0].values():
                    run()
            subject = Subject.make(*model(model_name), INPUTS[input_name], None)
            reference = reference_occlusion(subject)
            for method in methods:
                result["cases"].append(case(subject, model_name, input_name, method, cfg, reference))
                args.json.write_text(json.dumps(result, indent=1, default=str))
            if [model_name, input_name] == [cfg["sweep"]["model"], cfg["sweep"]["input"]]:
                result["sweep"] = sweep(subject, cfg, reference)
    if not args.no_accuracy:
        from .accuracy import run_accuracy

        result["accuracy"] = run_accuracy(
            *model(cfg["accuracy_model"]), quick=args.quick, units=args.units, seeds=args.seeds
        )
    result["meta"]["load_after"] = _load()
    args.json.write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    write_section(args.md, md)
    print(md)
    print(f"\nwrote {args.json} and the peers section of {args.md}")
    return result


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "unknown"


def _meta(args, cfg) -> dict[str, Any]:
    import captum
    import transformers

    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "captum": captum.__version__,
    }
    for pkg in ("interpreto", "inseq", "shap"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:  # not installed: recorded as such
            versions[pkg] = None
    return {
        "mode": "quick" if args.quick else "full",
        "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": _load(),
        "versions": versions,
        "config": cfg,
    }


if __name__ == "__main__":
    main()
