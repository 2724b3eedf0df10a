"""Per-unit standard errors of the sampled methods: computed, stored (JSON, Parquet as a typed
column in both layouts), read back, and shown on request (--show-uncertainty)."""

from __future__ import annotations

import json
import math
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairforge_attr.io.schema import LONG_SCHEMA, WIDE_SCHEMA
from tests.cli.conftest import FRANCE, PARIS


@pytest.mark.parametrize(("method", "extra"), [("lime", {"n_samples": 40}), ("sobol", {"n_samples": 8})])
def test_sampled_methods_carry_a_standard_error_per_unit(demo_explainer, method, extra):
    a = demo_explainer.explain([{"role": "user", "content": FRANCE}], PARIS, method=method, seed=3, **extra)
    b = demo_explainer.explain([{"role": "user", "content": FRANCE}], PARIS, method=method, seed=3, **extra)
    errors = [u.std_error for u in a.attributions]
    assert all(e is not None and math.isfinite(e) and e >= 0 for e in errors)
    assert any(e > 0 for e in errors)
    assert errors == [u.std_error for u in b.attributions]  # same seed, same errors


def test_kernel_shap_is_certain_when_enumerated_and_occlusion_has_none(demo_explainer):
    messages = [{"role": "user", "content": FRANCE}]
    exact = demo_explainer.explain(messages, PARIS, method="kernel_shap", n_samples=1024)
    assert all(u.std_error == pytest.approx(0.0, abs=1e-9) for u in exact.attributions)
    sampled = demo_explainer.explain(messages, PARIS, method="kernel_shap", n_samples=16, seed=1)
    assert any(u.std_error > 0 for u in sampled.attributions)
    occlusion = demo_explainer.explain(messages, PARIS, method="occlusion")
    assert all(u.std_error is None for u in occlusion.attributions)


def test_the_schema_declares_std_error_as_a_double():
    unit = WIDE_SCHEMA.field("units").type.value_type
    assert unit.field("std_error").type == pa.float64()
    assert LONG_SCHEMA.field("std_error").type == pa.float64()


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_batch_parquet_keeps_the_standard_errors(cli, qwen_dir, tmp_path, layout):
    src = tmp_path / "in.jsonl"
    src.write_text(
        f'{{"id": "a", "messages": [{{"role": "user", "content": "{FRANCE}"}}], "target": "{PARIS}"}}\n'
    )
    out = tmp_path / "out.parquet"
    res = cli("batch", src, out, "-m", qwen_dir, "--method", "lime", "--n-samples", "24", "--layout", layout)
    assert res.exit_code == 0, res.stderr
    table = pq.read_table(out)
    if layout == "wide":
        errors = [u["std_error"] for u in table.column("units").to_pylist()[0]]
    else:
        errors = table.column("std_error").to_pylist()
    assert errors and all(isinstance(e, float) and e >= 0 for e in errors)
    shown = cli("show", out, "--show-uncertainty")
    assert shown.exit_code == 0, shown.stderr
    assert "± s.e." in shown.stdout


def test_explain_shows_the_standard_errors_on_request(cli, qwen_dir):
    base = ("explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "lime", "--n-samples", "24")
    plain = cli(*base)
    assert plain.exit_code == 0 and "± s.e." not in plain.stdout
    shown = cli(*base, "--show-uncertainty")
    assert shown.exit_code == 0, shown.stderr
    assert "± s.e." in shown.stdout
    occlusion = cli(
        "explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "occlusion", "--show-uncertainty"
    )
    assert occlusion.exit_code == 0 and "± s.e." in occlusion.stdout  # a column of "-"


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_batch_parquet_keeps_gradient_standard_errors(cli, qwen_dir, tmp_path, layout):
    src = tmp_path / "in.jsonl"
    src.write_text(
        f'{{"id": "a", "messages": [{{"role": "user", "content": "{FRANCE}"}}], "target": "{PARIS}"}}\n'
    )
    errors = {}
    for method, extra in (("smooth_grad", ("--n-samples", "8")), ("saliency", ())):
        out = tmp_path / f"{method}.parquet"
        res = cli("batch", src, out, "-m", qwen_dir, "--method", method, *extra, "--layout", layout)
        assert res.exit_code == 0, res.stderr
        table = pq.read_table(out)
        if layout == "wide":
            errors[method] = [u["std_error"] for u in table.column("units").to_pylist()[0]]
        else:
            errors[method] = table.column("std_error").to_pylist()
    assert errors["smooth_grad"] and all(isinstance(e, float) and e > 0 for e in errors["smooth_grad"])
    assert errors["saliency"] and all(e is None for e in errors["saliency"])
    shown = cli("show", tmp_path / "smooth_grad.parquet", "--show-uncertainty")
    assert shown.exit_code == 0, shown.stderr
    assert "± s.e." in shown.stdout


def test_explain_shows_gradient_standard_errors(cli, qwen_dir):
    base = ("explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--show-uncertainty", "--format", "json")
    sampled = cli(*base, "--method", "var_grad", "--n-samples", "8")
    assert sampled.exit_code == 0, sampled.stderr
    assert all(u["std_error"] > 0 for u in json.loads(sampled.stdout)["attributions"])
    table = cli(
        "explain", FRANCE, "-t", PARIS, "-m", qwen_dir, "--method", "gradient_shap", "--show-uncertainty"
    )
    assert table.exit_code == 0, table.stderr
    assert "± s.e." in table.stdout
    assert re.search(r"[+-]\d+\.\d{4} │ \d+\.\d{4} │", table.stdout)  # a number, not "-", beside a score
