"""One command-mode invocation, from the rows file to its exit: the launch every executor uses.

`launch` runs on the machine that runs gitera (the local executor) and, unchanged, on a Dask
worker (adapters/evalrun/remote.py): write the shard's rows, start the harness in its own
process group, stream the result lines it appends, enforce the per-row timeout and the run's
deadline, and stop it when told to (`Cut`). Harness process set-up (argv, environment,
isolation) lives here and in evalrun/isolation.py, nowhere else.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gitera.adapters.evalrun.isolation import command_argv, finish, launch_harness
from gitera.adapters.evalrun.procs import ExitWaiter, LiveProcesses, kill_group, signal_group

TICK_S = 0.25  # how often a running shard's GITERA_OUT is read for finished rows
BUDGET_TICK_S = 0.05  # the same under a cost budget: a cost seen sooner stops the calls that would pass it sooner


@dataclass(frozen=True)
class Ended:
    """How one invocation ended, and where its files are."""

    rc: int
    timed_out: bool  # killed by gitera (by_run: at the run's deadline, else after timeout_s without a new line)
    by_run: bool
    base: Path
    by_budget: bool = False  # killed by gitera because its remaining rows would pass the cost budget

    @property
    def out_path(self) -> Path:
        return self.base / "out.jsonl"

    @property
    def stdout_path(self) -> Path:
        return self.base / "stdout.txt"

    @property
    def stderr_path(self) -> Path:
        return self.base / "stderr.txt"

    @property
    def failed(self) -> bool:
        """Crashed or hung: rows it did not write are re-run in smaller invocations (bisection)."""
        return not self.by_budget and ((self.timed_out and not self.by_run) or (not self.timed_out and self.rc != 0))


class Cut:
    """A stopper for one invocation: marks it and sends its group SIGTERM at once; its watcher
    then kills what is left, and the rows already written are kept. `reason` "budget" (the cost
    cap, or a cancelled run) or "run" (the run's deadline, seen by another machine's clock).
    `hook` is called too (the Dask executor forwards the cut to the worker running the shard)."""

    def __init__(self, hook: Callable[[str], None] | None = None) -> None:
        self.event = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.reason = "budget"
        self.hook = hook

    def __call__(self, reason: str = "budget") -> None:
        if not self.event.is_set():
            self.reason = reason
        self.event.set()
        if self.proc is not None:
            signal_group(self.proc, signal.SIGTERM)
        if self.hook is not None:
            self.hook(reason)


class Tail:
    """Complete lines appended to a file since the last call (the file may not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return data[:end].decode("utf-8", "replace").split("\n")


def launch(
    command: str, *, cwd: Path, env: Mapping[str, str], base: Path, rows_jsonl: str, trial: int,
    timeout_s: float, deadline: float | None, tick_s: float, cut: Cut, live: LiveProcesses,
    on_lines: Callable[[list[str]], bool],
) -> Ended:
    """Run `command` once on the rows in `rows_jsonl` (`/bin/sh -c`, cwd = the scoring tree).

    `env` is the harness environment without the per-invocation variables, which are added
    here (GITERA_TRIAL, GITERA_ROWS, GITERA_OUT under `base`). `on_lines` receives the new
    complete lines of GITERA_OUT while the harness runs and says whether any was for one of
    the shard's rows (the per-row timer then restarts). `deadline` is a time.monotonic() value.
    """
    base.mkdir(parents=True, exist_ok=True)
    rows_path, out_path = base / "rows.jsonl", base / "out.jsonl"
    out_path.unlink(missing_ok=True)  # a reused workdir must never feed an earlier run's lines back
    rows_path.write_text(rows_jsonl, encoding="utf-8")
    full_env = {**env, "GITERA_TRIAL": str(trial), "GITERA_ROWS": str(rows_path), "GITERA_OUT": str(out_path)}
    with (base / "stdout.txt").open("wb") as out, (base / "stderr.txt").open("wb") as err:
        if cut.event.is_set():  # stopped before it started
            return Ended(0, cut.reason == "run", cut.reason == "run", base, by_budget=cut.reason != "run")
        proc = launch_harness(command_argv(command), cwd=cwd, env=full_env, stdout=out, stderr=err)
        cut.proc = proc
        live.add(proc)
        try:
            timed_out, by_run = _watch(proc, Tail(out_path), on_lines, cut.event, timeout_s, deadline, tick_s)
            if cut.event.is_set():  # stopped: its children go too
                kill_group(proc, grace_s=0.2)
        finally:
            live.discard(proc)
            if proc.returncode is not None:
                finish(proc)  # what the invocation left running in its group dies with it
    if cut.event.is_set() and cut.reason == "run":
        return Ended(proc.returncode, True, True, base)
    return Ended(proc.returncode, timed_out, by_run, base, by_budget=cut.event.is_set())


def _watch(
    proc: subprocess.Popen[bytes], tailer: Tail, on_lines: Callable[[list[str]], bool], cut: threading.Event,
    timeout_s: float, deadline: float | None, tick: float,
) -> tuple[bool, bool]:
    """Wait for the invocation; kill it when timeout_s passes without a new result line
    (its start-up counts toward the first row) or at the run's deadline; return when it has
    been cut. Returns (timed_out, by_run)."""
    waiter = ExitWaiter(proc)
    last = time.monotonic()
    try:
        while not cut.is_set():
            end, by_run = last + timeout_s, False
            if deadline is not None and deadline < end:
                end, by_run = deadline, True
            if waiter.wait(max(0.0, min(tick, end - time.monotonic()))):
                return False, False
            if on_lines(tailer.new_lines()):
                last = time.monotonic()
            elif time.monotonic() >= end:
                kill_group(proc)
                return True, by_run
        return False, False
    finally:
        waiter.close()
