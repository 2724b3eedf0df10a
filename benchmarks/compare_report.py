"""The peers + estimator-accuracy section of RESULTS.md, from ``benchmarks.compare``'s JSON."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

START, END = "<!-- peers:start -->", "<!-- peers:end -->"
PEERS = ("captum", "interpreto", "inseq")


def _f(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _timing_table(result: dict[str, Any]) -> list[str]:
    out = [
        "| model | input | method | units | ours min / median s | captum s | interpreto s | inseq s "
        "| interpreto / ours (>= 1.5) | ours tokens | interpreto tokens | top-k vs occlusion (ours / captum / interpreto) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result["cases"]:
        im = c["impls"]
        ours = im.get("ours", {})

        def med(name: str, im=im, c=c) -> str:
            if name in im:
                return _f(im[name].get("median_s")) if "median_s" in im[name] else "error"
            return "n/a" if name not in c.get("skipped", {}) else "skipped"

        topk = " / ".join(
            _f(im.get(n, {}).get("top_k_vs_occlusion")) for n in ("ours", "captum", "interpreto")
        )
        interp = im.get("interpreto", {})
        out.append(
            f"| {c['model']} | {c['input']} | {c['method']} | {c['n_units']} "
            f"(interpreto {interp.get('units', '-')}) | {_f(ours.get('min_s'))} / {_f(ours.get('median_s'))} "
            f"| {med('captum')} | {med('interpreto')} | {med('inseq')} | {_f(interp.get('over_ours'), 1)} "
            f"| {ours.get('tokens', '-')} | {interp.get('tokens', '-')} | {topk} |"
        )
    return out


def _accuracy_tables(acc: dict[str, Any]) -> list[str]:
    out = [
        "KernelSHAP, relative error ||phi - exact|| / ||phi|| (mean over seeds; budget = model calls "
        "besides the full and the empty input, the same for all three):",
        "",
        "| units | budget | ours | shap KernelExplainer (l1_reg=False) | captum KernelShap |",
        "|---|---|---|---|---|",
    ]
    for r in acc["kernel_shap"]:
        out.append(
            f"| {r['units']} | {r['budget']} | {_f(r['ours'], 4)} | {_f(r['shap'] or None, 4)} | {_f(r['captum'] or None, 4)} |"
        )
    out += [
        "",
        "Sobol total-order indices, largest absolute error over the units (mean over seeds, and the "
        "worst seed); cost = n_samples x (units + 1) sequences:",
        "",
        "| units | n_samples | cost | max abs error | worst seed |",
        "|---|---|---|---|---|",
    ]
    for r in acc["sobol"]:
        flag = " (default)" if r["default"] else ""
        out.append(
            f"| {r['units']} | {r['n_samples']}{flag} | {r['cost']} | {_f(r['max_abs_error'], 4)} | {_f(r['worst_seed'], 4)} |"
        )
    out += [
        "",
        "LIME, R^2 of the surrogate on 2,000 fresh keep-half masks (mean over seeds):",
        "",
        "| units | budget | ours (keep_half, ridge: default) | ours (sampler='lime') | captum Lime |",
        "|---|---|---|---|---|",
    ]
    for r in acc["lime"]:
        out.append(
            f"| {r['units']} | {r['budget']} | {_f(r['ours'], 3)} | {_f(r['ours_lime_sampler'], 3)} | {_f(r['captum'], 3)} |"
        )
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["meta"]
    lines = [
        START,
        "## Beside interpreto, captum and inseq; estimator accuracy (`python -m benchmarks.compare`)",
        "",
        f"{m['date']}, {m['machine']}, {m['threads']} threads, mode {m['mode']}; load average "
        f"before {m['load_before']}, after {m.get('load_after')}; versions {m['versions']}.",
        "Round-robin repeats (min and median); tokens = rows x sequence length pushed through the model.",
        "",
    ]
    if result["cases"]:
        lines += [*_timing_table(result), ""]
        skipped = {
            f"{c['input']}/{c['method']}/{k}": v
            for c in result["cases"]
            for k, v in c.get("skipped", {}).items()
        }
        if skipped:
            lines += ["Not run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()), ""]
        errors = {
            f"{c['input']}/{c['method']}/{k}": v["error"]
            for c in result["cases"]
            for k, v in c["impls"].items()
            if "error" in v
        }
        if errors:
            lines += ["Failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), ""]
    if result.get("sweep"):
        lines += [
            "Accuracy per cost on the long input (top-k agreement with exhaustive occlusion):",
            "",
            "| method | options | tokens | sequences | seconds | top-k agreement |",
            "|---|---|---|---|---|---|",
        ]
        for r in result["sweep"]:
            lines.append(
                f"| {r['method']} | {r['options']} | {r['tokens']} | {r['sequences']} | {_f(r['seconds'])} | {_f(r['top_k_vs_occlusion'])} |"
            )
        lines.append("")
    if result.get("accuracy"):
        lines += [*_accuracy_tables(result["accuracy"]), ""]
    lines.append(END)
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between the markers in ``path`` (replacing an older one, or appended)."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def kept_section(path: Path) -> str:
    """The section already in ``path`` (for benchmarks.run, which rewrites the rest)."""
    if not path.exists():
        return ""
    found = re.search(re.escape(START) + r".*?" + re.escape(END), path.read_text(), re.S)
    return found.group(0) if found else ""
