"""The two benchmark models: the built-in demo model and a ~30M-parameter Qwen3 built from a
config (random weights, seed 0) that shares the demo model's tokenizer."""

from __future__ import annotations

import torch

from fairforge_attr.models import load_model

QWEN3_30M = dict(
    vocab_size=8192,  # the demo tokenizer's 1536 ids plus unused rows: a realistic LM-head share
    hidden_size=512,
    intermediate_size=1536,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=64,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
)

MODELS = ("demo", "qwen3-30m")


def n_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def load(name: str, device: str, dtype: torch.dtype):
    """``(model, tokenizer)`` on ``device`` in ``dtype``, eval mode."""
    demo, tokenizer = load_model(None, device=device, dtype=dtype)
    if name == "demo":
        return demo, tokenizer
    if name != "qwen3-30m":
        raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(MODELS)}")
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        **QWEN3_30M, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(device=device, dtype=dtype).eval()
    model.name_or_path = "qwen3-30m-random"
    return model, tokenizer
