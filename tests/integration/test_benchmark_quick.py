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


def test_long_input_benchmark_quick_mode_runs(tmp_path):
    from benchmarks.refine import main as refine_main

    out_json, out_md = tmp_path / "refine.json", tmp_path / "refine.md"
    result = refine_main(["--quick", "--threads", "1", "--json", str(out_json), "--md", str(out_md)])
    (case,) = result["cases"]
    rows = case["rows"]
    assert set(rows) == {"roofline", "occlusion/before", "occlusion", "refine/sentence/top-1"}
    # same variants, fewer or equal tokens: the roofline runs every sequence whole
    assert rows["occlusion"]["tokens"] <= rows["occlusion/before"]["tokens"] <= rows["roofline"]["tokens"]
    refine = rows["refine/sentence/top-1"]
    assert 0 < refine["token_share_of_exhaustive"] < 1 and 0 <= refine["top10_agreement"] <= 1
    assert [s["stage"] for s in refine["stages"]] == ["coarse", "fine"]
    assert "top-10 agreement" in out_md.read_text()
