"""The ``ffattr`` command line: a Typer app with one module per command.

A command parses its flags, calls the library and renders; attribution logic lives in the
library (``fairforge_attr.api``).
"""

from .app import app, main

__all__ = ["app", "main"]
