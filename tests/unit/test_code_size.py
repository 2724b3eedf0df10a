"""Small modules and short functions, checked so they stay that way: no module of the package
over 400 lines, no function body (docstring excluded) over 70 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import fairforge_attr

PACKAGE = Path(fairforge_attr.__file__).parent
MAX_MODULE_LINES = 400
MAX_BODY_LINES = 70


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    has_docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    first = body[1] if has_docstring and len(body) > 1 else body[0]
    return (node.end_lineno or first.lineno) - first.lineno + 1


def test_modules_are_small():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules (> {MAX_MODULE_LINES} lines): {long}"


def test_functions_are_short():
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and _body_lines(node) > MAX_BODY_LINES
            ):
                long[f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}"] = _body_lines(node)
    assert not long, f"split these functions (body > {MAX_BODY_LINES} lines): {long}"


def test_the_checks_can_fail():
    tree = ast.parse("def f():\n    'doc'\n" + "    x = 1\n" * (MAX_BODY_LINES + 1))
    assert _body_lines(tree.body[0]) == MAX_BODY_LINES + 1
