"""--address that names no running cluster: one plain error at once, never Ray's silent wait."""

from __future__ import annotations

import socket
import time

import pytest

from fairforge_attr.batch.ray_address import check_reachable
from fairforge_attr.errors import InvalidRequestError
from tests.cli.conftest import SAMPLE

pytest.importorskip("ray.data", reason="the ray extra is part of the test install (make install)")


@pytest.fixture()
def dead_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_dead_address_is_one_error_naming_it(dead_port):
    # Ray turns a loopback host into this node's address; the probe asks where Ray would connect
    with pytest.raises(InvalidRequestError, match=rf"no Ray cluster answers at [^ ]+:{dead_port}\b"):
        check_reachable(f"127.0.0.1:{dead_port}")


def test_auto_is_resolved_as_ray_resolves_it(dead_port, monkeypatch):
    """RAY_ADDRESS (or a stale ray_current_cluster file) pointing at a cluster that is gone."""
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{dead_port}")
    with pytest.raises(InvalidRequestError, match=rf"--address auto resolved to [^ ]+:{dead_port}\)"):
        check_reachable("auto")


def test_an_address_that_answers_passes():
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))  # as a head node's GCS listens
        server.listen()
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}")


def test_ray_client_addresses_are_left_to_ray():
    check_reachable("ray://nowhere.invalid:10001")  # no probe: Ray Client has its own errors


def test_the_cli_refuses_before_the_model_loads(cli, dead_port, tmp_path):
    out = tmp_path / "out.parquet"
    start = time.monotonic()
    res = cli(
        "batch", SAMPLE / "demo_batch.jsonl", out, "--backend", "ray", "--address", f"127.0.0.1:{dead_port}"
    )
    assert res.exit_code == 2, res.stderr
    assert "--address" in res.stderr and "no Ray cluster answers" in res.stderr
    assert time.monotonic() - start < 30
    assert not out.exists() and not (tmp_path / "out.parquet.partial").exists()
