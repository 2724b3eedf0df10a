"""The Typer app: global options, and one command per module."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from . import batch, check, diff, evaluate, explain, merge, methods, report, show
from .classes import Command, Group
from .common import State

app = typer.Typer(
    name="ffattr",
    help="Which parts of the input made a language model say this? Token, word and sentence "
    "attribution of a causal LM's response to its prompt.",
    epilog="Start with: ffattr explain --help. Every command has examples in its --help.",
    no_args_is_help=True,
    cls=Group,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ffattr (fairforge_attr) {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool | None,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show tracebacks of unexpected errors (also: FFATTR_DEBUG=1); may also follow the command.",
        ),
    ] = False,
) -> None:
    State.debug = debug


app.command("explain", cls=Command, epilog=explain.EPILOG)(explain.explain)
app.command("batch", cls=Command, epilog=batch.EPILOG)(batch.batch)
app.command("merge", cls=Command, epilog=merge.EPILOG)(merge.merge)
app.command("show", cls=Command, epilog=show.EPILOG)(show.show)
app.command("methods", cls=Command, epilog=methods.EPILOG)(methods.methods)
app.command("evaluate", cls=Command, epilog=evaluate.EPILOG)(evaluate.evaluate)
app.command("check", cls=Command, epilog=check.EPILOG)(check.check)
app.command("diff", cls=Command, epilog=diff.EPILOG)(diff.diff)
app.command("report", cls=Command, epilog=report.EPILOG)(report.report)


def main() -> None:
    """The ``ffattr`` console script."""
    app(prog_name="ffattr")
