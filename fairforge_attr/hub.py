"""Where a model comes from (a local folder or the Hugging Face hub), and what to tell the user
when it cannot be loaded.

Left alone, ``from_pretrained`` spends 60-76 s in retries when a hub id is given to a machine
without network, and asks "run the custom code? [y/N]" on the terminal for a repository that
ships Python. So a hub id is first checked against the hub with one short connection (a
missing network fails in seconds), offline mode is read from the environment at call time, and
custom code is refused unless the caller trusts it.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
from urllib.parse import urlsplit

from .errors import ModelLoadError

PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "on", "yes", "true"}


def offline_mode() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE as set now (the hub library reads them only once,
    when it is imported)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().lower() in _TRUE


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether one TCP connection to the hub opens within ``timeout`` seconds. The name lookup
    runs in a helper thread because ``getaddrinfo`` has no timeout of its own."""
    url = urlsplit(hub_endpoint())
    host = url.hostname or ""
    port = url.port or (80 if url.scheme == "http" else 443)
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, name="ffattr-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return seen


def load_error(exc: Exception, source: str, *, local: bool, cached_only: bool) -> ModelLoadError:
    """The ModelLoadError that says why ``source`` could not be loaded and what to do.

    ``cached_only``: the load looked only at the local cache (offline mode, or the hub did not
    answer), so a missing file means the model was never downloaded here.
    """
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    if "contains custom code" in text or "trust_remote_code=True" in text:
        return ModelLoadError(
            f"{source!r} ships custom code (Python named by auto_map in config.json), which was not run. "
            "If you trust its authors, pass --trust-remote-code (Python: trust_remote_code=True): "
            "that code then runs with your permissions."
        )
    if any(isinstance(e, pickle.UnpicklingError) for e in chain) or "Weights only load failed" in text:
        return ModelLoadError(
            f"the weights of {source!r} are a pickle that holds more than tensors; they were not "
            "loaded, because unpickling can run arbitrary code. Use a safetensors copy of the model "
            "(model.safetensors)."
        )
    if "config file" in text and ("valid JSON" in text or "JSON" in type(exc).__name__):
        return ModelLoadError(f"the config.json of {source!r} is not valid JSON; repair or replace it")
    if local:
        return ModelLoadError(f"could not load the model folder {source!r}: {type(exc).__name__}: {exc}")
    if cached_only:
        if offline_mode():
            return ModelLoadError(
                f"{source!r} is not in the local Hugging Face cache, and HF_HUB_OFFLINE is set, so the "
                "hub was not asked. Download it where there is network (hf download "
                f"{source}), or pass a model folder."
            )
        return ModelLoadError(
            f"cannot reach the model hub ({hub_endpoint()}) within {PROBE_TIMEOUT_S:g} s, and "
            f"{source!r} is not in the local cache. Set HF_HUB_OFFLINE=1 to use only the cache, or "
            "download the model elsewhere and pass its folder."
        )
    return ModelLoadError(f"could not load {source!r} from the hub: {exc}")
