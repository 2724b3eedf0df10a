"""Estimator accuracy against exact values (issue 11, point 5), on a model's value function.

For inputs of d = 10, 12, 14 word units every mask is scored once by the engine
(``benchmarks/exact.py``); exact Shapley values and total-order Sobol indices come from that
table by enumeration, and every estimator (ours, shap's KernelExplainer, captum's KernelShap and
Lime) evaluates masks by looking them up, so all see the same value function and only the
estimators differ. Errors are means over seeds:

- KernelSHAP: relative error ||phi_hat - phi|| / ||phi|| at budgets 32-512 (model calls besides
  the full and the empty input: shap's ``nsamples``, captum's ``n_samples - 2``... see below),
  and just below the enumeration threshold 2^d - 2;
- Sobol: the largest absolute error of the total-order indices over the units, per n_samples;
- LIME: R^2 of the surrogate's prediction of f on 2,000 fresh keep-half masks.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch

from fairforge_attr.methods.kernel_shap import KernelShapOptions, kernel_shap_masks, kernel_shap_scores
from fairforge_attr.methods.lime import LimeOptions, lime_masks, lime_surrogate, surrogate_r2
from fairforge_attr.methods.sobol import SobolOptions, sobol_masks, sobol_scores

from .exact import ValueTable, captum_lime, value_table, word_item
from .peers import missing

FULL = {"units": [10, 12, 14], "budgets": [32, 64, 128, 256, 512], "seeds": 8, "sobol": [32, 64, 128]}
QUICK = {"units": [6], "budgets": [16, 32], "seeds": 2, "sobol": [8, 64]}


def _rel(est, exact: torch.Tensor) -> float:
    est = torch.as_tensor(np.asarray(est, dtype=np.float64)).reshape(-1)
    return float((est - exact).norm() / exact.norm())


def kernel_shap_rows(vt: ValueTable, budgets: list[int], seeds: int) -> list[dict[str, Any]]:
    d, exact = vt.d, vt.shapley()
    shap_missing = missing("shap")
    rows = []
    below = [2**d - 2 - k for k in (8, 4, 2)] if d <= 12 else []
    for n in [b for b in budgets if b < 2**d - 2] + below:
        row: dict[str, Any] = {"units": d, "budget": n, "ours": [], "shap": [], "captum": []}
        for seed in range(seeds):
            masks = kernel_shap_masks(d, n, torch.Generator().manual_seed(seed))
            row["ours"].append(
                _rel(kernel_shap_scores(masks, vt(masks), KernelShapOptions(n_samples=n))[0], exact)
            )
            if n > 1024:
                continue  # the peers at budgets near 2^d would take minutes; ours is the point there
            if shap_missing is None:
                import shap

                np.random.seed(seed)
                explainer = shap.KernelExplainer(vt.numpy_fn(), np.zeros((1, d)))
                sv = explainer.shap_values(np.ones((1, d)), nsamples=n, l1_reg=False, silent=True)
                row["shap"].append(_rel(sv, exact))
            row["captum"].append(_rel(_captum_kernel_shap(vt, n, seed), exact))
        rows.append({k: statistics.fmean(v) if isinstance(v, list) and v else v for k, v in row.items()})
    return rows


def _captum_kernel_shap(vt: ValueTable, n: int, seed: int) -> torch.Tensor:
    """captum's KernelShap with n + 2 evaluations (it counts the full and empty input in)."""
    import captum.attr as ca

    torch.manual_seed(seed)
    fn = vt.numpy_fn()
    ks = ca.KernelShap(lambda x: torch.from_numpy(fn(x.numpy())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ks.attribute(
            torch.ones(1, vt.d, dtype=torch.float64),
            baselines=torch.zeros(1, vt.d, dtype=torch.float64),
            n_samples=n + 2,
        )
    return out[0]


def sobol_rows(vt: ValueTable, sizes: list[int], seeds: int) -> list[dict[str, Any]]:
    d, exact = vt.d, vt.total_sobol()
    rows = []
    for n in sizes:
        errs = []
        for seed in range(seeds):
            masks = sobol_masks(d, n, seed)
            st = sobol_scores(masks, vt(masks), SobolOptions(n_samples=n))[0]
            errs.append(float((st - exact).abs().max()))
        rows.append(
            {
                "units": d,
                "n_samples": n,
                "default": n == SobolOptions().n_samples,
                "cost": n * (d + 1),
                "max_abs_error": statistics.fmean(errs),
                "worst_seed": max(errs),
            }
        )
    return rows


def lime_rows(vt: ValueTable, budgets: list[int], seeds: int) -> list[dict[str, Any]]:
    d = vt.d
    fresh = torch.rand(2000, d, generator=torch.Generator().manual_seed(99)) < 0.5
    y_fresh = vt(fresh)
    rows = []
    for n in budgets[:3]:
        r2: dict[str, list[float]] = {"ours": [], "ours_lime_sampler": [], "captum": []}
        for seed in range(seeds):
            for key, opts in (
                ("ours", LimeOptions(n_samples=n)),
                ("ours_lime_sampler", LimeOptions(n_samples=n, sampler="lime")),
            ):
                masks = lime_masks(d, n, torch.Generator().manual_seed(seed), opts.sampler)
                coef, intercept = lime_surrogate(masks, vt(masks), opts)
                r2[key].append(surrogate_r2(coef, intercept, fresh, y_fresh))
            r2["captum"].append(surrogate_r2(*captum_lime(vt, d, n, seed), fresh, y_fresh))
        rows.append({"units": d, "budget": n, **{k: statistics.fmean(v) for k, v in r2.items()}})
    return rows


def run_accuracy(
    model, tokenizer, quick: bool, units: list[int] | None = None, seeds: int | None = None
) -> dict[str, Any]:
    cfg = {**(QUICK if quick else FULL)}
    cfg["units"] = units or cfg["units"]
    cfg["seeds"] = seeds or cfg["seeds"]
    out: dict[str, Any] = {"config": cfg, "kernel_shap": [], "sobol": [], "lime": [], "tables": []}
    for d in cfg["units"]:
        t0 = time.perf_counter()
        messages, target = word_item(d)
        vt = value_table(model, tokenizer, messages, target)
        out["tables"].append({"units": vt.d, "masks": 2**vt.d, "seconds": time.perf_counter() - t0})
        out["kernel_shap"] += kernel_shap_rows(vt, cfg["budgets"], cfg["seeds"])
        out["sobol"] += sobol_rows(vt, cfg["sobol"], cfg["seeds"])
        out["lime"] += lime_rows(vt, cfg["budgets"], cfg["seeds"])
        print(f"  accuracy: {vt.d} units done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out
