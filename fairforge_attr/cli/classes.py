"""The click classes behind the Typer app: --debug anywhere on the line, readable --help columns."""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup

DEBUG_FLAG = "--debug"
# Typer's rich help prints the Python type of every parameter (<str>, <bool>, <list[str]>);
# these are the words a command line speaks instead.
_METAVARS = {
    "<str>": "TEXT",
    "<int>": "INTEGER",
    "<int range>": "INTEGER",
    "<float>": "NUMBER",
    "<float range>": "NUMBER",
    "<file>": "FILE",
    "<path>": "PATH",
    "<list[str]>": "TEXT",
}


def hoist_debug(args: list[str]) -> list[str]:
    """Move ``--debug`` written after the subcommand to the front, where the root option reads
    it: every error message says "rerun with --debug", and users append it to the line they ran.
    Words after ``--`` are left alone (there ``--debug`` is data)."""
    end = args.index("--") if "--" in args else len(args)
    found = DEBUG_FLAG in args[:end]
    head = [a for a in args[:end] if a != DEBUG_FLAG]
    return ([DEBUG_FLAG] if found else []) + head + args[end:]


def _tidy(params: list[Any], ctx: Any) -> list[Any]:
    for param in params:
        if getattr(param, "_ffattr_tidy", False):
            continue
        param._ffattr_tidy = True
        if isinstance(param, TyperArgument):
            # the argument's name already says what it is; the type column only repeats it
            param.display_type_rich = lambda ctx: None
        elif getattr(param, "is_flag", False):
            param.metavar = param.metavar or ""  # a flag takes no value: nothing to show
        elif param.metavar is None:
            shown = param.display_type(ctx)
            param.metavar = _METAVARS.get(shown, shown)
    return params


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx), ctx)


class Group(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_debug(list(args)))

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx), ctx)
