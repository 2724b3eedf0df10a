"""Lists that must agree, checked so they cannot drift apart: the registry and the enum, the
three export lists of the package's lazy ``__init__``; and the library runs without captum."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fairforge_attr
from fairforge_attr.methods.registry import REGISTRY, SPECS
from fairforge_attr.types import AttributionMethod

INIT = Path(fairforge_attr.__file__)


def test_the_registry_is_the_enum():
    assert set(REGISTRY) == set(AttributionMethod)
    assert len(SPECS) == len(REGISTRY)  # no method registered twice
    for method, spec in REGISTRY.items():
        assert spec.method is method


def _type_checking_imports() -> set[str]:
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    names |= {(alias.asname or alias.name) for alias in stmt.names}
    return names


def test_the_three_export_lists_agree():
    lazy = set(fairforge_attr._EXPORTS)
    assert lazy == _type_checking_imports()
    assert lazy | {"__version__"} == set(fairforge_attr.__all__)
    for name in lazy:  # each lazy name resolves, from the module it is said to live in
        assert getattr(fairforge_attr, name) is getattr(
            __import__(f"fairforge_attr.{fairforge_attr._EXPORTS[name]}", fromlist=[name]), name
        )


def test_the_library_runs_without_captum():
    code = (
        "import sys; sys.modules['captum'] = None\n"  # any import of captum now fails
        "from fairforge_attr import AttributionExplainer\n"
        "e = AttributionExplainer()\n"
        "chat = [{'role': 'user', 'content': 'Hi'}]\n"
        "e.explain(chat, 'Hello.', method='integrated_gradients', n_steps=2)\n"
        "e.explain(chat, 'Hello.', method='occlusion')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
