"""Ratios, target checks, the printed table and RESULTS.md, from the benchmark's JSON."""

from __future__ import annotations

from typing import Any

TARGET_MODEL = "qwen3-30m"
PERTURBATION = ("occlusion", "lime", "kernel_shap", "sobol")


def ratios(impls: dict[str, dict]) -> dict[str, float | None]:
    def sec(name: str) -> float | None:
        return impls.get(name, {}).get("seconds")

    ours, roof = sec("ours"), sec("roofline")
    out: dict[str, float | None] = {"ours_over_roofline": ours / roof if ours and roof else None}
    for name in ("captum_seq", "captum_default", "captum_lig"):
        if sec(name) and ours:
            out[f"{name}_over_ours"] = sec(name) / ours
    return out


def _check(name: str, value: float | None, bound: float, at_most: bool, where: str) -> dict[str, Any]:
    met = None if value is None else (value <= bound if at_most else value >= bound)
    return {"target": name, "where": where, "value": value, "bound": bound, "at_most": at_most, "met": met}


def evaluate_targets(result: dict[str, Any], model: str = TARGET_MODEL) -> list[dict[str, Any]]:
    checks = []
    for case in result.get("cases", []):
        if case["model"] != model:
            continue
        where = f"{case['method']}/{case['input']}"
        r = case["ratios"]
        if case["method"] in PERTURBATION:
            checks.append(_check("ours / roofline", r.get("ours_over_roofline"), 1.0, True, where))
            if "captum_seq_over_ours" in r:
                checks.append(_check("captum(seq) / ours", r["captum_seq_over_ours"], 3.0, False, where))
            if "captum_default_over_ours" in r:
                checks.append(
                    _check("captum(default) / ours", r["captum_default_over_ours"], 50.0, False, where)
                )
        elif case["method"] == "integrated_gradients":
            checks.append(_check("ours / fwd+bwd", r.get("ours_over_roofline"), 1.25, True, where))
            if "captum_lig_over_ours" in r:
                checks.append(_check("captum LIG / ours", r["captum_lig_over_ours"], 20.0, False, where))
    for b in result.get("batch", []):
        if b.get("model") == model:
            checks.append(_check("batch / loop items/s", b["batch_over_loop"], 2.0, False, b["method"]))
    mem = next((m for m in result.get("memory", []) if m.get("model") == model), None)
    if mem:
        vals = {k: v for k, v in mem.items() if k.endswith("_mb")}
        small, big = [v for k, v in vals.items() if k.startswith("batch_")]
        checks.append(_check("peak(4x items) / peak(items)", _ratio(big, small), 1.1, True, "batch"))
        s1, s4 = [v for k, v in vals.items() if k.startswith("item_") and "budget" not in k]
        checks.append(_check("peak(4x samples) / peak(samples)", _ratio(s4, s1), 1.1, True, "one item"))
    return checks


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return (a + 1.0) / (b + 1.0)  # +1 MB: peaks near zero would make the ratio meaningless


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def _seconds(impl: dict[str, Any]) -> str:
    text = _fmt(impl.get("seconds"), 3) if "error" not in impl else "error"
    return text + (" (est.)" if impl.get("estimated_from_one_variant") else "")


COLUMNS = ("roofline", "ours", "captum_seq", "captum_default", "captum_lig")


def _passes(impl: dict[str, Any]) -> str:
    """'forward / sequences / tokens'; gradient rows also say how many passes had a backward."""
    passes = _fmt(impl.get("forward"))
    if impl.get("backward"):
        passes += f" ({_fmt(impl['backward'])} bwd)"
    return f"{passes} / {_fmt(impl.get('sequences'))} / {_fmt(impl.get('tokens'))}"


