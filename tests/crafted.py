"""Result rows built by hand (no model), for the commands that read result files."""

from __future__ import annotations

from typing import Any

from fairforge_attr.faithfulness import AOPC_BINS, FRACTIONS
from fairforge_attr.io.schema import WIDE_SCHEMA


def unit(
    text: str, score: float, position: int, role: str = "user", message_index: int = 0, start: int = 0
) -> dict:
    return {
        "text": text,
        "score": score,
        "normalized_score": 0.0,
        "position": position,
        "message_index": message_index,
        "role": role,
        "char_start": start,
        "char_end": start + len(text),
    }


def faithfulness(**figures: float | None) -> dict[str, Any]:
    """A full faithfulness record; the figures given, the rest plausible constants."""
    base: dict[str, Any] = {
        "fractions": list(FRACTIONS),
        "aopc_bins": list(AOPC_BINS),
        "top_k": 3,
        "n_ablations": 32,
        "n_random": 8,
        "seed": 0,
        "removal": "pad token",
        "f_full": -1.0,
        "f_empty": -5.0,
        "deletion_curve": [-1.0] * len(FRACTIONS),
        "insertion_curve": [-5.0] * len(FRACTIONS),
        "random_deletion_curve": [-3.0] * len(FRACTIONS),
        "random_insertion_curve": [-3.0] * len(FRACTIONS),
        "n_sequences": 50,
        "n_forward": 1,
        "compute_time_seconds": 0.1,
    }
    for name in (
        "deletion_auc",
        "insertion_auc",
        "comprehensiveness",
        "sufficiency",
        "comprehensiveness_top_k",
        "sufficiency_top_k",
        "lds",
        "signed_deletion_auc",
        "signed_insertion_auc",
        "signed_comprehensiveness",
        "signed_sufficiency",
        "random_deletion_auc",
        "random_insertion_auc",
        "random_comprehensiveness",
        "random_sufficiency",
        "random_comprehensiveness_top_k",
        "random_sufficiency_top_k",
        "random_lds",
        "deletion_gain",
        "insertion_gain",
        "comprehensiveness_gain",
        "sufficiency_gain",
        "lds_gain",
    ):
        base[name] = figures.get(name)
    return base


def ok_row(
    item_id: str, units: list[dict], target_log_prob: float = -1.0, **figures: float | None
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(WIDE_SCHEMA.names)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is it?"}]
    row.update(
        id=item_id,
        line=1,
        status="ok",
        model="crafted",
        method="occlusion",
        granularity="word",
        prompt="What is it?",
        messages=messages,
        target="It is.",
        units=units,
        target_log_prob=target_log_prob,
        n_forward=1,
        compute_time_s=0.01,
        params={},
        n_sequences=len(units) + 1,
        n_backward=0,
        n_prompt_tokens=5,
        n_target_tokens=3,
        device="cpu",
        dtype="float32",
        warnings=[],
        faithfulness=faithfulness(**figures) if figures else None,
        meta={},
    )
    return row


def error_row(item_id: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(WIDE_SCHEMA.names)
    row.update(
        id=item_id,
        line=9,
        status="error",
        error="no target",
        model="crafted",
        method="occlusion",
        granularity="word",
        meta={},
    )
    return row


def check_rows() -> list[dict[str, Any]]:
    """Four items whose every figure the check tests compute by hand."""
    return [
        ok_row(
            "a",
            [unit("Paris", 2.0, 0), unit("the", 0.1, 1), unit("Be", -0.5, 2, role="system", message_index=1)],
            target_log_prob=-1.0,
            lds=0.8,
            deletion_auc=0.2,
            insertion_auc=0.7,
            deletion_gain=0.3,
            insertion_gain=0.25,
            comprehensiveness=3.0,
            sufficiency=1.0,
        ),
        ok_row(
            "b",
            [unit("gender", 0.05, 0), unit("x", 1.0, 1)],
            target_log_prob=-3.0,
            lds=0.1,
            deletion_auc=0.6,
            insertion_auc=0.4,
            deletion_gain=-0.1,
            insertion_gain=-0.05,
            comprehensiveness=0.5,
            sufficiency=2.0,
        ),
        ok_row(
            "c",
            [
                unit(" Gender", -3.0, 0, role="system"),
                unit("y", 1.0, 1),
                unit("z", 0.0, 2),
                unit("w", 0.0, 3),
            ],
            target_log_prob=-2.0,
            comprehensiveness=1.0,
            sufficiency=1.5,
        ),
        error_row("d"),
    ]


def report_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n items for the report: units at the real offsets of their messages, a per-target-token
    matrix and faithfulness on most, an error row every 97th; "zebra" in every 1000th target."""
    import random

    rng = random.Random(seed)
    spans = [
        ("Be", 0, 0, 2),
        ("brief", 0, 3, 8),
        (".", 0, 8, 9),
        ("What", 1, 0, 4),
        ("is", 1, 5, 7),
        ("it", 1, 8, 10),
        ("?", 1, 10, 11),
    ]
    rows = []
    for i in range(n):
        if i % 97 == 96:
            rows.append(error_row(f"item-{i}"))
            continue
        units = [
            {
                **unit(t, rng.uniform(-1, 1), p, role=("system", "user")[m], message_index=m),
                "char_start": s,
                "char_end": e,
            }
            for p, (t, m, s, e) in enumerate(spans)
        ]
        peak = max(abs(u["score"]) for u in units)
        for u in units:
            u["normalized_score"] = u["score"] / peak
        target = "It is a zebra." if i % 1000 == 0 else f"It is answer {i}."
        row = ok_row(
            f"item-{i}",
            units,
            lds=rng.uniform(-0.2, 1),
            deletion_gain=0.1,
            insertion_gain=0.2,
            comprehensiveness=1.0,
            sufficiency=0.5,
        )
        row["target"] = target
        row["per_target_token"] = {
            "target_tokens": ["It", " is", " x"],
            "scores": [[rng.uniform(-1, 1) for _ in units] for _ in range(3)],
        }
        rows.append(row)
    return rows
