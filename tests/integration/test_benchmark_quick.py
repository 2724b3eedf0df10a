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
    assert set(rows) == {
        "roofline",
        "occlusion/before",
        "occlusion/whole-last-layer",
        "occlusion",
        "refine/sentence/top-1",
        "screen/saliency/top-3",
    }
    # same variants, fewer or equal tokens: the roofline runs every sequence whole
    assert rows["occlusion"]["tokens"] <= rows["occlusion/before"]["tokens"] <= rows["roofline"]["tokens"]
    # the same passes with and without the trimmed last layer; only the trimmed one skips
    whole, trimmed = rows["occlusion/whole-last-layer"], rows["occlusion"]
    assert whole["tokens"] == trimmed["tokens"] and whole["last_layer_skipped"] == 0
    assert 0 < trimmed["last_layer_skipped"] < trimmed["tokens"]
    refine = rows["refine/sentence/top-1"]
    assert 0 < refine["token_share_of_exhaustive"] < 1 and 0 <= refine["top10_agreement"] <= 1
    assert [s["stage"] for s in refine["stages"]] == ["coarse", "fine"]
    assert "top-10 agreement" in out_md.read_text()
    screened = rows["screen/saliency/top-3"]
    assert [s["stage"] for s in screened["stages"]] == ["screen", "fine"] and screened["refined_units"] == 3
    # the screen's one forward+backward pass is counted: 3 x the item's tokens
    assert screened["screen_tokens"] == 3 * case["seq_len"] and screened["tokens"] > screened["screen_tokens"]
    # --refine-only: the counts without the roofline rows
    only = refine_main(
        ["--quick", "--refine-only", "--threads", "1", "--json", str(out_json), "--md", str(out_md)]
    )
    rows = only["cases"][0]["rows"]
    assert (
        set(rows) == {"occlusion", "refine/sentence/top-1", "screen/saliency/top-3"}
        and "ratio_to_roofline" not in rows["occlusion"]
    )
    assert rows["refine/sentence/top-1"]["tokens"] == refine["tokens"]


def test_screen_sweep_runs_on_the_tiny_input(tmp_path, monkeypatch):
    """benchmarks.refine_screen: every screen x N from one exhaustive run (cached), agreement 1
    once N covers every word, shares that grow with N."""
    from benchmarks import refine_screen

    monkeypatch.setattr(refine_screen, "CACHE", tmp_path)
    out = refine_screen.main(["--input", "tiny"])
    assert (tmp_path / "refine_screen_demo_tiny.json").exists()
    assert {r["screen"] for r in out["rows"]} == set(refine_screen.DESIGNS)
    for name in refine_screen.DESIGNS:
        rows = [r for r in out["rows"] if r["screen"] == name]
        assert all(r["agreement"] == 1.0 for r in rows if r["n"] >= out["n_words"])
        assert all(0 < r["screen_share"] < r["token_share"] for r in rows)
    assert refine_screen.main(["--input", "tiny"])["rows"] == out["rows"]  # the cache, same table


def test_compare_quick_mode_runs(tmp_path):
    """Ours beside whichever peers are installed (those missing are skipped with the reason),
    top-k agreement with occlusion, the accuracy-per-cost sweep and the estimator accuracy."""
    from benchmarks.compare import main as compare
    from benchmarks.peers import missing

    out_json, out_md = tmp_path / "c.json", tmp_path / "RESULTS.md"
    out_md.write_text("# results\n")
    result = compare(["--quick", "--threads", "1", "--json", str(out_json), "--md", str(out_md)])
    for case in result["cases"]:
        ours = case["impls"]["ours"]
        assert "error" not in ours and ours["min_s"] > 0 and ours["tokens"] > 0
        if case["method"] == "occlusion":
            assert ours["top_k_vs_occlusion"] == 1.0  # its own reference
        for peer in ("interpreto", "inseq"):
            if missing(peer):
                assert "not installed" in case["skipped"][peer]
    assert {r["method"] for r in result["sweep"]} >= {"lime", "kernel_shap", "occlusion"}
    acc = result["accuracy"]
    assert acc["kernel_shap"] and acc["sobol"] and acc["lime"]
    assert min(r["ours"] for r in acc["kernel_shap"]) < 0.1
    default = next(r for r in acc["sobol"] if r["default"])
    assert default["max_abs_error"] <= 0.05
    text = out_md.read_text()
    assert text.startswith("# results") and "<!-- peers:start -->" in text and "| ours |" in text
