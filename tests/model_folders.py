"""Model folders that must not load as they are: custom code, pickled weights (tests only)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path


def save_pair(pair, folder: Path) -> Path:
    model, tokenizer = pair
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


CUSTOM_CONFIG = """
from transformers import Qwen3Config
open({marker!r}, "w").write("config code ran")

class CustomConfig(Qwen3Config):
    model_type = "ffattr-custom"
"""
CUSTOM_MODEL = """
from transformers import Qwen3ForCausalLM
from .configuration_custom import CustomConfig
open({marker!r}, "w").write("model code ran")

class CustomForCausalLM(Qwen3ForCausalLM):
    config_class = CustomConfig
"""


def custom_code_folder(model_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    folder = copy_folder(model_dir, tmp_path / "custom")
    marker = tmp_path / "custom-code-ran"
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "ffattr-custom"
    config["auto_map"] = {
        "AutoConfig": "configuration_custom.CustomConfig",
        "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_custom.py").write_text(CUSTOM_CONFIG.format(marker=str(marker)))
    (folder / "modeling_custom.py").write_text(CUSTOM_MODEL.format(marker=str(marker)))
    return folder, marker


class _Payload:
    """Unpickling this would create a file: what a malicious checkpoint does, harmlessly."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def pickled_weights_folder(model_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A model folder whose only weights are a pickle that would create ``marker`` if loaded."""
    folder = copy_folder(model_dir, tmp_path / "pickled")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pickle-ran"
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"model.embed_tokens.weight": _Payload(marker)}, f)
    return folder, marker
