"""One gitera process per repository at a time.

An exclusive ``flock`` on ``<git-common-dir>/gitera/process.lock``; the kernel
drops it when the holder exits or is killed, so a crash never leaves a stale
lock behind. The file names the holder so a refusal can say who it is.

Whoever takes the lock first removes the work directories a killed gitera process left
under it: those of a split or a verdict hold sealed test rows in the clear, and nothing
may read them while the next command (an iterate, say) runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gitera.core.errors import BusyError


def state_dir(common_dir: Path) -> Path:
    path = common_dir / "gitera"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@contextmanager
def exclusive(common_dir: Path, command: str) -> Iterator[None]:
    path = state_dir(common_dir) / "process.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            raise BusyError(
                f"another gitera process is working in this repository ({holder}); "
                "wait for it to finish, or stop it, then run the command again."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode(), 0)
        _sweep(state_dir(common_dir))
        yield
    finally:
        os.close(fd)  # closing releases the flock


#: The temporary work directories of commands that hold the lock (split, verdict, scoring).
WORK_DIRS = ("split-*", "verdict-*", "work/*", "worktrees/verdict-*")


def _sweep(base: Path) -> None:
    """Remove what a killed holder left: with the lock held, no gitera process uses any of it."""
    for pattern in WORK_DIRS:
        for stale in base.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"`gitera {info.get('command', '?')}`, pid {info.get('pid', '?')}, since {info.get('since', '?')}"
    except (OSError, ValueError):
        return "holder unknown"
