"""The engine: the only code that runs the model.

Perturbation methods hand it masks (n_variants x n_units, True = unit kept); it returns the
teacher-forced per-target-token log-probs of every variant. Where the speed comes from:

- one forward scores many variants: rows are packed into chunks bounded by a token budget,
  a memory budget and a logit budget (``packing.py``);
- only the positions that predict target tokens go through the LM head (``logits_to_keep``),
  and the float32 log-softmax is taken there only;
- identical masks are scored once;
- rows of a chunk share their leading tokens (template header, units no mask of the chunk
  removes): that prefix runs once and its keys/values serve every row (``prefix_cache.py``);
- variants of several items can share a forward (left padding, explicit position ids, so
  every row's target ends at the last position and positions never shift);
- on a GPU the host builds the next chunk while the device runs the last one: results stay on
  the device until the end, so nothing waits for a copy;
- out-of-memory halves the chunk and retries instead of failing the batch.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import EngineOutOfMemoryError
from ..prompt import EncodedInput
from .baseline import Baseline
from .devices import input_device, token_budget_for
from .objective import masked_target_log_probs
from .packing import (
    Budgets,
    Chunk,
    ChunkTensors,
    RowTable,
    build_chunk,
    plan_chunks,
    row_table,
    split_chunk,
)
from .prefix_cache import PrefixCache

# Tokens (rows x padded length) per forward. CPU: throughput is flat from 1024 to 16384
# (`benchmarks/run.py --tune`, 30M model: 600-720 tokens/s either way) while peak memory grows
# with the budget; 4096 still gives a 1000-token input several rows per chunk to share a
# prefix. GPU: larger chunks keep the device busy (the GPU sweep in gpu_check.sh checks it).
DEFAULT_TOKEN_BUDGET = {"cpu": 4096, "cuda": 65536}
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
class EngineStats:
    """What the engine ran since it was made (or ``reset``): model calls (a chunk with a shared
    prefix makes two), scored sequences, and tokens through the model (padding included)."""

    calls: int = 0
    sequences: int = 0
    tokens: int = 0
    prefix_tokens_saved: int = 0

    def reset(self) -> None:
        self.calls = self.sequences = self.tokens = self.prefix_tokens_saved = 0


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the device ran out of memory (CUDA, MPS or host allocations)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate" in text)


class Engine:
    """Runs one model; knows nothing about methods.

    Args:
        model: a Hugging Face causal LM (eval mode is set here).
        token_budget: most tokens run per forward (default per device type, measured).
        logit_budget: most float32 logits held at once.
        prefix_cache: share each chunk's common prefix through the model's cache where the
            model supports it (scores equal the plain pass to float rounding).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        token_budget: int | None = None,
        logit_budget: int | None = None,
        prefix_cache: bool = True,
    ) -> None:
        self.model = model.eval()  # dropout off: same input, same scores
        # inputs go where the input embeddings run (the first device of a device_map)
        self.device = input_device(model)
        self.dtype = next(model.parameters()).dtype
        params = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in params
        self._position_ids = "position_ids" in params
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.token_budget = token_budget or token_budget_for(
            model, DEFAULT_TOKEN_BUDGET.get(self.device.type, 16384)
        )
        self.logit_budget = logit_budget or DEFAULT_LOGIT_BUDGET
        self.prefix = PrefixCache(model)
        if not (prefix_cache and self._position_ids):
            self.prefix.disable()
        self.stats = EngineStats()
        self._float32_twin: Engine | None = None

    # ------------------------------------------------------------------ public
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Score every variant of every request; variants of different requests may share a
        forward pass."""
        tables: list[RowTable] = []
        inverses = []
        for req in requests:
            # torch.unique sorts rows lexicographically: neighbours share leading units.
            uniq, inv = torch.unique(req.masks.to(torch.uint8), dim=0, return_inverse=True)
            tables.append(row_table(req.encoded, uniq.bool(), req.baseline))
            inverses.append(inv)
        # Longest first: rows of similar length share a chunk, so little padding is wasted.
        order = sorted(range(len(requests)), key=lambda r: -requests[r].encoded.seq_len)
        pending: list[tuple[Chunk, torch.Tensor]] = []
        forwards = [0] * len(requests)
        with torch.inference_mode():
            for chunk in plan_chunks(tables, order, self._budgets()):
                self._run_chunk(tables, chunk, pending, forwards)
        out = [torch.empty(t.n_variants, t.encoded.n_target_tokens, dtype=torch.float32) for t in tables]
        for chunk, lp in pending:
            lp = lp.cpu()  # one wait per chunk, after every chunk was queued
            row = 0
            for t, start, end in chunk.segments:
                n_t = tables[t].encoded.n_target_tokens
                out[t][start:end] = lp[row : row + end - start, lp.shape[1] - n_t :]
                row += end - start
        return [
            ScoreResult(
                log_probs=out[r][inverses[r]], n_forward=forwards[r], n_sequences=tables[r].n_variants
            )
            for r in range(len(requests))
        ]

    def embeddings_log_probs(
        self, embeds: torch.Tensor, real: torch.Tensor, targets: torch.Tensor, n_target: torch.Tensor
    ) -> torch.Tensor:
        """[rows, max_t] float32 target log-probs of left-padded embedding sequences (the
        gradient methods' passes); differentiable when the caller enables grad.

        Args:
            embeds: [rows, length, hidden] input embeddings, each row's target at its end.
            real: [rows, length] bool, False on left padding.
            targets: [rows, max_t] right-aligned target ids; n_target: [rows] their counts.
        """
        max_t = targets.shape[1]
        kwargs: dict[str, Any] = {"inputs_embeds": embeds, "attention_mask": real.long(), "use_cache": False}
        if self._position_ids:
            kwargs["position_ids"] = (real.long().cumsum(-1) - 1).clamp(min=0)
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = max_t + 1
        logits = self.model(**kwargs).logits[:, -(max_t + 1) : -1]
        return masked_target_log_probs(logits, targets, n_target)

    @property
    def packs_lengths(self) -> bool:
        """Whether rows of different lengths can share a pass: left padding needs explicit
        position ids, which some models do not take."""
        return self._position_ids

    def recover_from_oom(self, longest: int) -> None:
        """After an out-of-memory pass: free the device's cached blocks and halve the token
        budget (never below one sequence of ``longest`` tokens), so later passes start from a
        size that fits."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.token_budget = max(longest, self.token_budget // 2)

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
            self._float32_twin = Engine(
                twin,
                token_budget=self.token_budget,
                logit_budget=self.logit_budget,
                prefix_cache=self.prefix.supported,
            )
        return self._float32_twin

    # ----------------------------------------------------------------- internals
    def _budgets(self) -> Budgets:
        return Budgets(self.token_budget, self.logit_budget, self.vocab_size, self.prefix.supported)

    def _run_chunk(
        self,
        tables: list[RowTable],
        chunk: Chunk,
        pending: list[tuple[Chunk, torch.Tensor]],
        forwards: list[int],
    ) -> None:
        try:
            lp = self._forward(build_chunk(tables, chunk), chunk.prefix)
        except Exception as exc:
            if not is_out_of_memory(exc):
                if chunk.prefix and self._prefix_failed(exc):
                    return self._run_chunk(tables, _without_prefix(chunk), pending, forwards)
                raise
            if chunk.n_rows == 1:
                raise EngineOutOfMemoryError(
                    f"one sequence of {chunk.longest} tokens does not fit in memory on "
                    f"{self.device}; use a shorter input, a smaller dtype or a larger device"
                ) from exc
            # Later chunks start from the size that worked, not the one that failed.
            self.recover_from_oom(chunk.longest)
            for half in split_chunk(tables, chunk, self.prefix.supported):
                self._run_chunk(tables, half, pending, forwards)
            return None
        pending.append((chunk, lp))
        for r in {t for t, _, _ in chunk.segments}:
            forwards[r] += 1
        self.stats.sequences += chunk.n_rows
        self.stats.tokens += chunk.tokens()
        self.stats.prefix_tokens_saved += (chunk.n_rows - 1) * chunk.prefix
        return None

    def _prefix_failed(self, exc: Exception) -> bool:
        """A model whose cached pass breaks is scored by plain passes from now on."""
        warnings.warn(
            f"{type(self.model).__name__} failed on a cached prefix ({type(exc).__name__}: {exc}); "
            "scoring without prefix sharing from now on",
            RuntimeWarning,
            stacklevel=4,
        )
        self.prefix.disable()
        return True

    def _forward(self, batch: ChunkTensors, prefix: int) -> torch.Tensor:
        """[rows, longest target] float32 log-probs (left of a shorter target: 0), on the
        model's device."""
        dev = self.device
        kwargs: dict = {"input_ids": batch.ids.to(dev, non_blocking=True)}
        if batch.attention is not None:
            kwargs["attention_mask"] = batch.attention.to(dev, non_blocking=True)
            if self._position_ids:
                kwargs["position_ids"] = batch.positions.to(dev, non_blocking=True)
        if prefix:
            mask = None if batch.prefix_mask is None else batch.prefix_mask.to(dev)
            cache = self.prefix.run_prefix(batch.prefix_ids.to(dev), mask)
            kwargs[self.prefix.cache_kwarg] = self.prefix.expand(cache, batch.ids.shape[0])
            kwargs["use_cache"] = True
            if "position_ids" not in kwargs:
                width = batch.ids.shape[1]
                kwargs["position_ids"] = torch.arange(prefix, prefix + width, device=dev).unsqueeze(0)
            self.stats.calls += 1
        else:
            kwargs["use_cache"] = False
        max_t, width = batch.targets.shape[1], batch.ids.shape[1]
        if self._logits_to_keep:
            # exactly the positions that predict a target token (not the last one)
            kwargs["logits_to_keep"] = torch.arange(width - max_t - 1, width - 1, device=dev)
        logits = self.model(**kwargs).logits
        if logits.shape[1] != max_t:
            logits = logits[:, -(max_t + 1) : -1]
        self.stats.calls += 1
        targets = batch.targets.to(dev, non_blocking=True)
        return masked_target_log_probs(logits, targets, batch.n_target.to(dev, non_blocking=True))


def _without_prefix(chunk: Chunk) -> Chunk:
    return Chunk(chunk.segments, 0, chunk.longest, chunk.longest_target)
