"""device_map (accelerate) on CPU: a model placed by a map, split across entries, or run
through accelerate's hooks (layers offloaded to disk) scores exactly as a plain load; bfloat16
runs; chunks are sized by the smallest free memory."""

from __future__ import annotations

import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from fairforge_attr import AttributionExplainer, InvalidRequestError
from fairforge_attr.engine.devices import (
    activation_bytes_per_token,
    fitting_token_budget,
    input_device,
    mapped_devices,
    token_budget_for,
)
from fairforge_attr.models import DEMO_MODEL_DIR, load_tokenizer
from tests.conftest import FRANCE, FRANCE_TARGET

METHODS = ["occlusion", "lime", "integrated_gradients", "saliency"]


def _scores(explainer, method):
    options = {"n_samples": 24} if method == "lime" else {}
    result = explainer.explain(FRANCE, FRANCE_TARGET, method=method, **options)
    return [a.score for a in result.attributions], result


@pytest.fixture(scope="module")
def plain():
    return AttributionExplainer(device="cpu")


def _split_map(model):
    """Every layer its own entry: the shape of a map over several devices."""
    n = model.config.num_hidden_layers
    return {
        "model.embed_tokens": "cpu",
        **{f"model.layers.{i}": "cpu" for i in range(n)},
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
        "lm_head": "cpu",
    }


@pytest.mark.parametrize("device_map", [{"": "cpu"}, "split"], ids=["one-entry", "split"])
def test_a_device_map_scores_like_a_plain_load(plain, device_map):
    if device_map == "split":
        device_map = _split_map(plain.model)
    mapped = AttributionExplainer(device_map=device_map)
    assert mapped.engine.device == torch.device("cpu")
    for method in METHODS:
        assert _scores(mapped, method)[0] == _scores(plain, method)[0], method


def test_layers_behind_accelerate_hooks_score_like_a_plain_load(plain, tmp_path):
    """Layers offloaded to disk run through accelerate's hooks (weights on the meta device,
    brought in per forward): the path of a model spread over GPUs and CPU."""
    device_map = _split_map(plain.model)
    device_map["model.layers.1"] = device_map["model.layers.3"] = "disk"
    model = AutoModelForCausalLM.from_pretrained(
        DEMO_MODEL_DIR, dtype=torch.float32, device_map=device_map, offload_folder=tmp_path
    )
    assert model.model.layers[1].self_attn.q_proj.weight.device.type == "meta"
    hooked = AttributionExplainer(model, load_tokenizer(str(DEMO_MODEL_DIR)))
    assert input_device(model) == torch.device("cpu") and mapped_devices(model) == [torch.device("cpu")]
    for method in METHODS:  # perturbation (inference mode) then gradients: both through the hooks
        assert _scores(hooked, method)[0] == _scores(plain, method)[0], method


def test_bfloat16_runs_and_stays_close_to_float32(plain):
    half = AttributionExplainer(device="cpu", dtype="bfloat16")
    scores, result = _scores(half, "occlusion")
    reference, _ = _scores(plain, "occlusion")
    assert result.metadata.dtype.endswith("bfloat16")
    top = max(range(len(reference)), key=lambda i: reference[i])
    assert max(range(len(scores)), key=lambda i: scores[i]) == top  # same strongest unit
    assert max(abs(a - b) for a, b in zip(scores, reference)) < 0.1 * max(map(abs, reference))


def test_chunks_fit_the_device_with_the_least_free_memory():
    per_token = 4 * (1024 + 4096) * 2  # a 1024-wide float16 model: 40 KiB per token
    assert fitting_token_budget(65536, [], per_token) == 65536  # no GPU: unchanged
    assert fitting_token_budget(65536, [80 << 30, 80 << 30], per_token) == 65536  # room to spare
    # the smallest free memory decides: 2 GiB of it, half for one chunk's activations
    assert fitting_token_budget(65536, [80 << 30, 2 << 30], per_token) == (1 << 30) // per_token
    assert fitting_token_budget(65536, [1 << 20], per_token) == 1024  # never below the floor

    class Config:
        hidden_size, intermediate_size = 1024, 4096

    assert activation_bytes_per_token(Config(), torch.float16) == per_token


def test_a_model_on_one_device_keeps_its_budget(plain):
    assert token_budget_for(plain.model, 4096) == 4096
    assert mapped_devices(plain.model) == []


def test_device_map_errors_say_what_to_do(monkeypatch):
    with pytest.raises(InvalidRequestError, match="not both"):
        AttributionExplainer(device="cpu", device_map="auto")
    with pytest.raises(InvalidRequestError, match="unknown device_map 'everywhere'"):
        AttributionExplainer(device_map="everywhere")
    monkeypatch.setitem(sys.modules, "accelerate", None)  # not installed
    with pytest.raises(InvalidRequestError, match=r"pip install 'fairforge-attr\[multi-gpu\]'"):
        AttributionExplainer(device_map="auto")


def test_cli_device_map_flag(cli_runner_app, tmp_path):
    runner, app = cli_runner_app
    res = runner.invoke(
        app,
        ["explain", "What is the capital of France?", "-t", "The capital of France is Paris.",
         "--method", "occlusion", "--device-map", '{"": "cpu"}', "--format", "json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["explain", "Hi", "-t", "Yo", "--device-map", "{nope"])
    assert res.exit_code == 2 and "--device-map" in res.stderr


@pytest.fixture()
def cli_runner_app():
    from typer.testing import CliRunner

    from fairforge_attr.cli import app

    return CliRunner(), app


def test_inputs_go_where_the_input_embeddings_execute():
    """An offloaded embedding keeps its weight on the meta device; accelerate's hook says where
    it runs (a GPU index in a map: cuda:N)."""

    class Hook:
        execution_device = 1

    embeddings = torch.nn.Embedding(4, 2, device="meta")
    model = torch.nn.Module()
    model.get_input_embeddings = lambda: embeddings
    assert input_device(model) == torch.device("meta")  # what the first weight would say
    embeddings._hf_hook = Hook()
    assert input_device(model) == torch.device("cuda:1")
    model.hf_device_map = {"model.embed_tokens": 1, "model.layers.0": 1, "model.layers.1": "cpu", "x": "disk"}
    assert mapped_devices(model) == [torch.device("cuda:1"), torch.device("cpu")]
