"""Renderers: rich terminal heatmaps and self-contained HTML."""

from __future__ import annotations

from ..results import AttributionResult
from .html import to_html
from .terminal import render


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show(result: AttributionResult, return_html: bool = False) -> str | None:
    """HTML string if asked; HTML display in a notebook; a rich heatmap in a terminal."""
    if return_html:
        return to_html(result)
    if _in_notebook():
        from IPython.display import HTML, display

        display(HTML(to_html(result)))
        return None
    render(result)
    return None


__all__ = ["render", "show", "to_html"]
