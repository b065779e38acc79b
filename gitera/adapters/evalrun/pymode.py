"""Python mode: `function(row, arm, trial, params)` called concurrently in a worker process."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any

from gitera.adapters.evalrun.collect import Collector
from gitera.adapters.evalrun.isolation import launch_harness, python_argv
from gitera.adapters.evalrun.model import RetryPolicy, RowId, RowResult
from gitera.adapters.evalrun.parse import interpret, utf8_text
from gitera.adapters.evalrun.procs import LiveProcesses, kill_group, tail
from gitera.adapters.evalrun.schedule import Unit

MAX_RESTARTS = 3  # a worker that keeps dying (segfault, os._exit) stops being restarted


@dataclass(frozen=True)
class Call:
    """One python-mode call: the row's key and the trial."""
    key: str
    trial: int


@dataclass
class Reply:
    """A python worker's answer to one call: its kind (ok, exc, timeout, died, fatal) and body."""
    kind: str  # "ok" | "exc" | "timeout" | "died" | "fatal"
    body: dict[str, Any] = field(default_factory=dict)


class Worker:
    """One worker process; `call` is thread-safe and waits at most `timeout` seconds."""

    def __init__(self, target: str, arm: str, params: Mapping[str, Any], checkout: Path, env: Mapping[str, str], stderr_path: Path, live: LiveProcesses, ready_timeout: float) -> None:
        source = resources.files("gitera.adapters.evalrun").joinpath("pyworker.py").read_text(encoding="utf-8")
        config = json.dumps({"target": target, "arm": arm, "params": dict(params)}, default=str)
        self._stderr: IO[bytes] = stderr_path.open("ab")
        self.stderr_path = stderr_path
        self.proc = launch_harness(python_argv(source, config), cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=self._stderr)
        self.live = live
        live.add(self.proc)
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[threading.Event, list[Reply]]] = {}
        self._next = 0
        self.dead = False
        self.fatal: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(ready_timeout):
            self.fatal = f"the python worker did not import {target} within {ready_timeout:g} s"
            self.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                message = json.loads(raw)
            except (ValueError, RecursionError):  # the worker bounds its replies' depth; never let a line stop this reader
                continue
            if "ready" in message or "fatal" in message:
                self.fatal = message.get("fatal")
                self._ready.set()
                continue
            with self._lock:
                waiter = self._pending.pop(message.get("k"), None)
            if waiter is not None:
                waiter[1].append(Reply("ok" if "ok" in message else "exc", message))
                waiter[0].set()
        self.proc.wait()
        with self._lock:
            self.dead = True
            waiters = list(self._pending.values())
            self._pending.clear()
        for event, box in waiters:
            box.append(Reply("died"))
            event.set()
        self._ready.set()

    def call(self, row: Mapping[str, Any], trial: int, timeout: float) -> Reply:
        event, box = threading.Event(), []  # type: tuple[threading.Event, list[Reply]]
        with self._lock:
            if self.dead:
                return Reply("died")
            k = self._next
            self._next += 1
            self._pending[k] = (event, box)
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write((json.dumps({"k": k, "row": row, "trial": trial}, default=str) + "\n").encode())
                self.proc.stdin.flush()
            except OSError:
                self._pending.pop(k, None)
                return Reply("died")
        if event.wait(timeout):
            return box[0]
        with self._lock:
            self._pending.pop(k, None)  # the call's thread is abandoned; the worker is killed at the end
        return Reply("timeout")

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=0.5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        kill_group(self.proc, grace_s=0.2)
        self.live.discard(self.proc)
        self._stderr.close()


class WorkerSlot:
    """The python worker of one run, restarted when it dies (at most MAX_RESTARTS times);
    the same on this machine and on a Dask worker (adapters/evalrun/remote.py)."""

    def __init__(self, target: str, arm: str, params: Mapping[str, Any], checkout: Path, env: Mapping[str, str],
                 stderr_path: Path, live: LiveProcesses, ready_timeout: float) -> None:
        self.args = (target, arm, params, checkout, env, stderr_path, live, ready_timeout)
        self._worker: Worker | None = None
        self._restarts = 0
        self._lock = threading.Lock()

    def get(self) -> Worker:
        with self._lock:
            if self._worker is not None and not self._worker.dead:
                return self._worker
            if self._worker is not None and self._worker.fatal is None:
                self._restarts += 1
            if self._worker is None or (self._worker.fatal is None and self._restarts <= MAX_RESTARTS):
                self._worker = Worker(*self.args)
            return self._worker

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.close()

    def call(self, row: Mapping[str, Any], trial: int, limit: float) -> Reply:
        """One call: the harness's reply, or "fatal" (it cannot be imported) or "died" with the
        worker's exit code and stderr tail in the body."""
        worker = self.get()
        if worker.fatal is not None:
            return Reply("fatal", {"fatal": worker.fatal})
        reply = worker.call(row, trial, limit)
        if reply.kind == "died":
            reply.body = {"code": worker.proc.poll(), "tail": tail(worker.stderr_path)}
        return reply


