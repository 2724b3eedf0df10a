"""Tiny models built offline from a config in well under a second, for tests and the benchmark.

Nothing here touches the network: tokenizers are trained on a few sentences, weights are
randomly initialised with a fixed seed.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

CORPUS = [
    "What is the capital of France? The capital of France is Paris.",
    "Answer concisely with 3 bullet points. Explain Albert Einstein's theory of relativity.",
    "Machine learning is a subset of AI that enables systems to learn from data.",
    "Why is the sky blue? The sky appears blue due to Rayleigh scattering of sunlight.",
    "system user assistant: Be brief. Answer now.",
]

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_bpe_tokenizer(vocab_size: int = 400, chat_template: str | None = None) -> PreTrainedTokenizerFast:
    specials = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def tiny_gpt2(seed: int = 0, n_embd: int = 32, n_layer: int = 2):
    """GPT-2 architecture, byte-level BPE, no chat template (the plain fallback format)."""
    tokenizer = byte_bpe_tokenizer()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=2,
        n_positions=512,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config).eval()
    model.name_or_path = "tiny-gpt2"
    return model, tokenizer


def tiny_qwen3(seed: int = 0, hidden: int = 32, layers: int = 2, vocab_size: int | None = None):
    """Qwen3 architecture with a ChatML chat template."""
    tokenizer = byte_bpe_tokenizer(chat_template=CHATML)
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config).eval()
    model.name_or_path = "tiny-qwen3"
    return model, tokenizer
