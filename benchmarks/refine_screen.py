"""How well gradient screens find exhaustive word occlusion's top 10 (issue 11's refinement
target), for every screen and number of picked words N, without running each design:

    python -m benchmarks.refine_screen                    # demo model, the long input 'rag'
    python -m benchmarks.refine_screen --input long       # the 1,139-token lighthouse text
    python -m benchmarks.refine_screen --model qwen3-30m --input long

Exhaustive word occlusion runs once (cached under build/, minutes on the long input); each
screen scores every word once. Screened refinement's top 10 are the picked words of largest
exact |score|, so its top-10 agreement is the share of the exhaustive top 10 among the N words
of largest |screen score|. Its tokens, as a share of exhaustive occlusion's: the screen's
sequences x 3 x the item's length (a backward pass counted as 2x its forward tokens), plus
what occlusion of the N words pushes with per-variant reuse: one full pass, then each variant
from its word's first token on, scaled by exhaustive occlusion's measured tokens over that
estimate (within 1 % of it). ``benchmarks/refine.py`` measures chosen designs end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.plan import SCREENS
from fairforge_attr.segment import clear_cache

from . import perturbation
from .inputs import INPUTS
from .models import load
from .refine_ceiling import model_and_input

CACHE = Path(__file__).parent.parent / "build"
TOP = 10
PICKS = (25, 50, 75, 100, 125, 150, 200, 250)
TOKEN_FACTOR = 3  # forward + backward, the backward counted as 2x its forward tokens
# the screens of fairforge_attr.plan.SCREENS with their options, and two costlier variants
DESIGNS: dict[str, tuple[str, dict[str, Any]]] = {
    **{m.value: (m.value, opts) for m, opts in SCREENS.items()},
    "integrated_gradients/4": ("integrated_gradients", {"n_steps": 4}),
    "gradient_shap/8": ("gradient_shap", {"n_samples": 8}),
}


def exhaustive(explainer: AttributionExplainer, item: dict, path: Path) -> dict[str, Any]:
    """Exhaustive word occlusion's scores and forward tokens, cached at ``path``."""
    if path.exists():
        return json.loads(path.read_text())
    explainer.engine.stats.reset()
    clear_cache()
    result = explainer.explain(item["messages"], item["target"], method="occlusion", granularity="word")
    out = {"scores": [a.score for a in result.attributions], "tokens": explainer.engine.stats.tokens}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def ranked(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-abs(scores[i]), i))


def sweep(model_name: str, input_name: str) -> dict[str, Any]:
    model, tok = load(model_name, "cpu", torch.float32)
    item = INPUTS[input_name]
    subject = perturbation.Subject.make(model, tok, {**item, "granularity": "word"}, None)
    enc, explainer = subject.encoded, subject.explainer
    exact = exhaustive(explainer, item, CACHE / f"refine_screen_{model_name}_{input_name}.json")
    top = set(ranked(exact["scores"])[:TOP])
    first = [min(u.token_indices) for u in enc.units]
    length = enc.seq_len
    scale = exact["tokens"] / (length + sum(length - f for f in first))
    rows = []
    for name, (method, opts) in DESIGNS.items():
        result = explainer.explain(
            item["messages"], item["target"], method=method, granularity="word", **opts
        )
        screen_tokens = TOKEN_FACTOR * result.metadata.n_sequences * length
        order = ranked([a.score for a in result.attributions])
        for n in PICKS:
            picked = order[:n]
            tokens = screen_tokens + scale * (length + sum(length - first[w] for w in picked))
            rows.append(
                {
                    "screen": name,
                    "n": n,
                    "agreement": len(top & set(picked)) / TOP,
                    "token_share": tokens / exact["tokens"],
                    "screen_share": screen_tokens / exact["tokens"],
                }
            )
    return {
        "model": model_name,
        "input": input_name,
        "seq_len": length,
        "n_words": enc.n_units,
        "exhaustive_tokens": exact["tokens"],
        "rows": rows,
    }


def markdown(out: dict[str, Any]) -> str:
    lines = [
        f"{out['model']}, {out['input']} ({out['seq_len']} tokens, {out['n_words']} words): top-10 "
        f"agreement / share of exhaustive word occlusion's {out['exhaustive_tokens']} tokens",
        "",
        "| screen | screen share | " + " | ".join(f"N={n}" for n in PICKS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in PICKS) + " |",
    ]
    for name in DESIGNS:
        rows = [r for r in out["rows"] if r["screen"] == name]
        cells = " | ".join(f"{r['agreement']:.1f} / {r['token_share']:.0%}" for r in rows)
        lines.append(f"| {name} | {rows[0]['screen_share']:.1%} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = model_and_input(__doc__, argv)
    out = sweep(args.model, args.input)
    print(markdown(out))
    return out


if __name__ == "__main__":
    main()
