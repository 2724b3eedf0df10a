"""The Plan: everything that decides how items are explained, fixed once per call.

A Plan is a frozen value: the method, the granularity, the parsed options, the seed, whether
per-target-token scores are wanted, the resolved baseline and the parameters that record it,
and the generation settings used when an item has no target. ``build_plan`` is the one way to
make one from user input; the API, the batch job and batch workers all use it (a worker can
also receive a pickled Plan: it holds only plain values, the method as its enum).

Every result computed under a Plan records ``plan.params`` and ``plan.recorded_seed``; the
batch resume check rebuilds the Plan an earlier run recorded (:meth:`Plan.recorded`) and
compares it with the new one (:meth:`Plan.changes_from`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .engine.baseline import Baseline, resolve_baseline
from .errors import InvalidRequestError
from .faithfulness.types import FaithfulnessOptions
from .methods.registry import MethodSpec, get_method
from .types import AttributionMethod, Granularity

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from .methods.base import Scorer

DEFAULT_SEED = 0
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_REFINE_TOP_K = 5
# Screening (``refine.py``): the gradient methods that may pick the units to score exactly,
# with the options each runs with (fixed: a screen ranks, so its cost is what matters; 8
# integrated-gradients steps are 10 sequences), and how many units a screen picks by default:
# on the demo model integrated gradients' top 50 words held 9 of exhaustive word occlusion's
# top 10 on both long inputs, at 14 % and 23 % of its tokens (benchmarks/RESULTS_refine_cpu.md).
SCREENS: dict[AttributionMethod, dict[str, Any]] = {
    AttributionMethod.SALIENCY: {},
    AttributionMethod.INPUT_X_GRADIENT: {},
    AttributionMethod.INTEGRATED_GRADIENTS: {"n_steps": 8},
}
DEFAULT_SCREEN_TOP_K = 50


@dataclass(frozen=True)
class Plan:
    """How to explain: built once per call by :func:`build_plan`, never changed.

    Attributes:
        method: the attribution method (its spec is ``plan.spec``).
        granularity: what one unit is.
        options: the method's validated options (a frozen pydantic model; defaults filled in).
        seed: the seed of every random draw (recorded only for methods that use it).
        per_target_token: also compute the [target tokens x units] matrix.
        baseline: the resolved baseline token (None for methods that take none, or for a Plan
            rebuilt from a record).
        extra_params: how the baseline was resolved, as recorded next to the options
            (e.g. ``("removal", "pad token '<pad>'")``).
        generate: whether an item without a target gets the model's greedy answer as its
            target (``explain`` always; batches when asked: ``generate=True``, ``--generate``);
            without it such an item is an error.
        max_new_tokens: how many tokens to generate for an item without a target.
        coarse_granularity: coarse-to-fine refinement (``refine.py``): score these coarser
            units first, then ``granularity`` units inside the top ``refine_top_k`` of them.
            None: score every unit of ``granularity`` directly.
        refine_top_k: how many coarse units to refine (set whenever coarse_granularity is),
            or with ``screen`` how many units the screen picks.
        screen: screened refinement (``refine.py``): this gradient method scores every unit in
            one pass, then the method scores only the ``refine_top_k`` units of largest
            |screen score|. None: no screen. Never set together with coarse_granularity.
        screen_baseline: the screen's resolved baseline (integrated gradients' starting
            embedding; None for the other screens, or for a Plan rebuilt from a record).
        faithfulness: measure each result's faithfulness with these options (None: do not).
        faithfulness_baseline: how the faithfulness probes remove a unit (resolved with the
            tokenizer; None for a Plan rebuilt from a record).
    """

    method: AttributionMethod
    granularity: Granularity
    options: BaseModel
    seed: int = DEFAULT_SEED
    per_target_token: bool = False
    baseline: Baseline | None = None
    extra_params: tuple[tuple[str, Any], ...] = ()
    generate: bool = False
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    coarse_granularity: Granularity | None = None
    refine_top_k: int | None = None
    screen: AttributionMethod | None = None
    screen_baseline: Baseline | None = None
    faithfulness: FaithfulnessOptions | None = None
    faithfulness_baseline: Baseline | None = None

    @property
    def spec(self) -> MethodSpec:
        """The method's registry entry (looked up, not stored: a Plan stays plain data)."""
        return get_method(self.method)

    @property
    def scorer(self) -> Scorer:
        """What scores a group of encoded items: the method's own ``score``, or both stages of
        a coarse-to-fine or screened refinement around it."""
        if self.screen is not None:
            from .refine import score_screened

            return score_screened
        if self.coarse_granularity is None:
            return self.spec.score
        from .refine import score_refined

        return score_refined

    @property
    def refinement_params(self) -> dict[str, Any]:
        """The refinement settings as results record them in ``params`` (empty without one)."""
        if self.screen is not None:
            return {"screen": self.screen.value, "refine_top_k": self.refine_top_k}
        if self.coarse_granularity is None:
            return {}
        return {"coarse_granularity": self.coarse_granularity.value, "refine_top_k": self.refine_top_k}

    @property
    def params(self) -> dict[str, Any]:
        """What every result records as ``metadata.params``: the options, then extra_params,
        then the refinement settings (when refining)."""
        return {**self.options.model_dump(), **dict(self.extra_params), **self.refinement_params}

    @property
    def recorded_seed(self) -> int | None:
        """The seed as results record it: None for methods that draw nothing."""
        return self.seed if self.spec.uses_seed else None

    @classmethod
    def recorded(
        cls,
        *,
        method: str,
        granularity: str,
        params: Mapping[str, Any] | None,
        seed: int | None,
        per_target_token: bool = False,
        faithfulness: Mapping[str, Any] | None = None,
    ) -> Plan:
        """The Plan a finished result recorded (a batch row's method, granularity, params and
        seed, and its faithfulness record if any). The baseline is not resolved again
        (``baseline`` is None); ``extra_params`` keeps how it was. Raises InvalidRequestError when the record names an unknown method
        or options that are no longer valid."""
        spec = get_method(method)
        params = dict(params or {})
        coarse = params.pop("coarse_granularity", None)
        top_k = params.pop("refine_top_k", None)
        screen = params.pop("screen", None)
        fields = spec.options_model.model_fields
        return cls(
            method=spec.method,
            granularity=Granularity.parse(granularity),
            options=spec.parse_options({k: v for k, v in params.items() if k in fields}),
            seed=DEFAULT_SEED if seed is None else seed,
            per_target_token=per_target_token,
            extra_params=tuple((k, v) for k, v in params.items() if k not in fields),
            coarse_granularity=None if coarse is None else Granularity.parse(coarse),
            refine_top_k=top_k,
            screen=None if screen is None else AttributionMethod.parse(screen),
            faithfulness=None
            if not faithfulness
            else FaithfulnessOptions(**{k: faithfulness[k] for k in _RECORDED_CHECK if k in faithfulness}),
        )

    def changes_from(self, earlier: Plan) -> list[str]:
        """What differs between this Plan and ``earlier`` in what decides the scores, as
        ``"name before -> after"``; empty when results of both may share one output.
        ``per_target_token`` and the generation settings change no score and are not compared."""
        changes = []
        if self.method is not earlier.method:
            changes.append(f"method {earlier.method.value} -> {self.method.value}")
        if self.granularity is not earlier.granularity:
            changes.append(f"granularity {earlier.granularity.value} -> {self.granularity.value}")
        if self.method is earlier.method:  # options of two methods are not comparable
            before, now = earlier.params, self.params
            changes += [
                f"{k} {before.get(k)!r} -> {v!r}"
                for k, v in now.items()
                if before.get(k) != v and (k in self.options.model_fields or k in before)
            ]
        if self.refinement_params != earlier.refinement_params:
            changes.append(
                f"refinement {earlier.refinement_params or None} -> {self.refinement_params or None}"
            )
        if earlier.recorded_seed is not None and earlier.recorded_seed != self.seed:
            changes.append(f"seed {earlier.recorded_seed} -> {self.seed}")
        return changes + self._check_changes(earlier)

    def _check_changes(self, earlier: Plan) -> list[str]:
        now, before = self.faithfulness, earlier.faithfulness
        if (now is None) != (before is None):
            return [f"faithfulness {'off' if before is None else 'on'} -> {'off' if now is None else 'on'}"]
        if now is None or before is None:
            return []
        return [
            f"faithfulness {k} {getattr(before, k)!r} -> {getattr(now, k)!r}"
            for k in _RECORDED_CHECK
            if getattr(before, k) != getattr(now, k)
        ]


