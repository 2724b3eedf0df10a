"""Attribution methods and the registry that names them.

The registry is imported on first use: it pulls in torch, and ``ffattr methods`` reads only
``catalog.json`` (see ``catalog.py``), which must not pay seconds for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["REGISTRY", "Family", "MethodSpec", "get_method"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module(".registry", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
