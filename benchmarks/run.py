"""fairforge_attr against captum and the roofline, in one process (``make bench``).

    python -m benchmarks.run                 # the full run (by hand; long on a CPU)
    python -m benchmarks.run --quick         # CI: checks that every part runs (< 1 min)
    python -m benchmarks.run --device cuda   # float16 by default there
    python -m benchmarks.run --tune          # also sweep the token budget

Every implementation gets the same model, the same input, the same target and the same
number of samples; see perturbation.py and gradient.py for what each one runs. Results go to
``--json`` and ``--md`` and a table is printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import traceback
from pathlib import Path
from typing import Any

import torch

from . import batch as batch_mod
from . import gradient, perturbation, report
from .compare_report import kept_section
from .inputs import INPUTS
from .measure import Timing, measure_once, track_live_memory
from .models import MODELS, load, n_parameters
from .tune import sweep

HERE = Path(__file__).parent

FULL = {
    "models": list(MODELS),
    "inputs": ["short", "long"],
    "samples": {  # n_samples per method and input (occlusion: every unit, always)
        "short": {"lime": 32, "kernel_shap": 32, "sobol": 4},
        "long": {"lime": 32, "kernel_shap": 32, "sobol": 2},
    },
    "ig_steps": 8,
    "repeats": 2,
    "captum_seq_repeats": 1,
    "captum_default_repeats": 1,
    # captum's token-by-token default, run in full only here; elsewhere one variant is timed
    # and scaled by the variants captum evaluates (hours otherwise; see perturbation.py)
    "captum_default_full": [["short", "occlusion"]],
    # captum's LayerIntegratedGradients runs n_target x n_steps forward+backward passes over
    # the whole sequence: on a CPU, hours for the 30M model on the long input.
    "skip_captum_lig_cpu": [["qwen3-30m", "long"]],
    "batch": {"n_items": 64, "method": "occlusion", "options": {}, "repeats": 2},
    "memory": {"n_items": 16, "n_samples": 64},
}
QUICK = {
    "models": ["demo"],
    "inputs": ["tiny"],
    "samples": {"tiny": {"lime": 8, "kernel_shap": 8, "sobol": 2}},
    "ig_steps": 4,
    "repeats": 1,
    "captum_seq_repeats": 1,
    "captum_default_repeats": 1,
    "captum_default_full": [["tiny", m] for m in ("occlusion", "lime", "kernel_shap")],
    "skip_captum_lig_cpu": [],
    "batch": {"n_items": 8, "method": "occlusion", "options": {}, "repeats": 1},
    "memory": {"n_items": 4, "n_samples": 8},
}


def _options(cfg: dict, input_name: str, method: str) -> dict:
    n = cfg["samples"][input_name].get(method)
    return {} if n is None else {"n_samples": n}


def _time_impls(impls: dict[str, tuple], device, repeats: dict[str, int]) -> dict[str, dict]:
    """Interleaved repeats (so drifting machine load hits every implementation alike); the
    first run of each also records its peak memory. Failures are recorded, not raised."""
    timings = {name: Timing() for name in impls}
    errors: dict[str, str] = {}
    for rep in range(max(repeats.values())):
        for name, (run, _) in impls.items():
            if rep >= repeats[name] or name in errors:
                continue
            try:
                measure_once(run, device, timings[name], memory=rep == 0)
            except Exception as exc:  # a broken baseline must not stop the benchmark
                errors[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc(file=sys.stderr)
    out = {}
    for name, (_, counts) in impls.items():
        if name in errors:
            out[name] = {"error": errors[name]}
        else:
            timings[name].counts = counts() if callable(counts) else counts
            out[name] = timings[name].to_json()
    return out


def perturbation_case(subject, model_name, input_name, method, cfg, args) -> dict[str, Any]:
    options = _options(cfg, input_name, method)
    impls = {
        "roofline": perturbation.roofline(subject, method, options),
        "ours": perturbation.ours(subject, method, options),
    }
    repeats = {"roofline": cfg["repeats"], "ours": cfg["repeats"]}
    if method in perturbation.CAPTUM_METHODS and not args.no_captum:
        impls["captum_seq"] = perturbation.captum(subject, method, options, forward_in_tokens=False)
        repeats["captum_seq"] = cfg["captum_seq_repeats"]
        if args.captum_default_methods is None or method in args.captum_default_methods:
            if [input_name, method] in cfg["captum_default_full"]:
                impls["captum_default"] = perturbation.captum(
                    subject, method, options, forward_in_tokens=True
                )
                repeats["captum_default"] = cfg["captum_default_repeats"]
            elif (model_name, input_name) not in ONE_VARIANT:
                impls["captum_default"] = perturbation.captum_default_one_variant(subject, method)
                repeats["captum_default"] = cfg["captum_default_repeats"]
    if args.warm_up:  # the first case of each (model, input) warms the model up
        args.warm_up = False
        for name in ("roofline", "ours"):
            impls[name][0]()
    case = _case(subject, model_name, input_name, method, options, impls, repeats)
    default, seq = case["impls"].get("captum_default"), case["impls"].get("captum_seq", {})
    key = (model_name, input_name)
    if (
        default is not None
        and "seconds" in default
        and [input_name, method] not in cfg["captum_default_full"]
    ):
        ONE_VARIANT[key] = {k: default[k] for k in ("seconds", "cpu_seconds", "forward", "tokens")}
    if "forward" in seq and key in ONE_VARIANT and [input_name, method] not in cfg["captum_default_full"]:
        # one variant measured (once per model and input): scale to every variant captum evaluates
        n, one = seq["forward"], ONE_VARIANT[key]
        case["impls"]["captum_default"] = {
            **{k: v * n for k, v in one.items()},
            "runs": [round(one["seconds"] * n, 3)],
            "estimated_from_one_variant": True,
            "variants": n,
            "sequences": n,
        }
        case["ratios"] = report.ratios(case["impls"])
    return _say(case)


# (model, input) -> captum's token-by-token cost of one variant (the same for every method)
ONE_VARIANT: dict[tuple[str, str], dict[str, float]] = {}


def gradient_case(subject, model_name, input_name, method, cfg, args) -> dict[str, Any]:
    options, n_seq = gradient.GRADIENT_CASES[method](cfg["ig_steps"])
    mine = perturbation.ours(subject, method, options)
    impls = {"roofline": gradient.roofline_backward(subject, n_seq), "ours": mine}
    repeats = {"roofline": cfg["repeats"], "ours": cfg["repeats"]}
    skip = subject.device.type == "cpu" and [model_name, input_name] in cfg["skip_captum_lig_cpu"]
    if method == "integrated_gradients" and not args.no_captum and not skip:
        impls["captum_lig"] = gradient.captum_lig(subject, cfg["ig_steps"])
        repeats["captum_lig"] = 1
    for name in ("roofline", "ours"):  # the backward pass has its own first-call costs
        impls[name][0]()
    return _say(_case(subject, model_name, input_name, method, options, impls, repeats))


def _case(subject, model_name, input_name, method, options, impls, repeats) -> dict[str, Any]:
    enc = subject.encoded
    timed = _time_impls(impls, subject.device, repeats)
    case = {
        "model": model_name,
        "input": input_name,
        "method": method,
        "samples": options.get("n_samples", options.get("n_steps")),
        "options": options,
        "n_units": enc.n_units,
        "seq_len": enc.seq_len,
        "n_target": enc.n_target_tokens,
        "shared_prefix": enc.first_attributable_token(),
        "impls": timed,
        "ratios": report.ratios(timed),
    }
    return case


def _say(case: dict[str, Any]) -> dict[str, Any]:
    secs = ", ".join(f"{k} {v.get('seconds', float('nan')):.3f}s" for k, v in case["impls"].items())
    print(f"  {case['model']}/{case['input']}/{case['method']}: {secs}", flush=True)
    return case


def _meta(args, cfg, device, dtype) -> dict[str, Any]:
    import captum
    import transformers

    mem = (
        "cuda max_memory_allocated delta"
        if device.type == "cuda"
        else "peak RSS delta, 1 ms sampler, buffers >= 128 KiB unmapped when freed (benchmarks/measure.py)"
    )
    return {
        "mode": "quick" if args.quick else "full",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "captum": captum.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "repeats": cfg["repeats"],
        "captum_seq_repeats": cfg["captum_seq_repeats"],
        "captum_default_repeats": cfg["captum_default_repeats"],
        "memory_method": mem,
        "config": cfg,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI mode: demo model, tiny input, 1 run")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--dtype", default=None, help="default: float16 on cuda, float32 on cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=None)
    p.add_argument("--inputs", nargs="+", choices=sorted(INPUTS), default=None)
    p.add_argument("--methods", nargs="+", default=None, help="default: every available method")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--no-captum", action="store_true")
    p.add_argument(
        "--captum-default-methods",
        nargs="*",
        default=None,
        help="methods to run captum's token-by-token default for (default: all; none: skip)",
    )
    p.add_argument("--no-batch", action="store_true", help="skip the batch and memory runs")
    p.add_argument("--resume", action="store_true", help="keep the cases already in --json, run the rest")
    p.add_argument(
        "--memory-only", action="store_true", help="only the memory runs, merged into --json if it exists"
    )
    p.add_argument("--tune", action="store_true", help="also sweep the token budget (30M model)")
    p.add_argument("--fp16-check", action="store_true", help="float16 vs float32 (cuda only)")
    p.add_argument("--json", type=Path, default=None, help="default: benchmarks/results_<device>.json")
    p.add_argument("--md", type=Path, default=None, help="default: benchmarks/RESULTS[_gpu].md")
    args = p.parse_args(argv)

    cfg = json.loads(json.dumps(QUICK if args.quick else FULL))
    for key in ("models", "inputs", "repeats"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg["captum_seq_repeats"] = min(cfg["captum_seq_repeats"], cfg["repeats"])
    track_live_memory()
    threads_before = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    from fairforge_attr.models import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    tag = "gpu" if device.type == "cuda" else "cpu"
    json_path = args.json or HERE / f"results_{tag}{'_quick' if args.quick else ''}.json"
    md_path = args.md or HERE / ("RESULTS.md" if tag == "cpu" and not args.quick else f"RESULTS_{tag}.md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if args.memory_only:
            result = _memory_only(args, cfg, device, dtype, json_path)
        else:
            result = _run(args, cfg, device, dtype, json_path)
    finally:
        torch.set_num_threads(threads_before)
    json_path.write_text(json.dumps(result, indent=1, default=str))
    notes = HERE / "notes.md"
    keep_notes = tag == "cpu" and not args.quick and notes.exists()
    md = report.markdown(result, notes.read_text() if keep_notes else "")
    peers = kept_section(md_path)  # benchmarks.compare's section survives a rerun of this one
    md_path.write_text(md + ("\n\n" + peers if peers else "") + "\n")
    print(md)
    print(f"\nwrote {json_path} and {md_path}")
    return result


def _memory_rows(model_name, model, tok, device, cfg) -> dict[str, Any]:
    from fairforge_attr.api import PACK_ITEMS
    from fairforge_attr.engine import Engine

    m = cfg["memory"]
    budget = Engine(model).token_budget
    n_items, n_samples = m["n_items"], m["n_samples"]
    if device.type == "cuda":  # a GPU budget holds far more: make both runs fill several chunks
        n_items, n_samples = max(n_items, PACK_ITEMS), max(n_samples, 2 * budget // 100)
    mem = batch_mod.memory_scaling(model, tok, device, n_items, n_samples, budget)
    print(f"  memory: {mem}", flush=True)
    return {"model": model_name, **mem}


def _memory_only(args, cfg, device, dtype, json_path: Path) -> dict[str, Any]:
    result = (
        json.loads(json_path.read_text()) if json_path.exists() else {"meta": _meta(args, cfg, device, dtype)}
    )
    result["memory"] = [m for m in result.get("memory", []) if m["model"] not in cfg["models"]]
    for model_name in cfg["models"]:
        model, tok = load(model_name, str(device), dtype)
        result["memory"].append(_memory_rows(model_name, model, tok, device, cfg))
    result["meta"]["memory_method"] = _meta(args, cfg, device, dtype)["memory_method"]
    result["targets"] = report.evaluate_targets(result)
    return result


def _run(args, cfg, device, dtype, json_path: Path) -> dict[str, Any]:
    from fairforge_attr.methods.registry import REGISTRY, Family

    result: dict[str, Any] = {"meta": _meta(args, cfg, device, dtype), "cases": [], "batch": [], "memory": []}
    ONE_VARIANT.clear()
    if args.resume and json_path.exists():
        result = json.loads(json_path.read_text())
    done = {(c["model"], c["input"], c["method"]) for c in result["cases"]}
    for c in result["cases"]:  # captum's one-variant default time depends on the input only
        d = c["impls"].get("captum_default", {})
        if d.get("estimated_from_one_variant"):
            ONE_VARIANT[(c["model"], c["input"])] = {
                k: d[k] / d["variants"] for k in ("seconds", "cpu_seconds", "forward", "tokens")
            }
    methods = args.methods or list(report.PERTURBATION) + list(gradient.GRADIENT_CASES)
    models_info = {}
    for model_name in cfg["models"]:
        model, tok = load(model_name, str(device), dtype)
        models_info[model_name] = {"parameters": n_parameters(model), "class": type(model).__name__}
        print(f"{model_name}: {models_info[model_name]}", flush=True)
        for input_name in cfg["inputs"]:
            subject = perturbation.Subject.make(model, tok, INPUTS[input_name], None)
            args.warm_up = True
            for method in methods:
                if (model_name, input_name, method) in done:
                    continue
                family = REGISTRY[next(m for m in REGISTRY if m.value == method)].family
                if family is Family.PERTURBATION:
                    case = perturbation_case(subject, model_name, input_name, method, cfg, args)
                else:
                    case = gradient_case(subject, model_name, input_name, method, cfg, args)
                result["cases"].append(case)
                # partial results survive a crash or a kill of a long run
                json_path.write_text(json.dumps(result, indent=1, default=str))
        if not args.no_batch and not any(b["model"] == model_name for b in result["batch"]):
            b = cfg["batch"]
            row = batch_mod.batch_throughput(
                model, tok, device, b["n_items"], b["method"], b["options"], b["repeats"]
            )
            result["batch"].append({"model": model_name, **row})
            print(f"  batch: {row['batch_over_loop']:.2f}x items/s over a loop", flush=True)
            result["memory"].append(_memory_rows(model_name, model, tok, device, cfg))
            json_path.write_text(json.dumps(result, indent=1, default=str))
        if args.tune and model_name == "qwen3-30m":
            items = {k: INPUTS[k] for k in cfg["inputs"]}
            result["tuning"] = sweep(model, tok, model_name, items, device, repeats=2, n_samples=32)
        del model
    result["models"] = models_info
    if args.fp16_check and device.type == "cuda":
        from .fp16 import fp16_check

        result["fp16_check"] = fp16_check("qwen3-30m", device)
    result["targets"] = report.evaluate_targets(result)
    return result


if __name__ == "__main__":
    main()