@dataclass
class PythonRunner:
    """Runs a python-mode harness function on one shard of rows through a python worker process."""
    target: str
    arm: str
    params: Mapping[str, Any]
    checkout: Path
    env: Mapping[str, str]
    rows: Mapping[str, Mapping[str, Any]]
    ids: Mapping[str, RowId]
    timeout_s: float
    deadline: float | None
    retry: RetryPolicy
    workdir: Path
    collector: Collector
    live: LiveProcesses
    _slot: WorkerSlot | None = None

    def __post_init__(self) -> None:  # the worker process starts at the first call (never, when a Dask worker calls)
        self._slot = WorkerSlot(self.target, self.arm, self.params, self.checkout, self.env,
                                self.workdir / "python-worker.stderr", self.live, max(self.timeout_s, 30.0))

    def close(self) -> None:
        if self._slot is not None:
            self._slot.close()

    def execute(self, unit: Unit[Call]) -> list[Unit[Call]]:
        call = unit.payload
        limit, by_run = self.timeout_s, False
        if self.deadline is not None and self.deadline - time.monotonic() < limit:
            limit, by_run = max(0.0, self.deadline - time.monotonic()), True
        assert self._slot is not None
        return self.settle(unit, self._slot.call(self.rows[call.key], call.trial, limit), limit, by_run)

    def settle(self, unit: Unit[Call], reply: Reply, limit: float, by_run: bool) -> list[Unit[Call]]:
        """Record one call's reply (here or from a Dask worker); the retry of a transient failure."""
        call = unit.payload
        row_id = self.ids[call.key]
        where = f"trial {call.trial} call for row {row_id!r}"
        if reply.kind == "fatal":
            error = f"could not load {self.target}: {reply.body.get('fatal')}"
            return self._final(unit, RowResult(row_id, call.trial, None, "crash", error=error), [f"{where}: {error}"])
        if reply.kind == "timeout":
            why = "the run timeout" if by_run else "timeout_s"
            error = f"the call did not return within {limit:g} s ({why})"
            return self._final(unit, RowResult(row_id, call.trial, None, "timeout", error=error), [f"{where}: {error}"])
        if reply.kind == "died":
            code = reply.body.get("code")
            error = f"the python worker exited with code {code} during the call; stderr tail:\n{reply.body.get('tail', '')}"
            return self._final(unit, RowResult(row_id, call.trial, None, "crash", error=error), [f"{where}: the python worker exited with code {code}"])
        if reply.kind == "exc":
            body = reply.body
            # an exception's text may hold a lone surrogate, which no UTF-8 file can take
            exc, msg, tb = (utf8_text(body.get(k, "")) for k in ("exc", "msg", "tb"))
            result = RowResult(row_id, call.trial, None, "crash", error=f"{exc}: {msg}\n{tb}".rstrip())
            if body.get("transient"):
                return self._transient(unit, result)
            return self._final(unit, result, [f"{where}: raised {exc}: {msg}"])
        value = reply.body.get("ok")
        measured = float(reply.body.get("ms", 0.0))
        if isinstance(value, dict):
            obj = {"latency_ms": measured, **value}
        else:
            obj = {"score": value, "latency_ms": measured}
        got = interpret(obj, row_id, call.trial, where)
        if got.transient:
            return self._transient(unit, got.result, list(got.problems))
        return self._final(unit, got.result, list(got.problems))

    def _final(self, unit: Unit[Call], result: RowResult, problems: list[str]) -> list[Unit[Call]]:
        self.collector.finish({unit.payload.key: result}, calls=1, invocations=1, problems=problems)
        return []

    def _transient(self, unit: Unit[Call], result: RowResult, problems: list[str] | None = None) -> list[Unit[Call]]:
        if unit.attempt >= self.retry.attempts:
            from dataclasses import replace

            final = replace(result, error=f"still transient after {unit.attempt} attempts: {result.error}")
            where = f"trial {unit.payload.trial} call for row {result.id!r}"
            return self._final(unit, final, [*(problems or []), f"{where}: {final.error.splitlines()[0] if final.error else ''}"])
        self.collector.spend_only(calls=1, invocations=1, cost=result.cost_usd or 0.0, problems=problems or [])
        again = Unit(unit.payload, 1, unit.attempt + 1, time.monotonic() + self.retry.delay(unit.attempt))
        return [again]
