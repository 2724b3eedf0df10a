"""Loading a model and its tokenizer; device and dtype; the built-in demo model.

The demo model is a tiny causal LM trained by ``scripts/train_demo_model.py`` on
``sample_data/demo_corpus.jsonl`` and shipped inside the package. It goes through the same
``from_pretrained`` path as any other model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .errors import InvalidRequestError, ModelLoadError, TokenizerTooNewError
from .hub import hub_reachable, load_error, offline_mode

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEMO_MODEL_DIR = Path(__file__).parent / "demo_model"
DEMO_MODEL_NAME = "fairforge-demo"

DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's named strategies

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto": the GPU when there is one, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise InvalidRequestError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidRequestError(
            f"device {device!r} asked for, but no CUDA GPU is visible; use --device cpu"
        )
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/"auto": float16 on GPU, float32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[dtype.lower()]
    except KeyError:
        raise InvalidRequestError(
            f"unknown dtype {dtype!r}; use one of auto, float32, float16, bfloat16"
        ) from None


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~"))
        or name.endswith("/")
        or name.count("/") > 1
        or (os.sep == "\\" and "\\" in name)
    )


def load_tokenizer(source: str, **kwargs: Any) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained(source, **kwargs)``, with the one tokenizers error users
    cannot decode (a tokenizer.json newer than the library) explained."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as exc:
        # tokenizers' serde error for a model section it cannot parse; older releases name
        # the enum ModelWrapper, newer ones ModelUntagged
        if "did not match any variant of untagged enum Model" in str(exc):
            import tokenizers

            raise TokenizerTooNewError(
                f"the tokenizer.json of {source!r} was written by a newer release of the "
                f"`tokenizers` library than the installed {tokenizers.__version__} (that is what "
                "'data did not match any variant of untagged enum ModelWrapper' means). "
                "Upgrade it: pip install -U tokenizers transformers"
            ) from exc
        raise


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """transformers draws a weight-loading bar on every load: noise for a model that loads in a
    second, and on every ``AttributionExplainer()`` in a notebook. Restored afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _resolve_source(name_or_path: str | os.PathLike | None) -> tuple[str, bool]:
    """(what to hand to from_pretrained, whether it is a local folder)."""
    source = str(name_or_path) if name_or_path is not None else str(DEMO_MODEL_DIR)
    local = Path(source).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelLoadError(
                f"{source!r} is a folder but holds no config.json; point to a Hugging Face model folder"
            )
        return str(local), True
    if _looks_like_path(source):
        raise ModelLoadError(
            f"no model folder at {source!r}; give an existing folder or a hub id like Qwen/Qwen3-0.6B"
        )
    return source, False


def resolved_model_name(name_or_path: str | os.PathLike | None) -> str:
    """The name a model loaded by :func:`load_model` reports (``model_name``), known without
    loading it: what a process that only drives workers records and compares."""
    return DEMO_MODEL_NAME if name_or_path is None else _resolve_source(name_or_path)[0]


def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    device_map: str | dict[str, Any] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local folder or a hub id.

    Args:
        name_or_path: a folder with config.json, or a hub id such as ``Qwen/Qwen3-0.6B``;
            ``None`` loads the built-in demo model.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or None/"auto".
        dtype: ``"float32"``, ``"float16"``, ``"bfloat16"``, or None/"auto".
        revision: a branch, tag or commit of a hub repository (default: its main branch).
        trust_remote_code: run Python code that the model folder or repository ships (its
            config.json ``auto_map``). Off by default: that code runs with your permissions,
            so only turn it on for models whose authors you trust.
        device_map: spread the model over several devices with accelerate (``pip install
            'fairforge-attr[multi-gpu]'``): ``"auto"`` (every visible GPU, then the CPU),
            ``"balanced"``, ``"sequential"``, or a dict from module names to devices
            (``{"model.layers.0": 0, ..., "lm_head": 1}``). Replaces ``device``.

    Returns:
        ``(model, tokenizer)``, the model in eval mode on ``device`` (or spread by
        ``device_map``).

    Raises:
        ModelLoadError: the folder or hub id cannot be loaded; the message says why (no
            network, not in the cache, custom code, pickled weights, a broken config.json).
    """
    from transformers import AutoModelForCausalLM

    source, local = _resolve_source(name_or_path)
    if device_map is not None and device is not None:
        raise InvalidRequestError(
            "give a device or a device_map, not both: a device_map says where every layer goes"
        )
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    # A hub id without network would spend a minute in retries: look only in the cache when
    # offline mode is on or the hub does not answer a single connection within seconds.
    cached_only = not local and (offline_mode() or not hub_reachable())
    if cached_only:
        kwargs["local_files_only"] = True
    placement = {} if device_map is None else {"device_map": _check_device_map(device_map)}
    try:
        with _no_progress_bar():
            tokenizer = load_tokenizer(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dt, **kwargs, **placement)
    except TokenizerTooNewError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, UnpicklingError, ...
        raise load_error(exc, source, local=local, cached_only=cached_only) from exc
    if name_or_path is None:
        model.name_or_path = DEMO_MODEL_NAME
        model.config._name_or_path = DEMO_MODEL_NAME
    if device_map is None:
        model = model.to(dev)
    return model.eval(), tokenizer


def _check_device_map(device_map: str | dict[str, Any]) -> str | dict[str, Any]:
    """accelerate does the spreading; without it transformers fails deep inside loading."""
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise InvalidRequestError(
            "a device_map needs accelerate: pip install 'fairforge-attr[multi-gpu]'"
        ) from None
    if isinstance(device_map, str) and device_map not in DEVICE_MAPS:
        raise InvalidRequestError(
            f"unknown device_map {device_map!r}; use {', '.join(DEVICE_MAPS)} or a dict of module -> device"
        )
    return device_map


def model_name(model: torch.nn.Module) -> str:
    """What results record as the model: the name it was loaded under (``config._name_or_path``,
    which ``from_pretrained`` sets), else the model's own ``name_or_path``, else its class."""
    config = getattr(model, "config", None)
    name = getattr(config, "_name_or_path", "") or getattr(model, "name_or_path", None) or ""
    return str(name) or type(model).__name__
