"""Is a Ray cluster answering at ``--address``? Asked before joining it.

``ray.init(address=...)`` waits in Ray's own reconnect loop, silently and for many minutes, when
the address names no running cluster: a typo, a stopped head node, or ``auto`` reading a
``ray_current_cluster`` file that a cluster which is gone left behind. One TCP probe of the GCS
port turns that into one plain error line.
"""

from __future__ import annotations

import socket

from ..errors import InvalidRequestError

PROBE_TIMEOUT_S = 5.0


def resolve_address(address: str) -> str | None:
    """host:port of the GCS that ``ray.init(address=address)`` would join (``auto`` resolved the
    way Ray does it: RAY_ADDRESS, then the last ``ray start`` on this machine); None where Ray
    itself decides (Ray Client ``ray://`` addresses, or when Ray finds nothing: its own error
    then says so at once)."""
    if address.startswith("ray://"):
        return None
    try:  # Ray's own resolution, so "auto" means here what it means to ray.init
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # a Ray without it: let ray.init decide
        return None
    try:
        return canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError):
        return None


def check_reachable(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise an InvalidRequestError naming the address when nothing answers on its port."""
    resolved = resolve_address(address)
    if resolved is None:
        return
    host, _, port = resolved.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        via = "" if resolved == address else f" (--address {address} resolved to {resolved})"
        raise InvalidRequestError(
            f"no Ray cluster answers at {resolved}{via}: {exc}. Start one with `ray start --head`, "
            "give the address of a running one, or leave --address out to start a local Ray"
        ) from None
