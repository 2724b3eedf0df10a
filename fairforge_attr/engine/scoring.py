"""The engine: the only code that runs the model.

Perturbation methods hand it masks (n_variants x n_units, True = unit kept); it returns the
teacher-forced per-target-token log-probs of every variant. Where the speed comes from:

- one forward scores many variants: rows are packed into chunks bounded by a token budget
  (rows x padded length) and by a logit budget (rows x target length x vocab);
- only the positions that predict target tokens go through the LM head (``logits_to_keep``);
- identical masks are scored once;
- variants of several items can share a forward (left padding, explicit position ids, so
  every row's target ends at the last position and positions never shift);
- out-of-memory halves the chunk and retries instead of failing the batch.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import EngineOutOfMemoryError
from ..prompt import EncodedInput
from .baseline import Baseline
from .objective import target_log_probs

DEFAULT_TOKEN_BUDGET = {"cpu": 8192, "cuda": 65536}
DEFAULT_LOGIT_BUDGET = 64 * 1024 * 1024  # float32 logits held at once (256 MiB)


@dataclass
class ScoreRequest:
    encoded: EncodedInput
    masks: torch.Tensor  # [n_variants, n_units] bool, True = keep the unit
    baseline: Baseline


@dataclass
class ScoreResult:
    log_probs: torch.Tensor  # [n_variants, n_target] float32, rows follow the request's masks
    n_forward: int
    n_sequences: int

    @property
    def values(self) -> torch.Tensor:
        """[n_variants] f of each variant: the summed target log-probability."""
        return self.log_probs.sum(-1)


@dataclass
class _Row:
    request: int
    variant: int  # index into the request's unique masks
    length: int
    n_target: int


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate" in text)


class Engine:
    """Runs one model; knows nothing about methods."""

    def __init__(self, model, *, token_budget: int | None = None, logit_budget: int | None = None):
        self.model = model.eval()  # dropout off: same input, same scores
        param = next(model.parameters())
        self.device = param.device
        self.dtype = param.dtype
        params = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in params
        self._position_ids = "position_ids" in params
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.token_budget = token_budget or DEFAULT_TOKEN_BUDGET.get(self.device.type, 16384)
        self.logit_budget = logit_budget or DEFAULT_LOGIT_BUDGET
        self._float32_twin: Engine | None = None

    # ------------------------------------------------------------------ public
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Score every variant of every request; variants of different requests may share a
        forward pass."""
        uniques, inverses = [], []
        for req in requests:
            uniq, inv = torch.unique(req.masks.to(torch.uint8), dim=0, return_inverse=True)
            uniques.append(uniq.bool())
            inverses.append(inv)
        rows = [
            _Row(r, v, req.encoded.seq_len, req.encoded.n_target_tokens)
            for r, req in enumerate(requests)
            for v in range(uniques[r].shape[0])
        ]
        # Longest first: rows of similar length share a chunk, so little padding is wasted.
        rows.sort(key=lambda row: (-row.length, row.request, row.variant))
        out = [
            torch.empty(uniques[r].shape[0], req.encoded.n_target_tokens, dtype=torch.float32)
            for r, req in enumerate(requests)
        ]
        forwards = [0] * len(requests)
        with torch.inference_mode():
            for chunk in self._chunks(rows):
                self._run_chunk(chunk, requests, uniques, out, forwards)
        return [
            ScoreResult(
                log_probs=out[r][inverses[r]], n_forward=forwards[r], n_sequences=int(uniques[r].shape[0])
            )
            for r in range(len(requests))
        ]

    def log_probs(self, encoded: EncodedInput) -> torch.Tensor:
        """[n_target] per-token log-probs of the unperturbed input."""
        keep_all = torch.ones(1, encoded.n_units, dtype=torch.bool)
        req = ScoreRequest(encoded, keep_all, Baseline(None, "none"))
        return self.score([req])[0].log_probs[0]

    def generate(
        self, prompt_ids: torch.Tensor, max_new_tokens: int, stop_ids: list[int], pad_id: int | None
    ) -> torch.Tensor:
        """Greedy continuation of a prompt (used when no target is given), without the stop
        token."""
        with torch.inference_mode():
            ids = prompt_ids.unsqueeze(0).to(self.device)
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stop_ids or None,
                pad_token_id=pad_id if pad_id is not None else (stop_ids[0] if stop_ids else None),
            )
        new = out[0, ids.shape[1] :].cpu()
        ends = [i for i, t in enumerate(new.tolist()) if t in set(stop_ids)]
        return new[: ends[0]] if ends else new

    def float32(self) -> Engine:
        """An engine over a float32 copy of the model (made once), for recomputing items whose
        half-precision scores came out NaN or inf."""
        if self.dtype == torch.float32:
            return self
        if self._float32_twin is None:
            twin = copy.deepcopy(self.model).float()
            self._float32_twin = Engine(twin, token_budget=self.token_budget, logit_budget=self.logit_budget)
        return self._float32_twin

    # ----------------------------------------------------------------- internals
    def _chunks(self, rows: list[_Row]):
        chunk: list[_Row] = []
        max_len = max_t = 0
        for row in rows:
            new_len, new_t = max(max_len, row.length), max(max_t, row.n_target)
            n = len(chunk) + 1
            fits = n * new_len <= self.token_budget and n * (new_t + 1) * self.vocab_size <= self.logit_budget
            if chunk and not fits:
                yield chunk
                chunk, new_len, new_t = [], row.length, row.n_target
            chunk.append(row)
            max_len, max_t = new_len, new_t
        if chunk:
            yield chunk

    def _run_chunk(self, chunk, requests, uniques, out, forwards) -> None:
        try:
            log_probs = self._forward(chunk, requests, uniques)
        except Exception as exc:
            if not _is_oom(exc):
                raise
            if len(chunk) == 1:
                raise EngineOutOfMemoryError(
                    f"one sequence of {chunk[0].length} tokens does not fit in memory on "
                    f"{self.device}; use a shorter input, a smaller dtype or a larger device"
                ) from exc
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            # Later chunks start from the size that worked, not the one that failed.
            self.token_budget = max(chunk[0].length, self.token_budget // 2)
            half = len(chunk) // 2
            self._run_chunk(chunk[:half], requests, uniques, out, forwards)
            self._run_chunk(chunk[half:], requests, uniques, out, forwards)
            return
        for b, row in enumerate(chunk):
            out[row.request][row.variant] = log_probs[b, log_probs.shape[1] - row.n_target :]
        for r in {row.request for row in chunk}:
            forwards[r] += 1

    def _forward(self, chunk: list[_Row], requests, uniques) -> torch.Tensor:
        max_len = max(row.length for row in chunk)
        max_t = max(row.n_target for row in chunk)
        n = len(chunk)
        ids = torch.zeros(n, max_len, dtype=torch.long)
        real = torch.zeros(n, max_len, dtype=torch.bool)  # not padding
        hidden = torch.zeros(n, max_len, dtype=torch.bool)
        targets = torch.zeros(n, max_t, dtype=torch.long)
        for b, row in enumerate(chunk):
            req = requests[row.request]
            enc = req.encoded
            pad = max_len - row.length
            seq = enc.input_ids.clone()
            removed = self._removed_tokens(enc, uniques[row.request][row.variant])
            if req.baseline.hides:
                hidden[b, pad:] = removed
            else:
                seq[removed] = req.baseline.token_id
            ids[b, pad:] = seq
            real[b, pad:] = True
            targets[b, max_t - row.n_target :] = enc.target_ids
        attention = (real & ~hidden).long()
        kwargs = {"input_ids": ids.to(self.device), "attention_mask": attention.to(self.device)}
        if self._position_ids:
            kwargs["position_ids"] = (real.long().cumsum(-1) - 1).clamp(min=0).to(self.device)
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = max_t + 1
        logits = self.model(**kwargs, use_cache=False).logits
        logits = logits[:, -(max_t + 1) : -1]
        lp = target_log_probs(logits, targets.to(self.device)).cpu()
        # Positions left of a shorter target are padding: zero them so sums stay exact.
        valid = torch.arange(max_t).unsqueeze(0) >= (
            max_t - torch.tensor([r.n_target for r in chunk])
        ).unsqueeze(1)
        return torch.where(valid, lp, torch.zeros((), dtype=lp.dtype))

    @staticmethod
    def _removed_tokens(enc: EncodedInput, keep: torch.Tensor) -> torch.Tensor:
        owner = enc.unit_of_token
        removed = torch.zeros(enc.seq_len, dtype=torch.bool)
        owned = owner >= 0
        removed[owned] = ~keep[owner[owned]]
        return removed