# The faithfulness options a result records exactly (its top_k is capped at n_units).
_RECORDED_CHECK = ("n_ablations", "n_random", "seed")


def resolve_faithfulness(
    tokenizer: Any, vocab_size: int, value: bool | Mapping[str, Any] | FaithfulnessOptions
) -> tuple[FaithfulnessOptions, Baseline]:
    """Faithfulness options (``True``: the defaults) and the baseline its probes remove units
    with; bad options raise InvalidRequestError naming them."""
    try:
        options = FaithfulnessOptions.coerce(dict(value) if isinstance(value, Mapping) else value)
    except (ValidationError, TypeError) as exc:
        raise InvalidRequestError(f"invalid faithfulness options: {exc}") from exc
    options = options or FaithfulnessOptions()
    return options, resolve_baseline(tokenizer, options.baseline, vocab_size)


def build_plan(
    tokenizer: PreTrainedTokenizerBase,
    vocab_size: int,
    *,
    method: AttributionMethod | str,
    granularity: Granularity | str,
    seed: int = DEFAULT_SEED,
    per_target_token: bool = False,
    generate: bool = False,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    options: Mapping[str, Any] | None = None,
    coarse_granularity: Granularity | str | None = None,
    refine_top_k: int | None = None,
    screen: AttributionMethod | str | None = None,
    faithfulness: bool | Mapping[str, Any] | FaithfulnessOptions | None = False,
) -> Plan:
    """The Plan of one call: method, granularity and options validated (errors name the valid
    choices), the baseline resolved with ``tokenizer``. ``AttributionExplainer.plan`` calls
    this with the explainer's tokenizer and defaults."""
    if max_new_tokens < 1:
        raise InvalidRequestError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    spec = get_method(method)
    gran = Granularity.parse(granularity)
    coarse, top_k, screen = refinement_settings(spec, gran, coarse_granularity, refine_top_k, screen)
    opts = spec.parse_options(dict(options or {}))
    baseline, extra = spec.baseline(tokenizer, opts, vocab_size)
    check, check_baseline = (
        (None, None)
        if faithfulness is None or faithfulness is False
        else resolve_faithfulness(tokenizer, vocab_size, faithfulness)
    )
    return Plan(
        method=spec.method,
        granularity=gran,
        options=opts,
        seed=seed,
        per_target_token=per_target_token,
        baseline=baseline,
        extra_params=tuple(extra.items()),
        generate=generate,
        max_new_tokens=max_new_tokens,
        coarse_granularity=coarse,
        refine_top_k=top_k,
        screen=screen,
        screen_baseline=None if screen is None else screen_spec(tokenizer, vocab_size, screen)[1],
        faithfulness=check,
        faithfulness_baseline=check_baseline,
    )


