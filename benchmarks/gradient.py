"""The gradient side of the benchmark, on one input.

- roofline: a bare forward+backward over ``S`` embedding sequences (the same count the method
  differentiates): ``inputs_embeds`` require grad, weights frozen, full logits, the target
  logits summed and back-propagated, in batches of ``token_budget // seq_len`` rows;
- ours: ``explain`` with the gradient method (``perturbation.ours``);
- captum: ``LLMGradientAttribution`` around ``LayerIntegratedGradients`` on the embedding
  layer, same target, same ``n_steps`` (it attributes each target token separately, so it
  runs n_target integrated-gradient passes).

Adding a gradient method is one line in ``GRADIENT_CASES``: its name, its options, and how
many sequences it differentiates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .perturbation import CallCounter, Subject

# method -> (options, sequences differentiated). n_steps / n_samples are set by the runner.
GRADIENT_CASES: dict[str, Callable[[int], tuple[dict, int]]] = {
    "saliency": lambda s: ({}, 1),
    "input_x_gradient": lambda s: ({}, 1),
    "integrated_gradients": lambda s: ({"n_steps": s}, s),
    "gradient_shap": lambda s: ({"n_samples": s}, s),
    "smooth_grad": lambda s: ({"n_samples": s}, s),
    "square_grad": lambda s: ({"n_samples": s}, s),
    "var_grad": lambda s: ({"n_samples": s}, s),
}


def roofline_backward(subject: Subject, n_sequences: int) -> tuple[Callable[[], Any], dict]:
    enc, model = subject.encoded, subject.model
    device = subject.device
    n_t = enc.n_target_tokens
    ids = enc.input_ids.to(device)
    targets = enc.target_ids.to(device)
    rows = max(1, subject.explainer.engine.token_budget // enc.seq_len)
    sizes = [min(rows, n_sequences - i) for i in range(0, n_sequences, rows)]

    def run() -> None:
        flags = [(p, p.requires_grad) for p in model.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            with torch.no_grad():
                base = model.get_input_embeddings()(ids)
            for b in sizes:
                embeds = base.unsqueeze(0).expand(b, -1, -1).clone().requires_grad_(True)
                logits = model(inputs_embeds=embeds).logits[:, -(n_t + 1) : -1]
                logits.gather(-1, targets.expand(b, -1).unsqueeze(-1)).sum().backward()
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)

    counts = {
        "forward": len(sizes),
        "backward": len(sizes),
        "sequences": n_sequences,
        "tokens": n_sequences * enc.seq_len,
    }
    return run, counts


def captum_lig(subject: Subject, n_steps: int):
    """captum's LayerIntegratedGradients through LLMGradientAttribution."""
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    model, tok = subject.model, subject.tokenizer
    lig = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
    inp = TextTokenInput(subject.encoded.prompt_text, tok)
    last: dict[str, Any] = {}

    def run():
        with CallCounter(model) as counter:
            out = lig.attribute(inp, target=subject.target, n_steps=n_steps)
        last.update(counter.counts(), backward=counter.calls)
        return out

    return run, lambda: dict(last)
