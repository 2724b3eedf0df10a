"""The benchmark's quick mode runs end to end: every perturbation method against the roofline
and both captum modes, the batch run and the memory run (CI checks that it runs, not speed)."""

import json

from benchmarks.run import main


def test_benchmark_quick_mode_runs(tmp_path):
    out_json, out_md = tmp_path / "quick.json", tmp_path / "quick.md"
    result = main(["--quick", "--threads", "1", "--json", str(out_json), "--md", str(out_md)])
    saved = json.loads(out_json.read_text())
    assert saved["meta"]["mode"] == "quick"
    methods = {c["method"] for c in result["cases"]}
    assert {"occlusion", "lime", "kernel_shap", "sobol"} <= methods
    for case in result["cases"]:
        impls = case["impls"]
        assert all("error" not in v for v in impls.values()), impls
        assert case["ratios"]["ours_over_roofline"] > 0
        ours = impls["ours"]
        roof = impls["roofline"]["sequences"]
        if ours.get("backward"):  # the differentiated rows, plus forward-only f(x) and f(baseline)
            assert roof <= ours["sequences"] <= roof + 2
        else:
            assert ours["sequences"] <= roof
        assert ours["peak_memory_mb"] is not None
        if case["method"] in ("occlusion", "lime", "kernel_shap"):
            assert {"captum_seq", "captum_default"} <= set(impls)
            assert impls["captum_seq"]["forward"] >= (case["samples"] or case["n_units"])
    assert result["batch"][0]["batch_over_loop"] > 0
    assert result["memory"]
    assert "| ours/roof |" in out_md.read_text()
