"""What every command shares: consoles, error reporting and exit codes, method options."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from typer.exceptions import TyperException

from ..errors import FairForgeError

if TYPE_CHECKING:
    from ..api import AttributionExplainer
    from ..model_spec import ModelSpec
    from ..types import AttributionMethod

# Exit codes: 0 success, 1 some items failed / unexpected error, 2 usage or input error.
EXIT_FAILED = 1
EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])


class State:
    debug = False


def debug_enabled() -> bool:
    return State.debug or os.environ.get("FFATTR_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def stdout_console() -> Console:
    """Data goes here. Colour is off when stdout is not a terminal or NO_COLOR is set."""
    return Console()


def stderr_console() -> Console:
    """Progress, logs and errors go here."""
    return Console(stderr=True)


def fail(message: str) -> None:
    """One red line on stderr (never wrapped, so it stays greppable)."""
    stderr_console().print(Text(f"error: {message}", style="red"), soft_wrap=True)


def cli_command(fn: F) -> F:
    """A FairForgeError becomes one red line and exit code 2; anything unexpected becomes exit
    code 1, with the traceback only under --debug / FFATTR_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException):  # typer's own usage errors and exits
            raise
        except FairForgeError as exc:
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            fail(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except Exception as exc:
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
                raise typer.Exit(EXIT_FAILED) from None
            fail(
                f"unexpected {type(exc).__name__}: {exc}. Rerun with --debug (or FFATTR_DEBUG=1) "
                "to see the traceback, and please report it."
            )
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner line on stderr while something slow runs (importing torch and loading a model
    takes 8-17 s before anything else can be shown). Only on a terminal: a log file or a pipe
    gets nothing."""
    console = stderr_console()
    if not console.is_terminal:
        yield
        return
    with console.status(Text(message), spinner="dots"):
        yield


def model_spec(
    model: str | None,
    device: str | None,
    dtype: str | None,
    max_length: int | None,
    revision: str | None,
    trust_remote_code: bool,
    device_map: str | dict[str, Any] | None = None,
) -> ModelSpec:
    """The model the flags name (--model, --device, --dtype, --max-length, --revision,
    --trust-remote-code, --device-map parsed)."""
    from ..model_spec import ModelSpec

    return ModelSpec(
        model,
        device=device,
        dtype=dtype,
        device_map=device_map,
        max_length=max_length,
        revision=revision,
        trust_remote_code=trust_remote_code,
    )


def load_explainer(spec: ModelSpec) -> AttributionExplainer:
    """The library's explainer for ``spec``, with a status line meanwhile (importing torch and
    loading a model take seconds)."""
    with status(f"loading torch and {spec.model or 'the built-in demo model'} ..."):
        return spec.load()


def method_options(
    method: AttributionMethod | str,
    *,
    n_samples: int | None = None,
    n_steps: int | None = None,
    baseline: str | None = None,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """The method options the user set, checked against the registry before any model loads: a
    flag the method does not take is a usage error that names the methods that do take it."""
    from ..methods.registry import REGISTRY, get_method

    spec = get_method(method)
    given: dict[str, tuple[str, Any]] = {}
    for flag, name, value in (
        ("--n-samples", "n_samples", n_samples),
        ("--n-steps", "n_steps", n_steps),
        ("--baseline", "baseline", baseline),
    ):
        if value is not None:
            given[name] = (flag, value)
    for entry in extra or []:
        name, sep, raw = entry.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {entry!r}", param_hint="--option")
        given[name] = (f"--option {name}", _parse_value(raw))
    valid = spec.options_model.model_fields
    for name, (flag, _) in given.items():
        if name not in valid:
            takers = [m.value for m, s in REGISTRY.items() if name in s.options_model.model_fields]
            takes = ("takes: " + ", ".join(flag_of(n) for n in valid)) if valid else "takes no options"
            subject = f"{name} does" if flag.startswith("--option") else "does"
            raise typer.BadParameter(
                f"{subject} not apply to {spec.method.value}, which {takes}. "
                + (f"Methods that take it: {', '.join(takers)}." if takers else "No method takes it."),
                param_hint=flag.split()[0],
            )
    options = {name: value for name, (_, value) in given.items()}
    spec.parse_options(options)  # values out of range fail here, with the option's name
    return options


def flag_of(name: str) -> str:
    """The command-line spelling of a method option."""
    flag = "--" + name.replace("_", "-")
    return flag if name in ("n_samples", "n_steps", "baseline") else f"--option {name}=..."


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def refinement(
    method: Any, granularity: Any, coarse: Any, refine_top: int | None, screen: str | None = None
) -> dict[str, Any]:
    """``--coarse``/``--screen``/``--refine-top`` checked before any model loads (a gradient
    method, a --coarse that is not coarser than --granularity, an unknown --screen or both of
    them is a usage error)."""
    from ..errors import InvalidRequestError
    from ..methods.registry import get_method
    from ..plan import refinement_settings
    from ..types import Granularity

    try:
        coarse, top_k, picked = refinement_settings(
            get_method(method), Granularity.parse(granularity), coarse, refine_top, screen
        )
    except InvalidRequestError as exc:
        hint = "--screen" if screen is not None else "--coarse" if coarse is not None else "--refine-top"
        message = str(exc).replace("coarse_granularity", "--coarse").replace("refine_top_k", "--refine-top")
        message = re.sub(r"\bscreen\b", "--screen", message)  # not 'screened'
        raise typer.BadParameter(message, param_hint=hint) from None
    return {"coarse_granularity": coarse, "refine_top_k": top_k, "screen": picked}


def faithfulness_options(enabled: bool, entries: list[str] | None) -> dict[str, Any] | bool:
    """False, or the faithfulness settings given (validated before any model loads)."""
    if not enabled and not entries:
        return False
    from pydantic import ValidationError

    from ..faithfulness import FaithfulnessOptions

    given: dict[str, Any] = {}
    for entry in entries or []:
        name, sep, raw = entry.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise typer.BadParameter(
                f"expected NAME=VALUE, got {entry!r}", param_hint="--faithfulness-option"
            )
        given[name] = _parse_value(raw)
    try:
        FaithfulnessOptions(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        valid = ", ".join(FaithfulnessOptions.model_fields)
        raise typer.BadParameter(
            f"{problems} (settings: {valid})", param_hint="--faithfulness-option"
        ) from None
    return given or True
