"""The objective, as pure tensor functions.

f(x) = sum_i log p(t_i | prompt, t_<i): one teacher-forced forward over prompt + target. Only
the positions that predict target tokens need logits (the one before each target token), and
the log-softmax is taken in float32 whatever the model's dtype, so float16 logits never
overflow the normaliser.

A contrastive item explains f(x) = log p(target | x) - log p(contrast | x), both answers
teacher-forced after the same prompt (:func:`contrastive_values`): every score, every variant's
value and every gradient is of that difference.
"""

from __future__ import annotations

import torch


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


def masked_target_log_probs(
    logits: torch.Tensor, targets: torch.Tensor, n_target: torch.Tensor
) -> torch.Tensor:
    """Per-token log-probabilities of rows whose targets are right-aligned in ``targets``.

    Args:
        logits: [rows, max_t, vocab] logits at the predicting positions (any dtype).
        targets: [rows, max_t] target ids; a row's ``n_target`` tokens sit at the right end.
        n_target: [rows] how many target tokens each row has.

    Returns:
        [rows, max_t] float32; positions left of a shorter target are padding and hold 0, so
        f of every row is the sum of its row.
    """
    lp = target_log_probs(logits, targets)
    max_t = targets.shape[1]
    valid = torch.arange(max_t, device=lp.device).unsqueeze(0) >= (max_t - n_target).unsqueeze(1)
    return torch.where(valid, lp, torch.zeros((), dtype=lp.dtype, device=lp.device))


def contrastive_values(target: torch.Tensor, contrast: torch.Tensor | None) -> torch.Tensor:
    """f of each row: the summed target log-probs [rows, n_target], minus the summed contrast
    log-probs [rows, n_contrast] when there is a contrast.

    Returns:
        [rows] float32.
    """
    values = target.sum(-1)
    return values if contrast is None else values - contrast.sum(-1)