def case_table(result: dict[str, Any]) -> list[str]:
    head = (
        "| model | input | method | samples | roofline s | ours s | captum seq s | captum default s "
        "| captum LIG s | ours/roof | captum seq/ours | captum default/ours | captum LIG/ours "
        "| ours fwd / seqs / tokens | roof tokens | ours peak MB | roof peak MB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in result.get("cases", []):
        imp, r = c["impls"], c["ratios"]
        o = imp.get("ours", {})
        cells = [
            c["model"],
            c["input"],
            c["method"],
            _fmt(c.get("samples")),
            *(_seconds(imp.get(k, {})) for k in COLUMNS),
            _fmt(r.get("ours_over_roofline")),
            _fmt(r.get("captum_seq_over_ours"), 1),
            _fmt(r.get("captum_default_over_ours"), 1),
            _fmt(r.get("captum_lig_over_ours"), 1),
            _passes(o),
            _fmt(imp.get("roofline", {}).get("tokens")),
            _fmt(o.get("peak_memory_mb"), 1),
            _fmt(imp.get("roofline", {}).get("peak_memory_mb"), 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict[str, Any], notes: str = "") -> str:
    """RESULTS.md: the tables, the target checks, then ``notes`` (the analysis, kept in
    benchmarks/notes.md so that a rerun keeps it)."""
    meta = result["meta"]
    out = [
        f"# Benchmark results ({meta['device']}, {meta['dtype']}, mode {meta['mode']})",
        "",
        f"Machine: {meta['machine']}. torch {meta['torch']}, transformers {meta['transformers']}, "
        f"captum {meta['captum']}; {meta['threads']} thread(s); {meta['date']}.",
        f"Seconds are medians of {meta['repeats']} runs after a warm-up (captum seq: "
        f"{meta['captum_seq_repeats']}, captum default: {meta['captum_default_repeats']}). "
        f"Peak memory: {meta['memory_method']}. (est.): captum's token-by-token default timed on "
        "one variant and multiplied by the variants captum evaluates.",
        "",
        "## Per method, input and model",
        "",
        *case_table(result),
        "",
    ]
    if result.get("batch"):
        out += ["## Batch: explain_batch (packed) vs a loop over explain", ""]
        out += ["| model | method | items | loop items/s | batch items/s | batch/loop | batch peak MB |"]
        out += ["|---|---|---|---|---|---|---|"]
        for b in result["batch"]:
            out.append(
                f"| {b['model']} | {b['method']} | {b['n_items']} | {_fmt(b['loop']['items_per_s'])} "
                f"| {_fmt(b['batch']['items_per_s'])} | {_fmt(b['batch_over_loop'])} "
                f"| {_fmt(b['batch']['peak_memory_mb'], 1)} |"
            )
        out.append("")
    if result.get("memory"):
        out += ["## Peak memory scaling (MB)", ""]
        for m in result["memory"]:
            cells = ", ".join(
                f"{k.removesuffix('_mb')}: {_fmt(v, 1)}" for k, v in m.items() if k.endswith("_mb")
            )
            out.append(f"- {m['model']} (token budget {m['token_budget']}): {cells}")
        out.append("")
    if result.get("tuning"):
        out += ["## Token budget sweep (tokens/s through the model; peak MB)", ""]
        out += [
            "| model | input | budget | roofline tok/s | ours tok/s | ours peak MB |",
            "|---|---|---|---|---|---|",
        ]
        for t in result["tuning"]:
            out.append(
                f"| {t['model']} | {t['input']} | {t['budget']} | {_fmt(t['roofline_tokens_per_s'], 0)} "
                f"| {_fmt(t['ours_tokens_per_s'], 0)} | {_fmt(t['ours_peak_mb'], 1)} |"
            )
        out.append("")
    if result.get("fp16_check"):
        out += ["## float16 vs float32", "", "```", *map(str, result["fp16_check"]), "```", ""]
    checks = result.get("targets", [])
    if checks:
        out += [f"## Targets ({TARGET_MODEL})", "", "| target | where | value | bound | met |"]
        out += ["|---|---|---|---|---|"]
        for c in checks:
            bound = ("<= " if c["at_most"] else ">= ") + _fmt(c["bound"])
            met = {True: "yes", False: "**no**", None: "-"}[c["met"]]
            out.append(f"| {c['target']} | {c['where']} | {_fmt(c['value'])} | {bound} | {met} |")
        out.append("")
    if notes:
        out += [notes.strip(), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.report RESULTS.json RESULTS.md [NOTES.md]``: the markdown of a
    (possibly partial) run."""
    import json
    import sys
    from pathlib import Path

    args = argv if argv is not None else sys.argv[1:]
    result = json.loads(Path(args[0]).read_text())
    result.setdefault("targets", evaluate_targets(result))
    notes = Path(args[2]).read_text() if len(args) > 2 else ""
    Path(args[1]).write_text(markdown(result, notes) + "\n")


if __name__ == "__main__":
    main()
