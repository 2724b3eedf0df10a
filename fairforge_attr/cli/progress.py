"""Batch progress on stderr: a live bar on a terminal, periodic plain log lines otherwise."""

from __future__ import annotations

import time
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

LOG_EVERY_S = 10.0


class BatchProgress:
    """Counts items: computed (ok or failed) and skipped (already in the output: --resume).
    Speed and ETA count computed items only."""

    def __init__(
        self,
        total: int | None,
        console: Console,
        *,
        live: bool | None = None,
        label: str = "ffattr batch",
        unit: str = "items",
    ) -> None:
        self.total = total
        self.label, self.unit = label, unit
        self.console = console
        self.ok = self.failed = self.skipped = 0
        self._start = time.monotonic()
        self._last_log = self._start
        self._live = console.is_terminal if live is None else live
        self._bar: Progress | None = None
        if self._live:
            self._bar = Progress(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA {task.fields[eta]}"),
                TextColumn("[red]{task.fields[failed]}"),
                console=console,
                refresh_per_second=4,
            )
            self._task = self._bar.add_task("items", total=total, rate="", eta="-", failed="")
            self._bar.start()

    @property
    def done(self) -> int:
        return self.ok + self.failed + self.skipped

    def rate(self) -> float:
        elapsed = time.monotonic() - self._start
        return (self.ok + self.failed) / elapsed if elapsed > 0 else 0.0

    def eta(self) -> str:
        rate = self.rate()
        if rate <= 0 or self.total is None:
            return "-"
        return str(timedelta(seconds=round(max(self.total - self.done, 0) / rate)))

    def update(self, *, ok: int = 0, failed: int = 0, skipped: int = 0) -> None:
        self.ok += ok
        self.failed += failed
        self.skipped += skipped
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=self.done,
                rate=f"{self.rate():.1f} {self.unit}/s",
                eta=self.eta(),
                failed=f"{self.failed} failed" if self.failed else "",
            )
        elif time.monotonic() - self._last_log >= LOG_EVERY_S:
            self._last_log = time.monotonic()
            self.console.print(self.line(), soft_wrap=True, highlight=False)

    def line(self) -> str:
        extra = f", {self.skipped} already done" if self.skipped else ""
        done = f"{self.done}" if self.total is None else f"{self.done}/{self.total}"
        eta = "" if self.total is None else f" · ETA {self.eta()}"  # stdin: no total, no ETA
        return f"{self.label}: {done} {self.unit} ({self.failed} failed{extra}) · {self.rate():.1f} {self.unit}/s{eta}"

    def log(self, message: str, style: str | None = None) -> None:
        """A line above the bar (or in the log)."""
        console = self._bar.console if self._bar is not None else self.console
        console.print(message, style=style, soft_wrap=True, highlight=False, markup=False)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
