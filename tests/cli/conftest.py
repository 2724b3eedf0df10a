"""CLI fixtures: tiny models saved to folders (so commands load them like any model), a runner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairforge_attr.cli import app
from tests.tiny_models import tiny_gpt2, tiny_qwen3

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
FRANCE = "What is the capital of France?"
PARIS = "The capital of France is Paris."


def _save(pair, folder: Path) -> str:
    model, tokenizer = pair
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def qwen_dir(tmp_path_factory) -> str:
    """Qwen3 architecture with a ChatML template, context 1024 tokens."""
    return _save(tiny_qwen3(), tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> str:
    """GPT-2 architecture, no chat template (the plain fallback format)."""
    return _save(tiny_gpt2(), tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture()
def cli(monkeypatch):
    """invoke(*args, input=None, env=None) -> click Result; stdout and stderr kept apart."""
    monkeypatch.delenv("FFATTR_DEBUG", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    runner = CliRunner()

    def invoke(*args, input=None, env=None):
        return runner.invoke(app, [str(a) for a in args], input=input, env=env)

    return invoke


def unmarked(text: str) -> str:
    """Terminal output without the [+n.nn] scores that follow the strongest units when colour is
    off (so a message can be found verbatim)."""
    import re

    return re.sub(r"\[[+-]\d\.\d\d\]", "", text)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def ffattr_command() -> list[str]:
    """The installed console script next to this interpreter (CI: pip install -e .), else the
    same entry point through ``python -m``."""
    import sys

    script = Path(sys.executable).parent / ("ffattr.exe" if os.name == "nt" else "ffattr")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fairforge_attr"]
