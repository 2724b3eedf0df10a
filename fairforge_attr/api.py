"""The one entry point for users and the CLI: AttributionExplainer and compute_attributions.

A call builds its Plan once (``AttributionExplainer.plan``), turns each item into a request,
encodes groups of items and hands each group to the scorer (``scorer.score_group``), which
returns finished results: api -> scorer -> results, never back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .engine import Engine
from .errors import FairForgeError, InvalidRequestError, item_error
from .faithfulness.types import Faithfulness, FaithfulnessOptions
from .models import load_model, model_name
from .plan import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SEED, Plan, build_plan
from .prompt import encode
from .request import CONTRAST_PER_TARGET_TOKEN, ExplainRequest, coerce_request, make_request
from .results import AttributionResult, BatchAttributionResult
from .scorer import EncodedItem, check_item, score_group
from .targets import targets_of
from .types import AttributionMethod, Granularity

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PACK_ITEMS = 32  # items whose variants (perturbation) or points (gradient) may share passes


@dataclass
class ItemOutcome:
    """One batch item: its result, or the error that stopped it."""

    index: int
    result: AttributionResult | None = None
    error: FairForgeError | None = None


class AttributionExplainer:
    """Explains a causal LM's responses.

    Args:
        model: a loaded Hugging Face causal LM, a folder / hub id to load, or None for the
            built-in demo model.
        tokenizer: the model's (fast) tokenizer; loaded with the model when ``model`` is a
            name or None.
        default_method: method used when ``explain`` gets none (default LIME).
        default_granularity: TOKEN, WORD (default), SENTENCE, PARAGRAPH or MESSAGE.
        verbose: print one line per explained item on stderr.
        device, dtype: only used when the explainer loads the model itself.
        revision: a branch, tag or commit of a hub repository (when loading by hub id).
        trust_remote_code: run Python code shipped with the model (config.json ``auto_map``);
            off by default, since that code runs with your permissions.
        device_map: only used when the explainer loads the model itself: spread it over
            several devices with accelerate (``"auto"``: every visible GPU, then the CPU; or a
            dict of module name -> device). Inputs go to the first device; chunks are sized
            for the device with the least free memory. See ``load_model``.
        token_budget: most tokens (rows x sequence length) in one forward pass.
        max_length: longest prompt + target accepted (default: the model's context).
    """

    def __init__(
        self,
        model: PreTrainedModel | str | os.PathLike[str] | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        default_method: AttributionMethod | str = AttributionMethod.LIME,
        default_granularity: Granularity | str = Granularity.WORD,
        verbose: bool = False,
        *,
        device: str | None = None,
        dtype: str | None = None,
        device_map: str | dict[str, Any] | None = None,
        token_budget: int | None = None,
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if model is None or isinstance(model, str) or hasattr(model, "__fspath__"):
            model, loaded_tokenizer = load_model(
                model,
                device=device,
                dtype=dtype,
                device_map=device_map,
                revision=revision,
                trust_remote_code=trust_remote_code,
            )
            tokenizer = tokenizer or loaded_tokenizer
        if tokenizer is None:
            raise InvalidRequestError("pass the model's tokenizer along with a loaded model")
        self.model = model
        self.tokenizer = tokenizer
        self.default_method = AttributionMethod.parse(default_method)
        self.default_granularity = Granularity.parse(default_granularity)
        self.verbose = verbose
        self.engine = Engine(model, token_budget=token_budget)
        self.model_name = model_name(model)
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", None)

    # ------------------------------------------------------------------ explain
    def explain(
        self,
        messages: Sequence[dict[str, str]] | None = None,
        target: str | None = None,
        *,
        prompt: str | None = None,
        contrast: str | None = None,
        method: AttributionMethod | str | None = None,
        granularity: Granularity | str | None = None,
        seed: int = DEFAULT_SEED,
        per_target_token: bool = False,
        coarse_granularity: Granularity | str | None = None,
        refine_top_k: int | None = None,
        screen: AttributionMethod | str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        faithfulness: bool | dict[str, Any] | FaithfulnessOptions = False,
        **options: Any,
    ) -> AttributionResult:
        """Attribute log p(target | messages or prompt) to the units of the input.

        ``target=None`` generates the response greedily (``max_new_tokens``) and explains
        that; the result's ``metadata.target_generated`` says so. ``contrast``: another answer;
        the scores then explain log p(target) - log p(contrast), both teacher-forced: why the
        model prefers the target to the contrast (``result.contrastive``). Method options (e.g.
        ``n_samples``, ``baseline``) are passed as keyword arguments; ``ffattr methods``
        lists them. ``faithfulness=True`` (or a dict of ``FaithfulnessOptions``) also measures
        how well the scores predict removals (``result.faithfulness``; forward passes only,
        see ``fairforge_attr.faithfulness``).

        Refinement (perturbation methods): ``coarse_granularity="sentence", refine_top_k=5``
        scores ``granularity`` units only inside the 5 sentences of largest |score|;
        ``screen="integrated_gradients", refine_top_k=50`` only the 50 units a gradient screen
        ranks highest. The others get 0.0 and ``refined=False`` (``fairforge_attr.refine``).
        """
        request = make_request(messages, target, prompt, contrast)
        plan = self.plan(
            method,
            granularity,
            seed=seed,
            per_target_token=per_target_token,
            coarse_granularity=coarse_granularity,
            refine_top_k=refine_top_k,
            screen=screen,
            generate=True,
            max_new_tokens=max_new_tokens,
            faithfulness=faithfulness,
            **options,
        )
        outcome = next(self.iter_outcomes(plan, [request]))
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    def explain_batch(
        self,
        items: Iterable[Any],
        *,
        method: AttributionMethod | str | None = None,
        granularity: Granularity | str | None = None,
        seed: int = DEFAULT_SEED,
        per_target_token: bool = False,
        coarse_granularity: Granularity | str | None = None,
        refine_top_k: int | None = None,
        screen: AttributionMethod | str | None = None,
        generate: bool = False,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        faithfulness: bool | dict[str, Any] | FaithfulnessOptions = False,
        **options: Any,
    ) -> BatchAttributionResult:
        """Explain many ``(messages, target)`` pairs, ``(messages, target, contrast)`` triples,
        or dicts with messages/prompt/target/contrast.

        Several items share passes (the variants of perturbation methods, the points and
        gradients of gradient methods), so this is faster than a loop over ``explain``, with
        the same scores: an item's scores never depend on the items beside it. An item without
        a target is an error unless ``generate=True``: then the model answers it greedily
        (``max_new_tokens``; the answers of a group are generated together) and that answer is
        explained, as ``explain(target=None)`` does. The first bad item raises, naming its
        index; use ``iter_explain`` to collect errors instead.
        """
        start = time.perf_counter()
        results = []
        for outcome in self.iter_explain(
            items,
            method=method,
            granularity=granularity,
            seed=seed,
            per_target_token=per_target_token,
            coarse_granularity=coarse_granularity,
            refine_top_k=refine_top_k,
            screen=screen,
            generate=generate,
            max_new_tokens=max_new_tokens,
            faithfulness=faithfulness,
            **options,
        ):
            if outcome.error is not None:
                raise type(outcome.error)(f"item {outcome.index}: {outcome.error}") from outcome.error
            results.append(outcome.result)
        return BatchAttributionResult(
            results=results,
            model_name=self.model_name,
            total_compute_time_seconds=time.perf_counter() - start,
        )

    def iter_explain(
        self,
        items: Iterable[Any],
        *,
        method: AttributionMethod | str | None = None,
        granularity: Granularity | str | None = None,
        seed: int = DEFAULT_SEED,
        per_target_token: bool = False,
        coarse_granularity: Granularity | str | None = None,
        refine_top_k: int | None = None,
        screen: AttributionMethod | str | None = None,
        generate: bool = False,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        progress: Callable[[int], None] | None = None,
        faithfulness: bool | dict[str, Any] | FaithfulnessOptions = False,
        **options: Any,
    ) -> Iterator[ItemOutcome]:
        """Yield one ItemOutcome per item, in order, as soon as its group is done. Bad items
        yield an error and never stop the others. ``generate``: as in ``explain_batch``."""
        plan = self.plan(
            method,
            granularity,
            seed=seed,
            per_target_token=per_target_token,
            coarse_granularity=coarse_granularity,
            refine_top_k=refine_top_k,
            screen=screen,
            generate=generate,
            max_new_tokens=max_new_tokens,
            faithfulness=faithfulness,
            **options,
        )
        for outcome in self.iter_outcomes(plan, items):
            yield outcome
            if progress is not None:
                progress(1)

    def plan(
        self,
        method: AttributionMethod | str | None = None,
        granularity: Granularity | str | None = None,
        *,
        seed: int = DEFAULT_SEED,
        per_target_token: bool = False,
        coarse_granularity: Granularity | str | None = None,
        refine_top_k: int | None = None,
        screen: AttributionMethod | str | None = None,
        generate: bool = False,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        faithfulness: bool | dict[str, Any] | FaithfulnessOptions = False,
        **options: Any,
    ) -> Plan:
        """The Plan of a call: the method and granularity (default: the explainer's), the
        validated options and the baseline resolved with this explainer's tokenizer, and the
        faithfulness check when asked for. Bad names and values raise here, before any item is
        read."""
        return build_plan(
            self.tokenizer,
            self.engine.vocab_size,
            method=self.default_method if method is None else method,
            granularity=self.default_granularity if granularity is None else granularity,
            seed=seed,
            per_target_token=per_target_token,
            coarse_granularity=coarse_granularity,
            refine_top_k=refine_top_k,
            screen=screen,
            generate=generate,
            max_new_tokens=max_new_tokens,
            options=options,
            faithfulness=faithfulness,
        )

    def iter_outcomes(self, plan: Plan, items: Iterable[Any]) -> Iterator[ItemOutcome]:
        """Explain ``items`` under ``plan``: one ItemOutcome per item, in order, as soon as its
        group of up to ``PACK_ITEMS`` items is done. An item may be an ExplainRequest, a
        ``(messages, target[, contrast])`` tuple or a dict with messages/prompt/target/contrast;
        one that cannot be read, answered, encoded or scored yields its error and never stops
        the others."""
        group: list[tuple[int, ExplainRequest | FairForgeError]] = []
        for index, item in enumerate(items):
            try:
                group.append((index, coerce_request(item)))
            except Exception as exc:  # one item must never stop the others
                group.append((index, item_error(exc)))
            if len(group) >= PACK_ITEMS:
                yield from self._run_group(plan, group)
                group = []
        if group:
            yield from self._run_group(plan, group)

    def faithfulness(self, result: AttributionResult, **options: Any) -> Faithfulness:
        """Measure the faithfulness of an existing result on this explainer's model (forward
        passes only). ``options`` are ``FaithfulnessOptions`` fields (``n_ablations``,
        ``keep_probability``, ``n_random``, ``top_k``, ``seed``, ``baseline``). The result's item
        is encoded again and must give the result's units (the same tokenizer and granularity)."""
        return self.faithfulness_many([result], **options)[0]

    def faithfulness_many(self, results: Iterable[AttributionResult], **options: Any) -> list[Faithfulness]:
        """``faithfulness`` of many results in shared forward passes; results on the same item
        (several methods, say) share its random orderings and ablations."""
        from .faithfulness.attach import encode_result, task_of
        from .faithfulness.scoring import score_faithfulness
        from .plan import resolve_faithfulness

        opts, baseline = resolve_faithfulness(self.tokenizer, self.engine.vocab_size, options or True)
        tasks = [task_of(encode_result(self.tokenizer, r, self.max_length), r) for r in results]
        return score_faithfulness(self.engine, tasks, opts, baseline)

    def visualize(self, result: AttributionResult, return_html: bool = False) -> str | None:
        """Show a heatmap of the prompt: HTML in a notebook, colours in a terminal.
        ``return_html=True`` returns a self-contained HTML page instead."""
        from .render import show

        return show(result, return_html=return_html)

    # ---------------------------------------------------------------- internals
    def _run_group(
        self, plan: Plan, group: Sequence[tuple[int, ExplainRequest | FairForgeError]]
    ) -> Iterator[ItemOutcome]:
        start = time.perf_counter()
        outcomes: dict[int, ItemOutcome] = {}
        readable: list[tuple[int, ExplainRequest]] = []
        for index, req in group:
            if isinstance(req, FairForgeError):
                outcomes[index] = ItemOutcome(index, error=req)
            elif plan.per_target_token and req.contrast is not None:
                outcomes[index] = ItemOutcome(index, error=InvalidRequestError(CONTRAST_PER_TARGET_TOKEN))
            else:
                readable.append((index, req))
        ready: list[tuple[int, EncodedItem]] = []
        for (index, req), target in zip(
            readable,
            targets_of(self.engine, self.tokenizer, plan, [req for _, req in readable], self.max_length),
        ):
            try:
                if isinstance(target, FairForgeError):
                    raise target
                ready.append((index, self._encode(plan, req, target, generated=req.target is None)))
            except Exception as exc:  # one item's text must never stop its group or the run
                outcomes[index] = ItemOutcome(index, error=item_error(exc))
        if ready:
            done = score_group(self.engine, plan, [i for _, i in ready], model=self.model_name, started=start)
            for (index, _), res in zip(ready, done):
                if isinstance(res, FairForgeError):
                    outcomes[index] = ItemOutcome(index, error=res)
                else:
                    self._log(res)
                    outcomes[index] = ItemOutcome(index, result=res)
        for index, _ in group:
            yield outcomes[index]

    def _encode(self, plan: Plan, req: ExplainRequest, target: str, *, generated: bool) -> EncodedItem:
        encoded = encode(
            self.tokenizer,
            target=target,
            granularity=plan.granularity,
            coarse_granularity=plan.coarse_granularity,
            messages=req.messages,
            prompt=req.prompt,
            max_length=self.max_length,
            contrast=req.contrast,
        )
        check_item(plan, encoded)
        return EncodedItem(encoded, target_generated=generated)

    def _log(self, result: AttributionResult) -> None:
        if not self.verbose:
            return
        from .render.terminal import stderr_console

        m = result.metadata
        stderr_console().print(
            f"[dim]{result.method.value}/{result.granularity.value}: {m.n_units} units, {m.n_forward} forward, "
            f"{m.n_sequences} sequences, {m.compute_time_seconds:.2f}s, log p(target)={m.target_log_prob:.3f}[/dim]"
        )


def compute_attributions(
    model: PreTrainedModel | str | os.PathLike[str] | None,
    tokenizer: PreTrainedTokenizerBase | None,
    messages: Sequence[dict[str, str]] | None = None,
    target: str | None = None,
    method: AttributionMethod | str = AttributionMethod.LIME,
    granularity: Granularity | str = Granularity.WORD,
    **kwargs: Any,
) -> AttributionResult:
    """One-off attribution: builds an explainer and explains one item."""
    explainer = AttributionExplainer(model=model, tokenizer=tokenizer)
    return explainer.explain(messages, target, method=method, granularity=granularity, **kwargs)


__all__ = ["AttributionExplainer", "ItemOutcome", "compute_attributions"]
