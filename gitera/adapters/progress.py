"""Progress of an eval run: rows done / total, ETA and cost, on one terminal line.

On a TTY it redraws one line with `\\r` (at most ~10 times a second); elsewhere (CI logs,
pipes) it prints only warnings and one final line. All methods are thread-safe.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

BAR_WIDTH = 24


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(self, stream: TextIO, *, tty: bool | None = None, min_interval_s: float = 0.1) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) if tty is None else tty
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self.label = ""
        self.total = 0
        self.done = 0
        self.cost_usd = 0.0
        self._start = time.monotonic()
        self._fresh_start = self._start
        self._fresh = 0  # rows done by real calls (cache hits do not predict the ETA)
        self._last_draw = 0.0
        self._drawn = False

    def start(self, total: int, label: str = "", done: int = 0) -> None:
        with self._lock:
            self.label, self.total, self.done, self.cost_usd = label, total, done, 0.0
            self._start = self._fresh_start = time.monotonic()
            self._fresh = 0
            self._draw(force=True)

    def advance(self, rows: int, cost_usd: float = 0.0) -> None:
        with self._lock:
            self.done += rows
            self._fresh += rows
            self.cost_usd += cost_usd
            self._draw(force=self.done >= self.total)

    def warn(self, message: str) -> None:
        with self._lock:
            self._clear()
            self.stream.write(f"gitera: warning: {message}\n")
            self.stream.flush()
            self._draw(force=True)

    def finish(self, summary: str | None = None) -> None:
        with self._lock:
            self._clear()
            elapsed = time.monotonic() - self._start
            line = summary or f"{self.label}: {self.done}/{self.total} rows in {elapsed:.1f} s, ${self.cost_usd:.4f}"
            self.stream.write(line.lstrip(": ") + "\n")
            self.stream.flush()

    def line(self) -> str:
        """The status line (without the bar): rows, percent, ETA, cost."""
        elapsed = time.monotonic() - self._fresh_start
        left = self.total - self.done
        eta = "--:--" if not self._fresh or not left else _clock(elapsed / self._fresh * left)
        pct = self.done / self.total if self.total else 1.0
        head = f"{self.label} " if self.label else ""
        return f"{head}{self.done}/{self.total} rows {pct:4.0%} ETA {eta} ${self.cost_usd:.4f}"

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval_s:
            return
        self._last_draw = now
        filled = int(BAR_WIDTH * (self.done / self.total if self.total else 1.0))
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{bar}] {self.line()}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
