from __future__ import annotations

import pytest

from fairforge_attr import AttributionExplainer
from fairforge_attr.models import load_model
from tests.tiny_models import tiny_gpt2, tiny_qwen3

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
FRANCE_TARGET = "The capital of France is Paris."


@pytest.fixture(scope="session")
def gpt2_pair():
    return tiny_gpt2()


@pytest.fixture(scope="session")
def qwen_pair():
    return tiny_qwen3()


@pytest.fixture(scope="session")
def demo_pair():
    return load_model(None, device="cpu")


@pytest.fixture(scope="session")
def gpt2_explainer(gpt2_pair):
    return AttributionExplainer(*gpt2_pair)


@pytest.fixture(scope="session")
def qwen_explainer(qwen_pair):
    return AttributionExplainer(*qwen_pair)


@pytest.fixture(scope="session")
def demo_explainer(demo_pair):
    return AttributionExplainer(*demo_pair)
