"""Options shared by several commands, declared once as ``Annotated`` types."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..types import AttributionMethod, Granularity

MODEL_PANEL = "Model"
METHOD_PANEL = "Method"
OUTPUT_PANEL = "Output"
RUN_PANEL = "Run"

Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="FOLDER|HUB_ID",
        help="A local model folder or a Hugging Face hub id. Default: the built-in demo model.",
        show_default=False,
        rich_help_panel=MODEL_PANEL,
    ),
]
Revision = Annotated[
    str | None,
    typer.Option(
        metavar="REV",
        help="Branch, tag or commit of a hub model (default: its main branch).",
        show_default=False,
        rich_help_panel=MODEL_PANEL,
    ),
]
TrustRemoteCode = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Run Python code shipped with the model (auto_map in its config.json). Off by default: "
        "that code runs with your permissions, so only for models whose authors you trust.",
        rich_help_panel=MODEL_PANEL,
    ),
]
Device = Annotated[
    str | None,
    typer.Option(
        metavar="DEVICE",
        help="cpu, cuda, cuda:N or auto (the GPU when there is one).",
        show_default="auto",
        rich_help_panel=MODEL_PANEL,
    ),
]
Dtype = Annotated[
    str | None,
    typer.Option(
        metavar="DTYPE",
        help="float32, float16, bfloat16 or auto (float16 on GPU, float32 on CPU).",
        show_default="auto",
        rich_help_panel=MODEL_PANEL,
    ),
]
MaxLength = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Longest prompt + target in tokens; longer items fail. Default: the model's context.",
        show_default=False,
        rich_help_panel=MODEL_PANEL,
    ),
]

Method = Annotated[
    AttributionMethod,
    typer.Option(
        case_sensitive=False,
        metavar="NAME",
        help="Attribution method: "
        + ", ".join(m.value for m in AttributionMethod)
        + " (see: ffattr methods).",
        rich_help_panel=METHOD_PANEL,
    ),
]
GranularityOpt = Annotated[
    Granularity,
    typer.Option(
        "--granularity",
        "-g",
        case_sensitive=False,
        help="What one input unit is: a token, a word, a sentence, a paragraph (between blank lines) or a whole message.",
        rich_help_panel=METHOD_PANEL,
    ),
]
Coarse = Annotated[
    Granularity | None,
    typer.Option(
        "--coarse",
        case_sensitive=False,
        metavar="GRANULARITY",
        help="Coarse-to-fine refinement (perturbation methods): score these coarser units first "
        "(sentence, paragraph, message), then --granularity units only inside the --refine-top "
        "strongest of them; the others' units get score 0 and are marked unrefined.",
        show_default=False,
        rich_help_panel=METHOD_PANEL,
    ),
]
Screen = Annotated[
    str | None,
    typer.Option(
        "--screen",
        metavar="METHOD",
        help="Screened refinement (perturbation methods; instead of --coarse): score every unit "
        "with this gradient method first (saliency or input_x_gradient: one forward+backward "
        "pass; integrated_gradients: 8 steps), then score only its --refine-top strongest units "
        "with --method; the others get score 0 and are marked unrefined. For long inputs: "
        "hundreds of units, most of them weak.",
        show_default=False,
        rich_help_panel=METHOD_PANEL,
    ),
]
RefineTop = Annotated[
    int | None,
    typer.Option(
        "--refine-top",
        min=1,
        help="With --coarse: how many coarse units (largest |score|) to refine (default 5); with "
        "--screen: how many units (largest |screen score|) to score (default 50).",
        show_default=False,
        rich_help_panel=METHOD_PANEL,
    ),
]
Seed = Annotated[
    int,
    typer.Option(help="Seed of the random methods: same seed, same scores.", rich_help_panel=METHOD_PANEL),
]
NSamples = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Samples of lime, kernel_shap, sobol (and the noisy gradient methods).",
        show_default="the method's",
        rich_help_panel=METHOD_PANEL,
    ),
]
NSteps = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Integration steps of the methods that take them (integrated_gradients).",
        show_default="the method's",
        rich_help_panel=METHOD_PANEL,
    ),
]
Baseline = Annotated[
    str | None,
    typer.Option(
        metavar="VALUE",
        help="How a removed unit disappears: pad, unk, eos, hide (attention mask), a token id, or a one-token string.",
        show_default="pad",
        rich_help_panel=METHOD_PANEL,
    ),
]
ExtraOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        metavar="NAME=VALUE",
        help="Any other method option, as NAME=VALUE (repeatable), e.g. --option kernel_width=0.5.",
        show_default=False,
        rich_help_panel=METHOD_PANEL,
    ),
]
PerTargetToken = Annotated[
    bool,
    typer.Option(
        "--per-target-token",
        help="Also score every unit for each target token alone (a target x input matrix).",
        rich_help_panel=METHOD_PANEL,
    ),
]
Faithfulness = Annotated[
    bool,
    typer.Option(
        "--faithfulness",
        help="Also measure how well the scores predict removals: deletion/insertion AUC, "
        "comprehensiveness, sufficiency, LDS, each against random orderings (forward passes only; "
        "cost: ffattr methods).",
        rich_help_panel=METHOD_PANEL,
    ),
]
FaithfulnessOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--faithfulness-option",
        metavar="NAME=VALUE",
        help="A faithfulness setting (repeatable): n_ablations, keep_probability, n_random, top_k, seed, "
        "baseline. Implies --faithfulness.",
        show_default=False,
        rich_help_panel=METHOD_PANEL,
    ),
]
Generate = Annotated[
    bool,
    typer.Option(
        "--generate",
        help="Lines without a target: explain the model's own greedy answer (generated in "
        "batches, stored in the target column with target_generated=true). Without it they are "
        "error rows.",
        rich_help_panel=RUN_PANEL,
    ),
]
GenerateMaxNewTokens = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="With --generate: the most tokens an answer may have (default 64).",
        show_default=False,
        rich_help_panel=RUN_PANEL,
    ),
]


def check_generate(generate: bool, max_new_tokens: int | None) -> None:
    """``--max-new-tokens`` only means something with ``--generate``."""
    if max_new_tokens is not None and not generate:
        raise typer.BadParameter(
            "only lines the model answers take it: add --generate", param_hint="--max-new-tokens"
        )


ShowUncertainty = Annotated[
    bool,
    typer.Option(
        "--show-uncertainty",
        help="Add each score's standard error (± s.e.) to the top-units table: the sampling "
        "uncertainty of lime, kernel_shap, sobol, smooth_grad, square_grad, var_grad and "
        "gradient_shap (always stored in JSON/Parquet results).",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
TopK = Annotated[
    int,
    typer.Option(
        "--top-k",
        "-k",
        min=0,
        help="Rows of the top-units table (0: no table).",
        rich_help_panel=OUTPUT_PANEL,
    ),
]


class Format(str, Enum):
    text = "text"
    json = "json"


FormatOpt = Annotated[
    Format,
    typer.Option(
        "--format",
        "-f",
        case_sensitive=False,
        help="text: coloured terminal view; json: machine-readable, on stdout only.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
ResultsFile = Annotated[
    Path,
    typer.Argument(
        metavar="RESULTS",
        dir_okay=False,
        help="A result file: ffattr batch output (.parquet, .jsonl, .json) or explain --output JSON.",
        show_default=False,
    ),
]
InputJsonl = Annotated[
    Path,
    typer.Argument(
        metavar="IN.jsonl",
        exists=True,
        dir_okay=False,
        help="One JSON object per line (see ffattr batch --help).",
        show_default=False,
    ),
]
InputJsonlOrStdin = Annotated[
    Path,
    typer.Argument(
        metavar="IN.jsonl",
        help='One JSON object per line ("-": stdin, read as it arrives).',
        show_default=False,
    ),
]
ExistingFile = Annotated[
    Path,
    typer.Argument(exists=True, dir_okay=False, readable=True, show_default=False),
]
