from __future__ import annotations

import pytest
import torch

from fairforge_attr import AttributionExplainer
from fairforge_attr.models import load_model
from tests.tiny_models import tiny_gpt2, tiny_qwen3

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
FRANCE_TARGET = "The capital of France is Paris."


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine the thread pool's
    spinning makes them 10-30x slower; restored after the suite."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
