"""The model-running half of the gradient methods: f as a function of the input embeddings.

Only the embeddings of attributable tokens (the tokens of some unit) are inputs; everything
else (template markup, pure-whitespace tokens, the target) is held at its real embedding, so
it gets no gradient and no score. ``EmbeddingObjective`` is the ``forward_func`` that captum
calls: content-token embeddings [B, n_content, H] go in, they are scattered into the fixed
embedding sequence, and one teacher-forced forward returns [B, n_target + 1] float32 values:
the log-probability of each target token, then their sum f (the column captum differentiates
unless per-target-token rows are asked for).

Precision: the captum inputs (and so the gradients and every sum over them) are float32 even
when the model runs in float16; the forward casts them to the model's dtype. The log-softmax
is taken in float32 (``target_log_probs``), so the backward starts from d log p / d logits =
onehot - softmax, bounded by 1 in magnitude: float16 cannot overflow there, which is why no
loss scaling is applied. An overflow inside the model gives inf/NaN, which the runner detects
and recomputes in float32.

Counts are honest: every forward call, every sequence (row) in it, and every backward pass
that actually reached the output (a tensor hook counts it) are tallied. A pass that ran out of
memory is not counted; the work is redone with half as many rows per pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

from ..errors import EngineOutOfMemoryError
from ..prompt import EncodedInput
from .objective import target_log_probs
from .scoring import Engine, _is_oom

T = TypeVar("T")


@contextmanager
def _frozen_parameters(model) -> Iterator[None]:
    """Weights need no gradient: without it autograd keeps far fewer activations alive."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class EmbeddingObjective:
    """f of one item as a differentiable function of its content-token embeddings."""

    def __init__(self, engine: Engine, encoded: EncodedInput) -> None:
        self.engine = engine
        self.model = engine.model
        self.device = engine.device
        self.seq_len = encoded.seq_len
        self.n_target = encoded.n_target_tokens
        owner = encoded.unit_of_token
        content = owner >= 0
        self.token_units = owner[content]  # [n_content] unit of each input token
        self.positions = torch.nonzero(content).squeeze(1).to(self.device)
        self._ids = encoded.input_ids.to(self.device)
        self._targets = encoded.target_ids.to(self.device)
        self._embed = self.model.get_input_embeddings()
        with torch.no_grad():
            self.fixed = self._embed(self._ids).detach()  # [seq_len, H], model dtype
        self.inputs = self.fixed[self.positions].float()  # [n_content, H]: x of every method
        self.n_forward = self.n_backward = self.n_sequences = 0
        self.last_output: torch.Tensor | None = None  # detached, for methods that only look at x

    @property
    def total_column(self) -> int:
        """Index of f (the summed log-probability) in the forward's output."""
        return self.n_target

    def token_embeddings(self, token_id: int) -> torch.Tensor:
        """[n_content, H] float32: every content position holding ``token_id``'s embedding."""
        with torch.no_grad():
            row = self._embed(torch.tensor([token_id], device=self.device)).float()
        return row.expand(self.inputs.shape[0], -1).clone()

    def max_rows(self) -> int:
        """Sequences per forward+backward: the engine's token budget, and its logit budget for
        the float32 logits of the n_target + 1 kept positions."""
        by_tokens = self.engine.token_budget // self.seq_len
        by_logits = self.engine.logit_budget // ((self.n_target + 1) * self.engine.vocab_size)
        return max(1, min(by_tokens, by_logits))

    def __call__(self, content: torch.Tensor) -> torch.Tensor:
        """[B, n_content, H] -> [B, n_target + 1] float32 (per-target-token log-probs, then f)."""
        b = content.shape[0]
        embeds = self.fixed.unsqueeze(0).expand(b, -1, -1)
        embeds = embeds.index_copy(1, self.positions, content.to(self.fixed.dtype))
        kwargs = {
            "inputs_embeds": embeds,
            "attention_mask": torch.ones(b, self.seq_len, dtype=torch.long, device=self.device),
            "use_cache": False,
        }
        if self.engine._logits_to_keep:
            kwargs["logits_to_keep"] = self.n_target + 1
        logits = self.model(**kwargs).logits[:, -(self.n_target + 1) : -1]
        per_token = target_log_probs(logits, self._targets)
        out = torch.cat([per_token, per_token.sum(-1, keepdim=True)], dim=-1)
        self.n_forward += 1
        self.n_sequences += b
        self.last_output = out.detach()
        if out.requires_grad:
            out.register_hook(self._count_backward)
        return out

    def _count_backward(self, grad: torch.Tensor) -> None:
        self.n_backward += 1

    def evaluate(self, content: torch.Tensor) -> torch.Tensor:
        """The forward without gradients: [B, n_content, H] -> [B, n_target + 1]."""
        with torch.no_grad():
            return self(content).detach()

    def run(self, compute: Callable[[int], T]) -> T:
        """``compute(max_rows)`` with the weights frozen; out of memory halves ``max_rows``
        (and the engine's token budget, so later items start from a size that fits) and
        starts over. Counts describe the run that succeeded."""
        rows = self.max_rows()
        while True:
            counts = (self.n_forward, self.n_backward, self.n_sequences)
            try:
                with _frozen_parameters(self.model):
                    return compute(rows)
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                self.n_forward, self.n_backward, self.n_sequences = counts
                if rows == 1:
                    raise EngineOutOfMemoryError(
                        f"the gradient of one sequence of {self.seq_len} tokens does not fit in "
                        f"memory on {self.device}; use a shorter input, a perturbation method "
                        "or a larger device"
                    ) from exc
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                rows //= 2
                self.engine.token_budget = max(self.seq_len, self.engine.token_budget // 2)
