"""interpreto and inseq on the benchmark's inputs, as ``(run, counts)`` pairs like the others.

- interpreto (0.5.x): its generation explainers (``interpreto.Occlusion``, ``Lime``, ...) on the
  prompt exactly as the model sees it (chat template applied) and the same target, teacher
  forced, log-softmax outputs, at its own granularity of the same name (word / sentence: its
  units include the template's role words, so it may score a few more units than we do). Its
  replacement token is our pad token (a tokenizer copy with ``mask_token = pad``: otherwise it
  adds a ``[REPLACE]`` token and resizes the model's embeddings) and no length limit (it truncates
  at the tokenizer's ``model_max_length``, which would cut a long input). ``batch_size`` is the rows
  our token budget gives the same sequence. Equal budgets: n_samples -> ``n_perturbations``
  (``n_token_perturbations`` for Sobol, total-order indices), n_steps -> ``n_perturbations``.
- inseq (0.7.x): ``inseq.load_model`` + ``attribute`` with the prompt as input and
  prompt + target as the forced generation; it attributes one generated token at a time (a
  pass per target token and variant). The demo tokenizer has no BOS token, which inseq requires;
  the model's ``config.bos_token_id`` is set to the eos id while inseq runs.

Either is skipped, with the reason recorded, when it is not installed (``make install-bench``).
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from typing import Any

import torch

from .perturbation import CallCounter, Subject

INTERPRETO = {  # our method -> (interpreto class, our options -> its keyword arguments)
    "occlusion": ("Occlusion", lambda o: {}),
    "lime": ("Lime", lambda o: {"n_perturbations": o["n_samples"]}),
    "kernel_shap": ("KernelShap", lambda o: {"n_perturbations": o["n_samples"]}),
    "sobol": ("Sobol", lambda o: {"n_token_perturbations": o["n_samples"], "sobol_indices_order": "total"}),
    "saliency": ("Saliency", lambda o: {}),
    "integrated_gradients": ("IntegratedGradients", lambda o: {"n_perturbations": o["n_steps"]}),
    "gradient_shap": ("GradientShap", lambda o: {"n_perturbations": o["n_samples"]}),
    "smooth_grad": ("SmoothGrad", lambda o: {"n_perturbations": o["n_samples"]}),
    "square_grad": ("SquareGrad", lambda o: {"n_perturbations": o["n_samples"]}),
    "var_grad": ("VarGrad", lambda o: {"n_perturbations": o["n_samples"]}),
}
INSEQ = {  # our method -> (inseq method, our options -> attribute() keyword arguments)
    "occlusion": ("occlusion", lambda o: {}),
    "lime": ("lime", lambda o: {"n_samples": o["n_samples"]}),
    "saliency": ("saliency", lambda o: {}),
    "integrated_gradients": ("integrated_gradients", lambda o: {"n_steps": o["n_steps"]}),
    "input_x_gradient": ("input_x_gradient", lambda o: {}),
}


def missing(package: str) -> str | None:
    """Why ``package`` cannot run here, or None."""
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed (make install-bench)"
    return None


def _rows(subject: Subject) -> int:
    return max(1, subject.explainer.engine.token_budget // subject.encoded.seq_len)


def interpreto(subject: Subject, method: str, options: dict) -> tuple[Callable[[], Any], Callable[[], dict]]:
    import interpreto as it
    from interpreto.attributions import InferenceModes

    name, kwargs = INTERPRETO[method]
    extra = kwargs(options)
    if method == "sobol":
        from interpreto.attributions.methods.sobol_attribution import SobolIndicesOrders

        extra["sobol_indices_order"] = SobolIndicesOrders.TOTAL_ORDER
    tok = copy.deepcopy(subject.tokenizer)
    tok.mask_token = tok.pad_token  # replace with pad, as we do; and no embedding resize
    # interpreto tokenizes with truncation=True: at the tokenizer's model_max_length (512 for the
    # demo and 30M tokenizers) it would silently explain only the first 512 tokens of a long input
    tok.model_max_length = int(1e9)
    gran = it.Granularity.SENTENCE if subject.granularity.value == "sentence" else it.Granularity.WORD
    explainer = getattr(it, name)(
        subject.model,
        tok,
        batch_size=_rows(subject),
        granularity=gran,
        inference_mode=InferenceModes.LOG_SOFTMAX,
        **extra,
    )
    text = subject.encoded.prompt_text
    last: dict[str, Any] = {}

    def run():
        with CallCounter(subject.model) as counter:
            out = explainer(text, subject.target)
        last.update(counter.counts())
        last["units"] = len(out[0].elements)
        return out

    return run, lambda: dict(last)


def interpreto_unit_scores(out, subject: Subject) -> torch.Tensor | None:
    """interpreto's scores on our units (summed over target tokens), matched by text in order;
    None when its units cannot be lined up with ours."""
    o = out[0]
    scores = torch.nan_to_num(o.attributions.double()).sum(0)
    texts = [e.strip() for e in o.elements]
    mine, j = [], 0
    for unit in subject.encoded.units:
        want = unit.text.strip()
        while j < len(texts) and texts[j] != want:
            j += 1
        if j == len(texts):
            return None
        mine.append(float(scores[j]))
        j += 1
    return torch.tensor(mine, dtype=torch.float64)


def inseq(subject: Subject, method: str, options: dict) -> tuple[Callable[[], Any], Callable[[], dict]]:
    import inseq as iq

    name, kwargs = INSEQ[method]
    model = subject.model
    tok = copy.deepcopy(subject.tokenizer)
    saved = model.config.bos_token_id
    model.config.bos_token_id = tok.eos_token_id
    try:
        wrapped = iq.load_model(model, name, tokenizer=tok)
    finally:
        model.config.bos_token_id = saved
    prompt = subject.encoded.prompt_text
    extra = kwargs(options)
    last: dict[str, Any] = {}

    def run():
        model.config.bos_token_id = tok.eos_token_id
        try:
            with CallCounter(model) as counter:
                out = wrapped.attribute(prompt, prompt + subject.target, show_progress=False, **extra)
        finally:
            model.config.bos_token_id = saved
        last.update(counter.counts())
        return out

    return run, lambda: dict(last)


def top_k_agreement(scores: torch.Tensor, reference: torch.Tensor, k: int) -> float:
    """|top-k(|scores|) ∩ top-k(|reference|)| / k."""
    k = min(k, scores.numel())
    a = set(scores.abs().argsort(descending=True, stable=True)[:k].tolist())
    b = set(reference.abs().argsort(descending=True, stable=True)[:k].tolist())
    return len(a & b) / k
