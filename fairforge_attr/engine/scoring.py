"""The engine: the only code that runs the model.

Perturbation methods hand it masks (n_variants x n_units, True = unit kept); it returns the
teacher-forced per-target-token log-probs of every variant. Where the speed comes from:

- one forward scores many variants: rows are packed into chunks bounded by a token budget,
  a memory budget and a logit budget (``packing.py``);
- only the positions that predict target tokens go through the LM head (``logits_to_keep``),
  and the float32 log-softmax is taken there only; the last decoder layer runs its queries,
  attention output and MLP there only too, the other positions need only its keys/values
  (``last_layer.py``);
- identical masks are scored once;
- rows of a chunk share their leading tokens (template header, units no mask of the chunk
  removes): that prefix runs once and its keys/values serve every row (``prefix_cache.py``);
- an item whose variants change late (occlusion on a long prompt) runs its unperturbed
  prompt once and every variant only from its first changed token on (``anchor.py``);
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import EngineOutOfMemoryError
from ..prompt import EncodedInput
from .anchor import anchor_length, first_change_order, plan_anchored, split_anchored, worth_anchoring
from .answers import chunking_orders
from .baseline import Baseline
from .devices import input_device, token_budget_for
from .last_layer import find_last_layer, tail_only
from .objective import contrastive_values, masked_target_log_probs
from .packing import Budgets, Chunk, ChunkTensors, RowTable, build_chunk, plan_chunks, row_table, split_chunk
from .prefix_cache import PrefixCache
from .stats import EngineStats, is_out_of_memory

# Tokens (rows x padded length) per forward. CPU: throughput is flat from 1024 to 16384
# (`benchmarks/run.py --tune`, 30M model: 600-720 tokens/s either way) while peak memory grows
# with the budget; 4096 still gives a 1000-token input several rows per chunk to share a
# prefix. GPU: larger chunks keep the device busy (the GPU sweep in gpu_check.sh checks it).
DEFAULT_TOKEN_BUDGET = {"cpu": 4096, "cuda": 65536}
DEFAULT_LOGIT_BUDGET = 64 * 1024 * 1024  # float32 logits held at once (256 MiB)


@dataclass
class ScoreRequest:
    encoded: EncodedInput  # a contrastive item (``encoded.contrast``) scores both answers
    masks: torch.Tensor  # [n_variants, n_units] bool, True = keep the unit
    baseline: Baseline


@dataclass
class ScoreResult:
    log_probs: torch.Tensor  # [n_variants, n_target] float32, rows follow the request's masks
    n_forward: int
    n_sequences: int
    # [n_variants, n_contrast] float32: the contrast answer's log-probs, for a contrastive item
    contrast_log_probs: torch.Tensor | None = None

    @property
    def values(self) -> torch.Tensor:
        """[n_variants] f of each variant: the summed target log-probability, minus the summed
        contrast log-probability for a contrastive item (``contrastive_values``)."""
        return contrastive_values(self.log_probs, self.contrast_log_probs)


class Engine:
    """Runs one model; knows nothing about methods.

    Args:
        model: a Hugging Face causal LM (eval mode is set here).
        token_budget: most tokens run per forward (default per device type, measured).
        logit_budget: most float32 logits held at once.
        prefix_cache: share each chunk's common prefix through the model's cache where the
            model supports it (scores equal the plain pass to float rounding).
        anchor: with ``prefix_cache``, run an item's unperturbed prompt once and each of its
            variants only from its first changed token (``anchor.py``), where that saves work;
            False: chunks share only their rows' common prefix (for measuring the difference).
        trim_last_layer: run the last decoder layer's queries, output projection and MLP only
            at the positions whose logits are kept, where the layout is recognised
            (``last_layer.py``; ``last_layer.describe()`` says what); False: the whole layer.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        token_budget: int | None = None,
        logit_budget: int | None = None,
        prefix_cache: bool = True,
        anchor: bool = True,
        trim_last_layer: bool = True,
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
        self.anchor = anchor
        self.last_layer = find_last_layer(model) if trim_last_layer else None
        self.stats = EngineStats()
        self._float32_twin: Engine | None = None

    # ------------------------------------------------------------------ public
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Score every variant of every request; variants of different requests may share a
        forward pass. A contrastive request is scored as two row tables, its target's and its
        contrast's (same masks); see ``answers.chunking_orders`` for when they share chunks."""
        tables: list[RowTable] = []
        inverses = []
        owner: list[int] = []  # the request each table belongs to
        tables_of: list[list[int]] = []  # a request's tables: its target's, then its contrast's
        anchored: set[int] = set()
        budgets = self._budgets()
        for r, req in enumerate(requests):
            # torch.unique sorts rows lexicographically: neighbours share leading units.
            uniq, inv = torch.unique(req.masks.to(torch.uint8), dim=0, return_inverse=True)
            tables_of.append([])
            perm = None
            for encoded in req.encoded.answers():
                table = row_table(encoded, uniq.bool(), req.baseline)
                # Its variants reuse its own prompt's cache. The target decides for both answers,
                # so one order of the rows (and one inverse) serves the request.
                if perm is None and self.anchor and not tables_of[r] and worth_anchoring(table, budgets):
                    perm = first_change_order(table)
                    rank = torch.empty_like(perm)
                    rank[perm] = torch.arange(perm.shape[0])
                    inv = rank[inv]
                if perm is not None:
                    table = row_table(encoded, table.keep[perm], req.baseline)
                    anchored.add(len(tables))
                tables_of[r].append(len(tables))
                tables.append(table)
                owner.append(r)
            inverses.append(inv)
        pending: list[tuple[Chunk, torch.Tensor]] = []
        forwards = [0] * len(requests)
        with torch.inference_mode():
            for t in (t for order in chunking_orders(tables, tables_of) for t in order if t in anchored):
                self._run_anchored(tables, t, pending, forwards, owner)
            for order in chunking_orders(tables, tables_of):
                plain = [t for t in order if t not in anchored]
                for chunk in plan_chunks(tables, plain, budgets):
                    self._run_chunk(tables, chunk, pending, forwards, owner)
        out = [torch.empty(t.n_variants, t.encoded.n_target_tokens, dtype=torch.float32) for t in tables]
        for chunk, lp in pending:
            lp = lp.cpu()  # one wait per chunk, after every chunk was queued
            row = 0
            for t, start, end in chunk.segments:
                n_t = tables[t].encoded.n_target_tokens
                out[t][start:end] = lp[row : row + end - start, lp.shape[1] - n_t :]
                row += end - start
        results = []
        for r, mine in enumerate(tables_of):
            log_probs = [out[t][inverses[r]] for t in mine]
            results.append(
                ScoreResult(
                    log_probs=log_probs[0],
                    n_forward=forwards[r],
                    n_sequences=sum(tables[t].n_variants for t in mine),
                    contrast_log_probs=log_probs[1] if len(log_probs) > 1 else None,
                )
            )
        return results

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
        self, prompts: Sequence[torch.Tensor], max_new_tokens: int, stop_ids: list[int], pad_id: int | None
    ) -> list[torch.Tensor]:
        """Greedy continuation of every prompt (used when an item has no target), without the
        stop token; prompts are batched with left padding (``generation.py``)."""
        from .generation import generate_greedy

        return generate_greedy(self, prompts, max_new_tokens, stop_ids, pad_id)

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
                anchor=self.anchor,
                trim_last_layer=self.last_layer is not None,
            )
        return self._float32_twin

    # ----------------------------------------------------------------- internals
    def _budgets(self) -> Budgets:
        return Budgets(self.token_budget, self.logit_budget, self.vocab_size, self.prefix.supported)

    def _run_anchored(
        self,
        tables: list[RowTable],
        t: int,
        pending: list[tuple[Chunk, torch.Tensor]],
        forwards: list[int],
        owner: list[int],
    ) -> None:
        """Score table ``t`` against its anchor (``anchor.py``); without one (the model's cache
        cannot be cut, or the cached pass fails), by the shared-prefix plan."""
        table = tables[t]
        anchor = None
        if self.prefix.supported:
            length = anchor_length(table)
            try:
                cache = self._run_prefix(table.encoded.input_ids[:length].unsqueeze(0).to(self.device), None)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    self._prefix_failed(exc)
            else:
                anchor = self.prefix.cut(cache, length)
        if anchor is None:
            for chunk in plan_chunks(tables, [t], self._budgets()):
                self._run_chunk(tables, chunk, pending, forwards, owner)
            return
        forwards[owner[t]] += 1
        self.stats.tokens += length
        for chunk in plan_anchored(t, table, self._budgets()):
            self._run_chunk(tables, chunk, pending, forwards, owner, anchor)

    def _run_chunk(
        self,
        tables: list[RowTable],
        chunk: Chunk,
        pending: list[tuple[Chunk, torch.Tensor]],
        forwards: list[int],
        owner: list[int],
        anchor: Any = None,
    ) -> None:
        if chunk.prefix and not self.prefix.supported:  # a cached pass failed since planning
            chunk = _without_prefix(chunk)
        try:
            lp = self._forward(build_chunk(tables, chunk), chunk.prefix, anchor if chunk.anchored else None)
        except Exception as exc:
            if not is_out_of_memory(exc):
                if chunk.prefix and self._prefix_failed(exc):
                    return self._run_chunk(tables, _without_prefix(chunk), pending, forwards, owner)
                raise
            if chunk.n_rows == 1:
                raise EngineOutOfMemoryError(
                    f"one sequence of {chunk.longest} tokens does not fit in memory on "
                    f"{self.device}; use a shorter input, a smaller dtype or a larger device"
                ) from exc
            # Later chunks start from the size that worked, not the one that failed.
            self.recover_from_oom(chunk.longest)
            halves = (
                split_anchored(tables, chunk)
                if chunk.anchored
                else split_chunk(tables, chunk, self.prefix.supported)
            )
            for half in halves:
                self._run_chunk(tables, half, pending, forwards, owner, anchor)
            return None
        pending.append((chunk, lp))
        for r in {owner[t] for t, _, _ in chunk.segments}:
            forwards[r] += 1
        self.stats.sequences += chunk.n_rows
        self.stats.tokens += chunk.tokens()
        self.stats.prefix_tokens_saved += (chunk.n_rows - (0 if chunk.anchored else 1)) * chunk.prefix
        return None

    def _run_prefix(self, ids: torch.Tensor, mask: torch.Tensor | None) -> Any:
        """The cache of a prefix pass (``PrefixCache.run_prefix``): no position of it needs
        logits, so its last layer computes keys and values only."""
        with self._trimmed((0, 0, ids.shape[1])):
            cache = self.prefix.run_prefix(ids, mask)
        self.stats.calls += 1
        return cache

    @contextmanager
    def _trimmed(
        self, span: tuple[int, int, int], prefix: int = 0, causal_only: bool = False
    ) -> Iterator[None]:
        """A model call whose last layer runs only ``span``'s positions ``start:stop`` of
        ``width`` (``last_layer.py``), counted in the stats; ``prefix``: the attention's shared
        prefix (``split_attention.py``)."""
        with tail_only(self.model, self.last_layer, span, prefix, causal_only) as done:
            yield
        self.stats.last_layer_skipped += done.skipped
        self.stats.last_layer_queries_skipped += done.queries_skipped

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

    def _forward(self, batch: ChunkTensors, prefix: int, anchor: Any = None) -> torch.Tensor:
        """[rows, longest target] float32 log-probs (left of a shorter target: 0), on the
        model's device. ``anchor``: a cache holding at least the ``prefix`` first positions
        (then the prefix is not run again)."""
        dev = self.device
        kwargs: dict = {"input_ids": batch.ids.to(dev, non_blocking=True)}
        if batch.attention is not None:
            kwargs["attention_mask"] = batch.attention.to(dev, non_blocking=True)
            if self._position_ids:
                kwargs["position_ids"] = batch.positions.to(dev, non_blocking=True)
        if prefix:
            if anchor is not None:
                cache = self.prefix.cut(anchor, prefix)
            else:
                mask = None if batch.prefix_mask is None else batch.prefix_mask.to(dev)
                cache = self._run_prefix(batch.prefix_ids.to(dev), mask)
            kwargs[self.prefix.cache_kwarg] = self.prefix.expand(cache, batch.ids.shape[0])
            kwargs["use_cache"] = True
            if "position_ids" not in kwargs:
                width = batch.ids.shape[1]
                kwargs["position_ids"] = torch.arange(prefix, prefix + width, device=dev).unsqueeze(0)
        else:
            kwargs["use_cache"] = False
        max_t, width = batch.targets.shape[1], batch.ids.shape[1]
        if self._logits_to_keep:
            # exactly the positions that predict a target token (not the last one)
            kwargs["logits_to_keep"] = torch.arange(width - max_t - 1, width - 1, device=dev)
        # A prefix that hides nothing is attended by every query alike: its attention is
        # computed once for all rows (split_attention.py); else one ordinary pass.
        shared = prefix if batch.prefix_mask is None else 0
        with self._trimmed((width - max_t - 1, width - 1, width), shared, batch.attention is None):
            logits = self.model(**kwargs).logits
        if logits.shape[1] != max_t:
            logits = logits[:, -(max_t + 1) : -1]
        self.stats.calls += 1
        targets = batch.targets.to(dev, non_blocking=True)
        return masked_target_log_probs(logits, targets, batch.n_target.to(dev, non_blocking=True))


def _without_prefix(chunk: Chunk) -> Chunk:
    return Chunk(chunk.segments, 0, chunk.longest, chunk.longest_target, anchored=False)
