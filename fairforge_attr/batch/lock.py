"""One batch run per output at a time: ``OUT.lock``.

Two runs on one OUT used to both exit 0 while the second replaced the first's store with an
empty one (0 of 61 items written). The lock is an advisory ``flock`` on ``OUT.lock``, which
the operating system drops when its holder exits, however it exits; the file also says who
holds it (pid, host, start time), so a refused run can name the other one. A lock file that
nobody holds was left by a run that was killed: it is stale, taken over, and said so.

Where ``fcntl`` is missing (Windows) the file is created exclusively instead, and a lock
whose pid no longer runs on this host counts as stale.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..errors import InvalidRequestError, OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

ATTEMPTS = 3  # the holder may unlink the file between our open and our flock: try again


def lock_path(output: str | Path) -> Path:
    out = Path(output)
    return out.with_name(out.name + ".lock")


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "a process that has not said who it is yet"
    return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"


def _read(fd: int) -> dict[str, Any] | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        info = json.loads(data.decode("utf-8")) if data.strip() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _read_soon(fd: int, wait_s: float = 0.5) -> dict[str, Any] | None:
    """The holder writes who it is right after it takes the lock: give it that moment."""
    deadline = time.monotonic() + wait_s
    info = _read(fd)
    while info is None and time.monotonic() < deadline:
        time.sleep(0.02)
        info = _read(fd)
    return info


def _pid_runs(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


class OutputLock:
    """``acquire()`` takes the lock of ``output`` or raises InvalidRequestError naming the run
    that holds it; ``release()`` gives it back and removes the file."""

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.path = lock_path(output)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock now (pid, host, started), or None when nobody does."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return _read_soon(fd) or {}
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
            info = _read(fd)
            return info if info and _pid_runs(info.get("pid")) else None
        finally:
            os.close(fd)

    def refusal(self, info: dict[str, Any] | None) -> InvalidRequestError:
        return InvalidRequestError(
            f"{self.output} is being written by another ffattr batch run ({_describe(info)}; lock "
            f"{self.path}); wait for it to finish or stop it. Two runs on one output would overwrite "
            "each other's results."
        )

    def acquire(self) -> str | None:
        """Take the lock. Returns a note when a stale lock (its run was killed) was taken over."""
        if self._fd is not None:
            return None
        for _ in range(ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(
                    f"cannot write next to {self.output}: {exc.strerror or exc} ({self.path}); "
                    "nothing was computed"
                ) from exc
            note = self._take(fd)
            if self._fd is not None:
                return note
        raise self.refusal(None)

    def _take(self, fd: int) -> str | None:
        """Lock the open ``fd`` and write who we are; on success ``self._fd`` is set."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_soon(fd)
                os.close(fd)
                raise self.refusal(info) from None
            try:  # the holder may have removed this file after we opened it: it is not the lock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                return None
        else:  # pragma: no cover - Windows
            info = _read(fd)
            if info and _pid_runs(info.get("pid")) and info.get("host") == socket.gethostname():
                os.close(fd)
                raise self.refusal(info)
        previous = _read(fd)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode("utf-8"))
        self._fd = fd
        if previous:
            return (
                f"took over a stale lock of {self.output} ({_describe(previous)}): that run ended "
                "without releasing it (killed?); what it finished is kept"
            )
        return None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None
