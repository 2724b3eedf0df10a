"""Timing and peak memory of one call.

Time: wall-clock seconds of the call (``time.perf_counter``; on a GPU after a synchronise),
the median over repeats; the process's CPU seconds are kept beside it, since on a shared
machine they say how much of the wall time was this process's own work.

Peak memory:
- GPU: ``torch.cuda.max_memory_allocated`` during the call minus what was allocated before
  it (the peak extra device memory the call needed).
- CPU: the peak resident set size during the call minus the one just before it. glibc is
  told to map every buffer of 128 KiB or more on its own and unmap it when freed
  (``mallopt(M_MMAP_THRESHOLD)``; by default it grows that threshold and keeps freed blocks,
  so RSS would count the allocator's cache, not live tensors); before the call the heap is
  trimmed (``malloc_trim``), then a thread samples ``/proc/self/statm`` every millisecond. Sampling can miss a peak shorter than a
  millisecond; torch's large CPU buffers live far longer than that. Where ``/proc`` is
  missing (macOS), the process's lifetime ``ru_maxrss`` is reported instead, flagged.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _libc()
_M_MMAP_THRESHOLD = -3


def track_live_memory() -> bool:
    """Make RSS follow live buffers (see the module doc); True where glibc took it."""
    return bool(_LIBC is not None and _LIBC.mallopt(_M_MMAP_THRESHOLD, 128 * 1024))


def _rss() -> int:
    with open(_STATM) as f:
        return int(f.read().split()[1]) * _PAGE


class _RssSampler:
    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    memory_method: str = ""
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.median,
            "runs": [round(s, 4) for s in self.seconds],
            "cpu_seconds": statistics.median(self.cpu_seconds),
            "peak_memory_mb": None if self.peak_bytes is None else round(self.peak_bytes / 2**20, 1),
            "memory_method": self.memory_method,
            **self.counts,
        }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _settle(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif _LIBC is not None:
        _LIBC.malloc_trim(0)


def measure_once(fn: Callable[[], Any], device: torch.device, timing: Timing, memory: bool) -> Any:
    """Run ``fn`` once, append its time to ``timing``; with ``memory``, record its peak."""
    _settle(device)
    _sync(device)
    if memory and device.type == "cuda":
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    cpu0, t0 = time.process_time(), time.perf_counter()
    if memory and device.type != "cuda" and os.path.exists(_STATM):
        with _RssSampler() as sampler:
            base = sampler.peak
            out = fn()
            _sync(device)
        timing.peak_bytes, timing.memory_method = sampler.peak - base, "rss-delta"
    else:
        out = fn()
        _sync(device)
        if memory and device.type == "cuda":
            timing.peak_bytes = torch.cuda.max_memory_allocated(device) - before
            timing.memory_method = "cuda-max-allocated-delta"
        elif memory:
            timing.peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            timing.memory_method = "ru_maxrss-lifetime"
    timing.seconds.append(time.perf_counter() - t0)
    timing.cpu_seconds.append(time.process_time() - cpu0)
    return out
