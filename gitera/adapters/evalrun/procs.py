"""Waiting for and killing harness processes (started by gitera.adapters.evalrun.isolation in their
own process group, so a hung eval dies with all its children)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from gitera.adapters.evalrun.isolation import finish, launch_harness

KILL_GRACE_S = 1.0  # between SIGTERM and SIGKILL: lets a harness flush its output file


class ExitWaiter:
    """Waits for a process to exit with a timeout, without polling where Linux allows.

    Popen.wait(timeout) polls with growing sleeps, so a 25 ms process was noticed only
    after ~60 ms; a pidfd turns the wait into one blocking select.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        try:
            self.fd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.fd = None

    def wait(self, timeout: float) -> bool:
        """True once the process has exited (and been reaped)."""
        if self.fd is not None and self.proc.returncode is None:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
            if not ready:
                return False
            self.proc.wait()
            return True
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send `sig` to the process's group without waiting (nothing if the process is already reaped)."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is left (children that ignored it too)."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    proc.wait()
    finish(proc)  # the leader is gone; a child that ignored SIGTERM may still hold the group


class LiveProcesses:
    """Processes of one run still running, so an interrupt can kill every group."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self.cancelled = False  # kill_all ran: what exits now was killed by us, not failing

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            self.cancelled = True
            procs = list(self._procs)
        for proc in procs:
            kill_group(proc, grace_s=0.2)


def tail(path: Path, lines: int = 20, limit: int = 2000) -> str:
    """The last lines of a log file (stderr of a crashed eval), bounded in size."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    out = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return out[-limit:]


def run_group(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout_s: float,
              output: tuple[Path, Path]) -> tuple[int | None, str, str]:
    """(exit code, or None on the timeout; stdout; stderr) of a command run as its own process
    group, its output kept in the two ``output`` files: at the timeout or an interrupt the whole
    group is killed, children included."""
    with output[0].open("wb") as out, output[1].open("wb") as err:
        proc = launch_harness(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        try:
            code: int | None = proc.wait(timeout=timeout_s)
            finish(proc)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            code = None
        except BaseException:
            kill_group(proc, grace_s=0.2)
            raise
    stdout, stderr = (p.read_text(encoding="utf-8", errors="replace") for p in output)
    return code, stdout, stderr
