"""The objective, as pure tensor functions.

f(x) = sum_i log p(t_i | prompt, t_<i): one teacher-forced forward over prompt + target. Only
the positions that predict target tokens need logits (the one before each target token), and
the log-softmax is taken in float32 whatever the model's dtype, so float16 logits never
overflow the normaliser.
"""

from __future__ import annotations

import torch


def predicting_positions(seq_len: int, n_target: int) -> torch.Tensor:
    """Positions whose logits predict the last ``n_target`` tokens of a ``seq_len`` sequence."""
    return torch.arange(seq_len - n_target - 1, seq_len - 1)


def target_log_probs(logits: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
    """Per-token log-probabilities.

    Args:
        logits: [batch, n_target, vocab] logits at the predicting positions (any dtype).
        target_ids: [batch, n_target] or [n_target] ids of the target tokens.

    Returns:
        [batch, n_target] float32 log p(target token | its prefix).
    """
    logits = logits.float()
    if target_ids.dim() == 1:
        target_ids = target_ids.unsqueeze(0).expand(logits.shape[0], -1)
    picked = logits.gather(-1, target_ids.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)
