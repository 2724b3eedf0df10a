"""Options for running beyond one process: ``--backend ray`` and its pool, ``--device-map``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import options as o

if TYPE_CHECKING:
    from ..batch.ray_backend import RayBatchJob
    from ..model_spec import ModelSpec

SCALE_PANEL = "Scale (--backend ray)"


class Backend(str, Enum):
    local = "local"
    ray = "ray"


BackendOpt = Annotated[
    Backend,
    typer.Option(
        case_sensitive=False,
        help="local: this process. ray: a pool of Ray Data workers, each holding the model "
        "(pip install 'fairforge-attr[ray]'); same rows, same guarantees.",
        rich_help_panel=SCALE_PANEL,
    ),
]
Address = Annotated[
    str | None,
    typer.Option(
        metavar="ADDR",
        help="Join a running Ray cluster (e.g. auto, or ray://head:10001). Default: start a local "
        "Ray sized to this machine and stop it at the end.",
        show_default=False,
        rich_help_panel=SCALE_PANEL,
    ),
]
NumWorkers = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="N",
        help="Workers (each loads the model once). Default: as many as the GPUs (or CPUs) hold.",
        show_default=False,
        rich_help_panel=SCALE_PANEL,
    ),
]
GpusPerWorker = Annotated[
    float,
    typer.Option(
        min=0,
        metavar="G",
        help="GPUs per worker; more than 1 with --device-map auto spreads a large model.",
        rich_help_panel=SCALE_PANEL,
    ),
]
CpusPerWorker = Annotated[
    float,
    typer.Option(
        min=0.01, metavar="C", help="CPUs per worker (its torch threads).", rich_help_panel=SCALE_PANEL
    ),
]
RowsPerTask = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="K",
        help="Items per Ray task. The default packs exactly the passes the local backend packs "
        "(bit-identical scores); smaller balances better on few items and loses less on a kill.",
        show_default="32, the local pack size",
        rich_help_panel=SCALE_PANEL,
    ),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", help="Show Ray's own progress bars and logs.", rich_help_panel=SCALE_PANEL),
]
DeviceMap = Annotated[
    str | None,
    typer.Option(
        metavar="MAP",
        help="Spread a model too large for one device over several (accelerate): auto, balanced, "
        'sequential, or JSON like \'{"model.layers.0": 0, "lm_head": 1}\'. Replaces --device. '
        "Needs pip install 'fairforge-attr[multi-gpu]'.",
        show_default=False,
        rich_help_panel=o.MODEL_PANEL,
    ),
]


def parse_device_map(value: str | None) -> str | dict[str, Any] | None:
    """``--device-map``: a strategy name, or a JSON object of module name -> device."""
    if value is None or not value.lstrip().startswith("{"):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON ({exc.msg})", param_hint="--device-map") from None
    return parsed


RAY_FLAGS = ("address", "num_workers", "gpus_per_worker", "cpus_per_worker", "rows_per_task", "verbose")


def check_backend_flags(ctx: typer.Context, backend: Backend) -> None:
    """The pool flags mean something only to the ray backend; with ray, Ray must be installed
    (exit 2 and how to install it, before any model loads; RayBatchJob checks --address)."""
    if backend is Backend.local:
        for name in RAY_FLAGS:
            source = ctx.get_parameter_source(name)
            # by name: typer's Context may report its own copy of click's ParameterSource enum
            if source is not None and source.name == "COMMANDLINE":
                flag = "--" + name.replace("_", "-")
                raise typer.BadParameter("applies to --backend ray only", param_hint=flag)
        return
    from ..batch.ray_backend import import_ray

    import_ray()


def ray_job(
    output: str | Path, *, spec: ModelSpec, ray_args: dict[str, Any], job_args: dict[str, Any]
) -> RayBatchJob:
    """The Ray backend's job: the driver loads the tokenizer, the workers the model."""
    from ..batch.ray_backend import RayBatchJob, RayOptions

    given = {name: value for name, value in ray_args.items() if value is not None}
    return RayBatchJob(spec, output, ray=RayOptions(**given), **job_args)


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``--shard I/N`` -> (0-based index, count); no shard is (0, 1)."""
    if shard is None:
        return 0, 1
    index, sep, count = shard.partition("/")
    if sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count):
        return int(index) - 1, int(count)
    raise typer.BadParameter(f"expected I/N with 1 <= I <= N (e.g. 2/8), got {shard!r}", param_hint="--shard")
