"""Sizing the Ray backend's pool (no Ray needed)."""

from __future__ import annotations

import pytest

from fairforge_attr.batch.ray_backend import RayOptions
from fairforge_attr.errors import InvalidRequestError


def test_the_default_pool_fills_the_resources():
    assert RayOptions().workers_for({"CPU": 8.0}) == 8
    assert RayOptions(cpus_per_worker=3).workers_for({"CPU": 8.0}) == 2
    assert RayOptions(gpus_per_worker=1).workers_for({"CPU": 64.0, "GPU": 4.0}) == 4
    assert RayOptions(gpus_per_worker=2).workers_for({"CPU": 64.0, "GPU": 4.0}) == 2  # a model over 2 GPUs


def test_a_pool_that_cannot_fit_a_local_ray_is_refused():
    with pytest.raises(InvalidRequestError, match=r"no worker fits.*GPU"):
        RayOptions(gpus_per_worker=1).workers_for({"CPU": 2.0})
    with pytest.raises(
        InvalidRequestError, match="--num-workers 4 x 1 CPU each needs 4 CPUs; this machine has 2"
    ):
        RayOptions(num_workers=4).workers_for({"CPU": 2.0})
    assert RayOptions(num_workers=4, cpus_per_worker=0.5).workers_for({"CPU": 2.0}) == 4
    # a cluster may autoscale: its pool is Ray's to schedule
    assert RayOptions(num_workers=4, address="auto").workers_for({"CPU": 2.0}) == 4
