"""The views of a result: readable without colour, repeated units told apart, a matrix that
fits 100 columns with numbers of any scale, and an HTML view for notebooks."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from fairforge_attr import AttributionResult
from fairforge_attr.render.matrix import per_target_token_table
from fairforge_attr.render.terminal import render

SYSTEM = "Answer about France."
USER = "France is big. I love France."


def _unit(text, content, start, position, message_index, role, score):
    return {
        "text": text,
        "score": score,
        "normalized_score": score,
        "position": position,
        "message_index": message_index,
        "role": role,
        "char_start": start,
        "char_end": start + len(text),
    }


def _result(scale: float = 1.0, ptt: bool = False) -> AttributionResult:
    """A result made by hand: 'France' three times (system, user twice), both signs of score."""
    words = [  # (text, message, start, score)
        ("Answer", 0, 0, 0.1),
        ("France", 0, 13, 0.5),
        ("France", 1, 0, 1.0),
        ("big", 1, 10, -0.3),
        ("love", 1, 17, -0.6),
        ("France", 1, 22, 0.2),
    ]
    contents = [SYSTEM, USER]
    roles = ["system", "user"]
    units = [
        _unit(t, contents[m], s, i, m, roles[m], score * scale) for i, (t, m, s, score) in enumerate(words)
    ]
    peak = max(abs(u["score"]) for u in units)
    for u in units:
        u["normalized_score"] = u["score"] / peak
    target_tokens = ["The", " capital", " is", " Paris", "."]
    matrix = [[scale * (0.3 * (i + 1) - 0.07 * j + 0.01) for j in range(len(units))] for i in range(5)]
    return AttributionResult.model_validate(
        {
            "prompt": "<|im_start|>system\n" + SYSTEM,
            "messages": [{"role": r, "content": c} for r, c in zip(roles, contents)],
            "target": "The capital is Paris.",
            "method": "occlusion",
            "granularity": "word",
            "attributions": units,
            "per_target_token": {"target_tokens": target_tokens, "scores": matrix} if ptt else None,
            "metadata": {
                "model": "m",
                "device": "cpu",
                "dtype": "float32",
                "seed": None,
                "n_forward": 1,
                "n_sequences": 7,
                "compute_time_seconds": 0.1,
                "target_log_prob": -3.0,
                "params": {},
                "n_units": len(units),
                "n_prompt_tokens": 12,
                "n_target_tokens": 5,
            },
        }
    )


def _draw(result, *, colour: bool, width: int = 100, top_k: int = 10, ptt: bool = False) -> str:
    out = io.StringIO()
    console = Console(
        file=out, width=width, force_terminal=colour, color_system="truecolor" if colour else None
    )
    render(result, console, top_k, per_target_token=ptt)
    return out.getvalue()


def test_without_colour_the_strongest_units_carry_their_score():
    plain = _draw(_result(), colour=False, top_k=3)
    assert "\x1b[" not in plain
    heat = plain.split("top 3")[0]
    marks = re.findall(r"(\w+)\[([+-]\d\.\d\d)\]", heat)
    assert marks == [("France", "+0.50"), ("France", "+1.00"), ("love", "-0.60")]  # prompt order
    assert "normalized score" in heat  # the legend says what the marks mean
    coloured = _draw(_result(), colour=True, top_k=3)
    assert not re.findall(r"\w\[[+-]\d\.\d\d\]", coloured.split("top 3")[0])  # colour says it there


def test_top_k_bars_differ_by_sign_without_colour():
    table = _draw(_result(), colour=False).split("top 10")[1]
    rows = {line.split("│")[2].strip(): line for line in table.splitlines() if line.count("│") > 4}
    love, big = rows["'love'"], rows["'big'"]
    positive = next(line for name, line in rows.items() if name == "'France'")
    assert "█" in positive and "█" not in love and "░" in love and "░" in big


def test_top_k_table_tells_repeated_units_apart():
    table = _draw(_result(), colour=False, width=100).split("top 10")[1]
    assert "[France] is big" in table and "love [France]" in table and "about [France]" in table
    for position in ("1", "2", "5"):
        assert re.search(rf"│\s*{position}\s*│", table), position  # each unit's position
    assert "system" in table and "user" in table
    assert max(len(line) for line in table.splitlines()) <= 100


@pytest.mark.parametrize("scale", [1e-4, 1.0, 300.0])
def test_per_target_token_matrix_reads_at_any_scale_in_100_columns(scale):
    result = _result(scale=scale, ptt=True)
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(per_target_token_table(result, 100))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 100
    cells = re.findall(r"[+-]\d+\.\d+", text)
    assert len({c for c in cells}) > 5  # distinct values, not a wall of +0.00
    assert not any(re.fullmatch(r"[+-]0\.0+", c) for c in cells if c)
    for token in ("capital", "Paris", "love", "France", "Answer"):
        assert token in text  # headers and labels are not cut to stubs
    if scale != 1.0:
        assert "×1e" in text  # the common factor is stated once


def test_result_has_an_html_view_for_notebooks():
    result = _result()
    html = result._repr_html_()
    assert "France" in html and "background:#" in html and "<script" not in html
    assert not html.lstrip().startswith("<!DOCTYPE")  # a fragment, for inside a notebook cell
