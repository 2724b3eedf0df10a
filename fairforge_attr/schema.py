"""The batch output schema moved to :mod:`fairforge_attr.io.schema`; this module keeps the
earlier import path (``from fairforge_attr.schema import row_to_result``) working."""

from .io.schema import *  # noqa: F403
from .io.schema import __all__  # noqa: F401
