"""The spend journal: every cost a harness reports, written down before gitera counts it (issue 12).

`.git/gitera/spend/<tag>.jsonl` holds one line ``{"frame": <frame hash>, "usd": <cost>}`` per
batch of results that carry a cost, appended with one ``write(2)`` to a file opened with
O_APPEND, before the cost reaches the run's total, the budget or any trailer. The kernel holds
the line once the call returns, so a ``kill -9`` of gitera loses no reported cost (a power cut
may lose the last lines: they are not fsynced). The next command's budget counts the larger of
the trailers' spend and the journal's (gitera.domain.scoring.spent_so_far), so the spend of a
killed run is charged although no commit recorded it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class SpendJournal:
    """Appends costs for one experiment (one frame hash) to its journal; call it with each cost."""

    def __init__(self, path: Path, frame: str) -> None:
        self.path = path
        self.frame = frame
        self._fd: int | None = None

    def __call__(self, usd: float) -> None:
        if not usd > 0:
            return
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, (json.dumps({"frame": self.frame, "usd": usd}) + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def journal_total(path: Path, frame: str) -> float:
    """What the journal records for the experiment with this frame hash (0 without a journal)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 0.0
    total = 0.0
    for line in text.split("\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by a full disk, or an edit
        usd = entry.get("usd") if isinstance(entry, dict) and entry.get("frame") == frame else None
        if isinstance(usd, (int, float)) and not isinstance(usd, bool) and 0 < usd < float("inf"):
            total += usd
    return total
