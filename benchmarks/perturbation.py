"""The three ways to run a perturbation method that the benchmark compares, on one input.

- roofline: a bare batched forward (inference mode, full logits, the model's own forward) over
  exactly the variant sequences that fairforge_attr scores, in batches of
  ``token_budget // seq_len`` rows; no mask building, no log-softmax, no solver;
- ours: ``AttributionExplainer.explain`` end to end (encoding, masks, engine, solver, result);
- captum: ``LLMAttribution`` around FeatureAblation / Lime / KernelShap, over the same units
  (a ``TextTemplateInput`` whose features are our units, each replaced by as many pad tokens
  as it has tokens), the same target and the same sample counts, with its default
  token-by-token decoding or with ``forward_in_tokens=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.engine import resolve_baseline
from fairforge_attr.engine.packing import row_table, variant_ids
from fairforge_attr.methods.registry import get_method
from fairforge_attr.prompt import EncodedInput, encode, render_chat
from fairforge_attr.results import Message
from fairforge_attr.segment import clear_cache
from fairforge_attr.types import Granularity

CAPTUM_METHODS = {"occlusion": "FeatureAblation", "lime": "Lime", "kernel_shap": "KernelShap"}


@dataclass
class Subject:
    """One (model, input) pair, encoded once."""

    model: Any
    tokenizer: Any
    explainer: AttributionExplainer
    messages: list[dict]
    target: str
    granularity: Granularity
    encoded: EncodedInput

    @classmethod
    def make(cls, model, tokenizer, item: dict, token_budget: int | None) -> Subject:
        # max_length: the long input is longer than the demo model's nominal context (512);
        # its rotary positions run past it, which costs the same and is all a timing needs.
        explainer = AttributionExplainer(model, tokenizer, token_budget=token_budget, max_length=1 << 16)
        gran = Granularity.parse(item["granularity"])
        enc = encode(
            tokenizer,
            target=item["target"],
            granularity=gran,
            messages=[Message(**m) for m in item["messages"]],
        )
        return cls(model, tokenizer, explainer, item["messages"], item["target"], gran, enc)

    @property
    def device(self) -> torch.device:
        return self.explainer.engine.device


class CallCounter:
    """Counts the model's forward calls, the sequences that start fresh (no cache given) and
    the tokens it is handed. captum calls ``model.forward`` directly (no module hooks), so the
    bound method is wrapped for the duration."""

    def __init__(self, model) -> None:
        self.model = model
        self.calls = self.sequences = self.tokens = 0

    def __enter__(self):
        real = self.model.forward

        def counted(*args, **kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            shape = ids.shape if ids is not None else kwargs["inputs_embeds"].shape[:2]
            self.calls += 1
            self.tokens += int(shape[0]) * int(shape[1])
            if kwargs.get("cache") is None and kwargs.get("past_key_values") is None:
                self.sequences += int(shape[0])
            return real(*args, **kwargs)

        self.model.forward = counted
        return self

    def __exit__(self, *exc) -> None:
        del self.model.forward

    def counts(self) -> dict[str, int]:
        return {"forward": self.calls, "sequences": self.sequences, "tokens": self.tokens}


def variant_masks(subject: Subject, method: str, options: dict, seed: int = 0) -> torch.Tensor:
    """The unique masks fairforge_attr scores for this method (row 0, the full input, too)."""
    spec = get_method(method)
    opts = spec.parse_options(options)
    n = subject.encoded.n_units
    masks = torch.cat([torch.ones(1, n, dtype=torch.bool), spec.score.sample(n, opts, seed)])
    return torch.unique(masks.to(torch.uint8), dim=0).bool()


def roofline(
    subject: Subject, method: str, options: dict, keep: torch.Tensor | None = None
) -> tuple[Callable[[], Any], dict]:
    """A bare batched forward over the variant sequences (of ``method``, or the unique masks
    ``keep``); returns (run, counts)."""
    enc, model = subject.encoded, subject.model
    baseline = resolve_baseline(subject.tokenizer, None, subject.explainer.engine.vocab_size)
    if keep is None:
        keep = variant_masks(subject, method, options)
    table = row_table(enc, keep, baseline)
    ids, _ = variant_ids(table, 0, keep.shape[0])
    ids = ids.contiguous()
    rows = max(1, subject.explainer.engine.token_budget // enc.seq_len)
    batches = [ids[i : i + rows] for i in range(0, ids.shape[0], rows)]
    device = subject.device

    def run() -> None:
        with torch.inference_mode():
            for batch in batches:
                model(input_ids=batch.to(device)).logits  # noqa: B018 - the work is the point

    counts = {"forward": len(batches), "sequences": int(ids.shape[0]), "tokens": int(ids.numel())}
    return run, counts


def ours(subject: Subject, method: str, options: dict) -> tuple[Callable[[], Any], Callable[[], dict]]:
    """``explain`` end to end; returns (run, counts after a run)."""
    engine = subject.explainer.engine
    last: dict[str, Any] = {}

    def run():
        engine.stats.reset()
        clear_cache()  # every timed run pays for sentence splitting, as a fresh input would
        result = subject.explainer.explain(
            subject.messages, subject.target, method=method, granularity=subject.granularity, **options
        )
        meta = result.metadata
        if meta.n_backward:  # gradient methods run their own passes, outside the engine's stats
            last.update(
                forward=meta.n_forward,
                backward=meta.n_backward,
                sequences=meta.n_sequences,
                tokens=meta.n_sequences * subject.encoded.seq_len,
            )
        else:
            last.update(
                forward=engine.stats.calls,
                sequences=engine.stats.sequences,
                tokens=engine.stats.tokens,
                prefix_tokens_saved=engine.stats.prefix_tokens_saved,
            )
        last.update(n_forward=meta.n_forward)
        return result

    return run, lambda: dict(last)


def captum_input(subject: Subject):
    """A TextTemplateInput whose features are our units."""
    from captum.attr import TextTemplateInput

    enc, tok = subject.encoded, subject.tokenizer
    _, spans = render_chat(tok, [Message(**m) for m in subject.messages])
    text = enc.prompt_text
    pieces, values, baselines, cursor = [], [], [], 0
    pad = tok.pad_token or tok.unk_token or tok.eos_token
    for unit in enc.units:
        start, _, shift = spans[unit.message_index]
        a, b = start + unit.char_start - shift, start + unit.char_end - shift
        pieces.append(text[cursor:a].replace("{", "{{").replace("}", "}}"))
        values.append(text[a:b])
        baselines.append(pad * len(unit.token_indices))
        cursor = b
    template = "".join(p + "{}" for p in pieces) + text[cursor:].replace("{", "{{").replace("}", "}}")
    return TextTemplateInput(template, values=values, baselines=baselines)


def captum(
    subject: Subject, method: str, options: dict, forward_in_tokens: bool
) -> tuple[Callable[[], Any], Callable[[], dict]]:
    """captum's LLMAttribution with the matching method; returns (run, counts after a run)."""
    import captum.attr as ca

    algo = getattr(ca, CAPTUM_METHODS[method])(subject.model)
    attr = ca.LLMAttribution(algo, subject.tokenizer)
    inp = captum_input(subject)
    kwargs = {"n_samples": options["n_samples"]} if "n_samples" in options else {}
    last: dict[str, Any] = {}

    def run():
        with CallCounter(subject.model) as counter, torch.no_grad():
            out = attr.attribute(inp, target=subject.target, forward_in_tokens=forward_in_tokens, **kwargs)
        last.update(counter.counts())
        return out

    return run, lambda: dict(last)


def captum_default_one_variant(subject: Subject, method: str) -> tuple[Callable[[], Any], Callable[[], dict]]:
    """captum's token-by-token forward for ONE variant (the unperturbed prompt), exactly as its
    default ``attribute`` calls it for every variant. The runner multiplies its time by the
    number of variants captum evaluates (from the ``forward_in_tokens=False`` run), for the
    cases where the full run would take hours on a CPU: under transformers 5.x captum 0.9's
    cached decoding does not advance ``cache_position``, so every step re-runs the whole
    sequence against a cache that keeps growing."""
    import captum.attr as ca

    attr = ca.LLMAttribution(getattr(ca, CAPTUM_METHODS[method])(subject.model), subject.tokenizer)
    inp = captum_input(subject)
    target_tokens = attr._get_target_tokens(inp, subject.target)
    last: dict[str, Any] = {}

    def run():
        with CallCounter(subject.model) as counter, torch.no_grad():
            out = attr._forward_func(
                None, inp, target_tokens, use_cached_outputs=True, forward_in_tokens=True
            )
        last.update(counter.counts())
        return out

    return run, lambda: dict(last)