def refinement_settings(
    spec: MethodSpec,
    fine: Granularity,
    coarse: Granularity | str | None,
    top_k: int | None,
    screen: AttributionMethod | str | None = None,
) -> tuple[Granularity | None, int | None, AttributionMethod | None]:
    """Validated refinement settings: (None, None, None) without one; else the coarse
    granularity (strictly coarser than ``fine``) or the screen (a method of ``SCREENS``), and
    how many of their units to refine (default 5 coarse units, or 50 screened units)."""
    if coarse is None and screen is None:
        if top_k is not None:
            raise InvalidRequestError(
                "refine_top_k needs coarse_granularity (the coarser units to score first, e.g. "
                "'sentence') or screen (the gradient method that picks the units, e.g. 'saliency')"
            )
        return None, None, None
    if coarse is not None and screen is not None:
        raise InvalidRequestError(
            "coarse_granularity and screen are two ways to choose what to refine; give one of them"
        )
    if not spec.refines:
        kind = "coarse-to-fine" if screen is None else "screened"
        raise InvalidRequestError(
            f"{kind} refinement is for perturbation methods, whose cost grows with the "
            f"number of units; {spec.method.value} scores every token in the same passes at any "
            "granularity, so refining would save nothing: drop coarse_granularity/screen/refine_top_k"
        )
    if screen is not None:
        return None, _top_k(top_k, DEFAULT_SCREEN_TOP_K), _screen(screen)
    coarse = Granularity.parse(coarse)
    if coarse.level <= fine.level:
        coarser = [g.value for g in Granularity if g.level > fine.level]
        raise InvalidRequestError(
            f"coarse_granularity {coarse.value!r} is not coarser than granularity {fine.value!r}; "
            + (f"choose one of: {', '.join(coarser)}" if coarser else "nothing is coarser than a message")
            + " (message > paragraph > sentence > word > token)"
        )
    return coarse, _top_k(top_k, DEFAULT_REFINE_TOP_K), None


def _top_k(top_k: int | None, default: int) -> int:
    top_k = default if top_k is None else top_k
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidRequestError(f"refine_top_k must be a whole number >= 1, got {top_k!r}")
    return top_k


def screen_spec(
    tokenizer: PreTrainedTokenizerBase, vocab_size: int, screen: AttributionMethod
) -> tuple[BaseModel, Baseline | None]:
    """The screen's options (``SCREENS``) and its resolved baseline."""
    spec = get_method(screen)
    options = spec.parse_options(SCREENS[screen])
    return options, spec.baseline(tokenizer, options, vocab_size)[0]


def _screen(screen: AttributionMethod | str) -> AttributionMethod:
    names = ", ".join(m.value for m in SCREENS)
    try:
        method = AttributionMethod.parse(screen)
    except InvalidRequestError:
        method = None
    if method not in SCREENS:
        raise InvalidRequestError(
            f"unknown screen {screen!r}; choose one of: {names} (a gradient method that scores "
            "every unit in one forward+backward pass)"
        )
    return method
