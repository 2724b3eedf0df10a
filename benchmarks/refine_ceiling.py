"""Where exhaustive word occlusion's top-10 words lie in the sentence ranking (issue 11's
refinement target): how many sentences refinement would need to refine for 8 or 10 of them.

    python -m benchmarks.refine_ceiling                 # demo model, the long input 'rag'
    python -m benchmarks.refine_ceiling --model qwen3-30m
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from fairforge_attr import AttributionExplainer

from .inputs import INPUTS
from .models import MODELS, load


def ceiling(model_name: str, input_name: str) -> dict[str, Any]:
    model, tok = load(model_name, "cpu", torch.float32)
    explainer = AttributionExplainer(model, tok, max_length=1 << 16)
    item = INPUTS[input_name]
    # refining every sentence: exhaustive word occlusion, plus the sentence stage and each word's sentence
    result = explainer.explain(
        item["messages"],
        item["target"],
        method="occlusion",
        granularity="word",
        coarse_granularity="sentence",
        refine_top_k=1 << 20,
    )
    ranked = sorted(result.coarse_attributions, key=lambda a: (-abs(a.score), a.position))
    rank = {a.position: i + 1 for i, a in enumerate(ranked)}
    top = result.get_top_k(10)
    needed = sorted(rank[a.coarse_position] for a in top)
    return {
        "model": model_name,
        "input": input_name,
        "n_sentences": len(ranked),
        "top10_words": [
            {
                "text": a.text,
                "score": a.score,
                "sentence": a.coarse_position,
                "sentence_rank": rank[a.coarse_position],
            }
            for a in top
        ],
        "distinct_sentences": len({a.coarse_position for a in top}),
        "sentences_needed_for_8_of_10": needed[7],
        "sentences_needed_for_10_of_10": needed[-1],
    }


def model_and_input(doc: str | None, argv: list[str] | None) -> argparse.Namespace:
    """``--model``, ``--input`` and ``--threads`` (applied) of a one-case script."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=MODELS, default="demo")
    p.add_argument("--input", choices=sorted(INPUTS), default="rag")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = model_and_input(__doc__, argv)
    out = ceiling(args.model, args.input)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
