"""What ``ffattr methods`` prints, without importing torch: ``catalog.json``, the registry
described as plain data.

The registry (``registry.py``) stays the one source: the catalog is generated from it
(``python -m fairforge_attr.methods.catalog``), and a test fails when the two differ. Reading
the registry itself costs 4-10 s of torch and transformers imports, for a table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).with_name("catalog.json")


def describe(spec: Any) -> dict[str, Any]:
    """One registry entry as plain data (what --format json prints)."""
    from ..faithfulness import cost_formula

    fields = spec.options_model.model_fields
    return {
        "method": spec.method.value,
        "family": spec.family.value,
        "summary": spec.summary,
        "cost": spec.cost,
        "paper": spec.paper,
        "has_convergence_delta": spec.has_convergence_delta,
        "uses_seed": spec.uses_seed,
        "faithfulness_cost": cost_formula(),
        "options": {
            name: {"default": f.get_default(call_default_factory=True), "description": f.description or ""}
            for name, f in fields.items()
        },
    }


def load_catalog() -> list[dict[str, Any]]:
    """One entry per method, in registry order (``describe`` says the fields)."""
    return json.loads(CATALOG.read_text(encoding="utf-8"))


def build_catalog() -> list[dict[str, Any]]:
    """The catalog as the registry says it now (imports torch)."""
    from .registry import REGISTRY

    return json.loads(json.dumps([describe(spec) for spec in REGISTRY.values()], default=str))


def write_catalog() -> None:
    CATALOG.write_text(json.dumps(build_catalog(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_catalog()
    sys.stdout.write(f"wrote {CATALOG}\n")
