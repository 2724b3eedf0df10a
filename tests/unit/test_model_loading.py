"""Loading models: every failure is a ModelLoadError that says why, fast, and nothing runs that
the user did not allow (custom code, pickled objects)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fairforge_attr import AttributionExplainer, ModelLoadError
from fairforge_attr.models import load_model, model_name
from tests.model_folders import copy_folder, custom_code_folder, pickled_weights_folder, save_pair
from tests.tiny_models import tiny_qwen3

# The probe and every failure below must answer within this many seconds (no network retries).
FAST_S = 10.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_pair(tiny_qwen3(), tmp_path_factory.mktemp("tiny-qwen3-saved"))


def test_missing_folder_and_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no model folder"):
        AttributionExplainer("./does/not/exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        AttributionExplainer(str(tmp_path / "empty"))


def test_hub_id_offline_fails_fast_and_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at call time, not only when the hub library loads
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        load_model("nobody-here/no-such-model-xyz")
    assert time.monotonic() - start < FAST_S
    message = str(err.value)
    assert "HF_HUB_OFFLINE" in message and "cache" in message and "folder" in message


def test_unreachable_hub_fails_within_seconds(monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        load_model("nobody-here/no-such-model-xyz")
    assert time.monotonic() - start < FAST_S
    message = str(err.value)
    assert "cannot reach" in message and "HF_HUB_OFFLINE=1" in message and "folder" in message


def test_broken_config_json_is_named_without_a_network_hint(model_dir, tmp_path):
    folder = copy_folder(model_dir, tmp_path / "broken")
    (folder / "config.json").write_text('{"model_type": "qwen3", ')
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    message = str(err.value)
    assert "config.json" in message and "network" not in message and "HF_HUB_OFFLINE" not in message


def test_custom_code_is_refused_without_asking(model_dir, tmp_path):
    folder, marker = custom_code_folder(model_dir, tmp_path)
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)  # must not stop at transformers' "run the custom code? [y/N]"
    assert time.monotonic() - start < FAST_S
    assert "custom code" in str(err.value) and "--trust-remote-code" in str(err.value)
    assert not marker.exists()


def test_custom_code_runs_only_with_trust_remote_code(model_dir, tmp_path, monkeypatch):
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    folder, marker = custom_code_folder(model_dir, tmp_path)
    model, _ = load_model(folder, trust_remote_code=True)
    assert type(model).__name__ == "CustomForCausalLM" and marker.exists()


def test_pickled_objects_in_weights_are_refused(model_dir, tmp_path):
    folder, marker = pickled_weights_folder(model_dir, tmp_path)
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    assert "pickle" in str(err.value) and "safetensors" in str(err.value)
    assert not marker.exists()


def test_revision_and_trust_reach_transformers(model_dir, monkeypatch):
    import transformers

    seen = []

    def spy(original):
        def from_pretrained(*args, **kwargs):
            seen.append({k: kwargs.get(k) for k in ("revision", "trust_remote_code")})
            return original(*args, **kwargs)

        return from_pretrained

    monkeypatch.setattr(
        transformers.AutoTokenizer, "from_pretrained", spy(transformers.AutoTokenizer.from_pretrained)
    )
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM,
        "from_pretrained",
        spy(transformers.AutoModelForCausalLM.from_pretrained),
    )
    AttributionExplainer(str(model_dir), revision="v1.0")
    assert seen == [{"revision": "v1.0", "trust_remote_code": False}] * 2


def test_loading_prints_no_progress_bar(model_dir, capfd):
    AttributionExplainer()  # the built-in demo model
    AttributionExplainer(str(model_dir))
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out


def test_model_name_prefers_the_config_name(model_dir):
    model, _ = tiny_qwen3()
    model.name_or_path = ""
    assert model_name(model) == "Qwen3ForCausalLM"  # nothing better to record
    model.config._name_or_path = "org/tiny-qwen3"
    assert model_name(model) == "org/tiny-qwen3"
