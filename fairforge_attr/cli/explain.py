"""ffattr explain: attribute one response to the units of its prompt."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..results import AttributionResult
from ..types import AttributionMethod, Granularity
from . import options as o
from . import scale
from .common import (
    cli_command,
    faithfulness_options,
    load_explainer,
    method_options,
    model_spec,
    refinement,
    status,
    stdout_console,
)

INPUT_PANEL = "Input"

EPILOG = """\
Examples:

  ffattr explain "What is the capital of France?" -t "Paris."
  ffattr explain "Why is the sky blue?" --system "Be brief." -g sentence
  ffattr explain "What is the capital of France?"     # the model answers
  ffattr explain "What is the capital of France?" -t "The capital of France is Paris." --contrast "The capital of Germany is Berlin."
  ffattr explain --messages chat.json --target-file answer.txt -m ./model
  ffattr explain "Hi" -t "Hello!" --method occlusion --format json
  ffattr explain "Hi" -t "Hello!" --per-target-token --output hi.html
  ffattr explain --messages rag.json -t "1889." --method occlusion --coarse sentence --refine-top 5
  ffattr explain --messages rag.json -t "1889." --method occlusion --screen integrated_gradients --refine-top 50
  ffattr explain "Hi" -t "Hello!" --faithfulness     # can I trust these scores?

Scores are in nats of log p(target): red units raised the target's log-probability, blue ones lowered it. With --contrast they are in nats of log p(target) - log p(contrast): red units made the model prefer the target to the contrast.
"""


@cli_command
def explain(
    message: Annotated[
        str | None,
        typer.Argument(
            metavar="MESSAGE", help="The user message (or, with --raw, the whole prompt).", show_default=False
        ),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option(
            help="A system message before the user message.", show_default=False, rich_help_panel=INPUT_PANEL
        ),
    ] = None,
    messages_file: Annotated[
        str | None,
        typer.Option(
            "--messages",
            metavar="FILE",
            help='A JSON list of {"role", "content"} messages instead of MESSAGE ("-": stdin).',
            show_default=False,
            rich_help_panel=INPUT_PANEL,
        ),
    ] = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", help="MESSAGE is a raw prompt: no chat template, no roles.", rich_help_panel=INPUT_PANEL
        ),
    ] = False,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", "-t", help="The response to explain.", show_default=False, rich_help_panel=INPUT_PANEL
        ),
    ] = None,
    target_file: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Read the response to explain from a file.",
            show_default=False,
            rich_help_panel=INPUT_PANEL,
        ),
    ] = None,
    contrast: Annotated[
        str | None,
        typer.Option(
            "--contrast",
            "-c",
            help="Another answer: explain why the model prefers the target to it "
            "(log p(target) - log p(contrast)).",
            show_default=False,
            rich_help_panel=INPUT_PANEL,
        ),
    ] = None,
    max_new_tokens: Annotated[
        int,
        typer.Option(
            min=1,
            help="Without a target: how many tokens the model may generate.",
            rich_help_panel=INPUT_PANEL,
        ),
    ] = 64,
    model: o.Model = None,
    revision: o.Revision = None,
    trust_remote_code: o.TrustRemoteCode = False,
    device: o.Device = None,
    device_map: scale.DeviceMap = None,
    dtype: o.Dtype = None,
    max_length: o.MaxLength = None,
    method: o.Method = AttributionMethod.LIME,
    granularity: o.GranularityOpt = Granularity.WORD,
    coarse: o.Coarse = None,
    refine_top: o.RefineTop = None,
    screen: o.Screen = None,
    seed: o.Seed = 0,
    n_samples: o.NSamples = None,
    n_steps: o.NSteps = None,
    baseline: o.Baseline = None,
    option: o.ExtraOptions = None,
    per_target_token: o.PerTargetToken = False,
    faithfulness: o.Faithfulness = False,
    faithfulness_option: o.FaithfulnessOptions = None,
    top_k: o.TopK = 10,
    show_uncertainty: o.ShowUncertainty = False,
    fmt: o.FormatOpt = o.Format.text,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            help="Also write the result to a file: JSON, or HTML when the name ends in .html.",
            show_default=False,
            rich_help_panel=o.OUTPUT_PANEL,
        ),
    ] = None,
) -> None:
    """Explain one response: which units of the prompt made the model say it.

    With no --target the model first generates a response greedily, and that is explained.
    """
    messages, prompt = _input(message, system, messages_file, raw)
    target_text = _target(target, target_file)
    if contrast is not None and per_target_token:
        from ..request import CONTRAST_PER_TARGET_TOKEN

        raise typer.BadParameter(CONTRAST_PER_TARGET_TOKEN, param_hint="--per-target-token")
    if output is not None:
        from ..io.formats import result_format, result_names

        if result_format(output) is None:
            raise typer.BadParameter(f"name the file {result_names()}", param_hint="--output")
    opts = method_options(
        method,
        n_samples=n_samples,
        n_steps=n_steps,
        baseline=baseline,
        extra=option,
    )
    check = faithfulness_options(faithfulness, faithfulness_option)
    refine = refinement(method, granularity, coarse, refine_top, screen)
    if output is not None:
        from ..io.writers import ensure_writable

        ensure_writable(output)  # before the model loads, not after the work

    explainer = load_explainer(
        model_spec(
            model, device, dtype, max_length, revision, trust_remote_code, scale.parse_device_map(device_map)
        )
    )
    with status(f"explaining with {method.value} ..."):
        result = explainer.explain(
            messages,
            target_text,
            prompt=prompt,
            contrast=contrast,
            method=method,
            granularity=granularity,
            seed=seed,
            per_target_token=per_target_token,
            max_new_tokens=max_new_tokens,
            faithfulness=check,
            **refine,
            **opts,
        )
    if fmt is o.Format.json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        from ..render.terminal import render

        render(
            result,
            stdout_console(),
            top_k,
            per_target_token=per_target_token,
            model_note="built-in demo" if model is None else None,
            show_uncertainty=show_uncertainty,
        )
    if output is not None:  # after the result is shown: a failed write loses nothing on screen
        _save(output, result, top_k)


def _save(output: Path, result: AttributionResult, top_k: int) -> None:
    from ..errors import OutputError
    from ..io import write_result

    try:
        write_result(output, result, top_k=top_k)
    except OSError as exc:
        raise OutputError(
            f"could not write {output}: {exc.strerror or exc}; the result is printed above but not saved"
        ) from exc


def _input(
    message: str | None, system: str | None, messages_file: str | None, raw: bool
) -> tuple[list[dict[str, Any]] | None, str | None]:
    if messages_file is not None:
        if message is not None or system is not None or raw:
            raise typer.BadParameter(
                "give either --messages FILE or MESSAGE (with --system/--raw), not both",
                param_hint="--messages",
            )
        from ..io import read_messages

        return read_messages(messages_file), None
    if message is None:
        raise typer.BadParameter(
            "give the user message as an argument, or --messages FILE", param_hint="MESSAGE"
        )
    if raw:
        if system is not None:
            raise typer.BadParameter(
                "a raw prompt has no roles; put the system text into it", param_hint="--system"
            )
        return None, message
    messages = [{"role": "system", "content": system}] if system is not None else []
    return [*messages, {"role": "user", "content": message}], None


def _target(target: str | None, target_file: Path | None) -> str | None:
    if target is not None and target_file is not None:
        raise typer.BadParameter("give either --target or --target-file, not both", param_hint="--target")
    if target_file is None:
        return target
    return target_file.read_text(encoding="utf-8").rstrip("\n")
