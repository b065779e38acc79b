"""The Dask executor, client half: shards and calls become tasks on a Dask cluster (docs/scale.md).

Only the harness invocations move. The client keeps the scheduling order, the cache, the budget
gate, retries and bisection, timeouts, Ctrl-C, progress and writing results: run_eval's
Scheduler runs as it does locally, and each of its threads, instead of starting a process,
submits one task and waits for it (so eval.concurrency is the number of tasks in flight).

What crosses the wire, per run: the tar of the scored tree (scattered once to the workers that
are connected; each extracts it once per commit), and per shard the command, the contract's
GITERA_* variables, the rows (JSONL) and the timeouts; back come the result lines (streamed as
the harness writes them, through the scheduler's event log), the exit status and the tails of
stdout and stderr. Nothing else of the client's environment, no key, no other file.

A worker that dies mid-shard loses nothing: the scheduler runs the task again elsewhere; rows
the first attempt had already reported keep that attempt's result (each row is recorded once).

A run-level script's run is one task too (`Session.run_script`, driven by runscript.run_scripts):
per run the command, the contract's variables, the seed and the timeout cross; back come the exit
code, GITERA_OUT, stdout's tail (with the lines the parser reads) and stderr's tail, read on the
client as a local run's are. A gate's or verdict's decrypted sealed files go, once per run, only
to the workers whose tasks ask for them; the key never leaves the client.
`dask` and `distributed` are imported only here and in remote.py, when the executor is chosen.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.evalrun import remote as worker_side
from gitera.adapters.evalrun.command import Shard
from gitera.adapters.evalrun.invoke import BUDGET_TICK_S, TICK_S, Cut, Ended
from gitera.adapters.evalrun.parse import id_key
from gitera.adapters.evalrun.pymode import Call, PythonRunner, Reply
from gitera.adapters.evalrun.schedule import BudgetGate, Unit
from gitera.core.errors import ConfigError, EvalError
from gitera.core.version import __version__

if TYPE_CHECKING:
    from distributed import Client, Future

ADDRESS_ENV = "GITERA_DASK_ADDRESS"  # overrides eval.executor.address: where the cluster lives is not pre-registered
CONNECT_TIMEOUT_S = 30.0
WORKERS_TIMEOUT_S = 60.0  # a reachable scheduler without any worker
DEADLINE_GRACE_S = 5.0  # the client cuts a shard this long after the run's deadline if the worker has not
_clients: dict[str, Client] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class Remote:
    """Where and what to run remotely: the scheduler's address and the scored tree, which is
    opaque here (a key, e.g. the commit, and how to make its tar when a run needs it)."""

    address: str
    tree_key: str
    archive: Callable[[], bytes]


def resolve_address(address: str | None) -> str:
    found = os.environ.get(ADDRESS_ENV) or address
    if not found:
        raise ConfigError(f"eval.executor is dask but it has no address: set eval.executor.address in the frame or {ADDRESS_ENV}.")
    return found


def connect(address: str) -> Client:
    """A client of the scheduler at `address`, one per process, with at least one worker."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("eval.executor is dask but dask is not installed: pip install 'gitera[dask]' here and on every worker.") from None
    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status == "running":
            return client
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise EvalError(f"cannot reach the Dask scheduler at {address} ({exc}); start it (`dask scheduler`) "
                            f"or fix eval.executor.address / {ADDRESS_ENV}.") from None
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            client.close()
            raise EvalError(f"the Dask scheduler at {address} has no worker after {WORKERS_TIMEOUT_S:g} s; start some with "
                            f"`dask worker {address}`.") from None
        _clients[address] = client
        return client


@atexit.register
def close_clients() -> None:
    """Disconnect from every scheduler (at exit, or before a test stops its cluster)."""
    with _clients_lock:
        for client in _clients.values():
            try:
                client.close(timeout=5)
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        _clients.clear()


@dataclass
class Session:
    """One run_eval on the cluster: its tasks, its streamed lines, its cancellation."""

    client: Client
    remote: Remote
    command: str | None
    contract: Mapping[str, str]
    timeout_s: float
    passthrough: tuple[str, ...] = ()  # the frame's eval.env, applied to the worker's own environment
    files: Mapping[str, bytes] = field(default_factory=dict)  # a run-level gate's or verdict's decrypted sealed files
    run: str = field(default_factory=lambda: "r" + uuid.uuid4().hex[:16])
    cancelled: bool = False
    _tar: bytes | None = None
    _queues: dict[str, queue.SimpleQueue[dict[str, Any]]] = field(default_factory=dict)
    _futures: dict[str, Future[Any]] = field(default_factory=dict)
    _seq: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def topic(self) -> str:
        return f"gitera-{self.run}"

    def open(self) -> Session:
        self.client.subscribe_topic(self.topic, self._on_event)
        held = self.client.run(worker_side.has_tree, self.remote.tree_key, on_error="return")
        missing = [addr for addr, has in held.items() if has is not True]
        if missing:
            self._send_tree(missing)
        return self

    def _send_tree(self, workers: list[str]) -> None:
        """The tar of the scored tree, built once per run, to the workers that have not got it.
        (Tasks carry only the tree's key: a task with a data dependency is placed on a worker at
        once, busy or not, where a task without one waits for a free thread.)"""
        with self._lock:
            if self._tar is None:
                self._tar = self.remote.archive()
        self.client.run(worker_side.install_tree, self.remote.tree_key, self._tar, workers=workers, on_error="return")

    @property
    def files_key(self) -> str | None:
        if not self.files:
            return None
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(f"{name}\0{len(self.files[name])}\0".encode())
            digest.update(self.files[name])
        return digest.hexdigest()

    def _send_files(self, worker: str) -> None:
        """The sealed files, to a worker whose task of this run asked for them (never to the others)."""
        key = self.files_key
        assert key is not None
        got = self.client.run(worker_side.install_files, self.run, self.remote.tree_key, key, dict(self.files), workers=[worker], on_error="return")
        for value in got.values():  # a worker gone meanwhile: the task runs elsewhere; a worker that cannot write them: stop
            if isinstance(value, (ValueError, OSError)):
                raise EvalError(f"the Dask worker {worker} could not write the sealed files into its copy of the tree: {value}")

    def _on_event(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, dict):
            q = self._queues.get(str(msg.get("shard")))
            if q is not None:
                q.put(msg)

    def _submit(self, fn: Callable[..., Any], job: Any, token: str) -> Future[Any] | None:
        """The task, or None once the session is cancelled (under the lock cancel_all takes, so every
        task submitted is one cancel_all cuts: none starts after Ctrl-C)."""
        with self._lock:
            if self.cancelled:
                return None
            future = self.client.submit(fn, job, key=f"gitera-{token}-{next(self._seq)}", pure=False)
            self._futures[token] = future
        return future

    def _cut(self, token: str, reason: str) -> None:
        try:
            self.client.run(worker_side.cut_shard, token, reason, on_error="return")
        except Exception:  # noqa: BLE001 - a worker that is gone has nothing left to stop
            pass

    # --- command mode (command.ShardExecutor) ---------------------------------------------

    def run_shard(self, trial: int, keys: tuple[str, ...], rows_jsonl: str, base: Path, deadline: float | None, tick_s: float,
                  on_lines: Callable[[list[str]], bool], gate: BudgetGate | None) -> Ended:
        assert self.command is not None
        token = f"{self.run}-{next(self._seq)}"
        inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._queues[token] = inbox
        cut = Cut(hook=lambda reason: self._cut(token, reason))
        if gate is not None:
            gate.on_stop(cut)
        left = None if deadline is None else deadline - time.monotonic()
        job = worker_side.ShardJob(__version__, self.run, token, self.remote.tree_key, self.topic, self.command, dict(self.contract), trial, keys,
                              rows_jsonl, self.timeout_s, None if left is None else time.time() + left, tick_s, tuple(self.passthrough))
        first: dict[str, tuple[str, str]] = {}  # row key -> (attempt, line) of the line recorded while it ran

        def take(msg: dict[str, Any]) -> None:
            fresh = []
            for line in msg.get("lines", []):
                key = _line_key(line)
                if key is not None and key not in first:
                    first[key] = (str(msg.get("attempt")), line)
                    fresh.append(line)
            on_lines(fresh)
            if deadline is not None and time.monotonic() > deadline + DEADLINE_GRACE_S and not cut.event.is_set():
                cut("run")  # the worker's clock should have stopped it; the client's does

        try:
            reply = self._submit_until_tree(worker_side.shard_task, job, token, inbox, take, tick_s)
        except Exception as exc:  # noqa: BLE001 - sorted by _failed_task
            return _mirror(base, _failed_task(exc))
        finally:
            self._queues.pop(token, None)
        if reply is None:
            return _mirror(base, {"rc": -15, "by_budget": True})
        return _mirror(base, reply, first)

    def _forget(self, token: str) -> None:
        with self._lock:
            future = self._futures.pop(token, None)
        if future is not None and not self.cancelled:
            future.release()  # the scheduler may drop the task's result now

    # --- python mode: shards of calls -----------------------------------------------------

    def python_shards(self, runner: PythonRunner, target: str, arm: str, params: Mapping[str, Any],
                      rows: Mapping[str, Mapping[str, Any]], deadline: float | None, gate: BudgetGate | None) -> PythonShards:
        return PythonShards(self, runner, target, arm, dict(params), rows, deadline, gate)

    def _submit_until_tree(self, fn: Callable[..., Any], job: Any, token: str, inbox: queue.SimpleQueue[dict[str, Any]],
                           on_message: Callable[[dict[str, Any]], None], tick_s: float) -> dict[str, Any] | None:
        """Submit a task until it runs where the tree is; its reply (None when the run was cancelled).
        Streamed messages go to `on_message` while it runs."""
        while True:
            future = self._submit(fn, job, token)
            if future is None:
                return None
            done = _done_event(future)
            try:
                while not self.cancelled:
                    finished = done.wait(tick_s)
                    on_message({})  # a tick: the caller checks its deadline
                    while not inbox.empty():
                        on_message(inbox.get())
                    if finished:
                        break
                if self.cancelled:
                    return None
                reply = dict(future.result())
            finally:
                self._forget(token)
            if "need_tree" in reply:
                self._send_tree([str(reply["need_tree"])])  # a worker that joined after the run began
            elif "need_files" in reply:
                self._send_files(str(reply["need_files"]))
            else:
                return reply

    # --- run level: one run of the script per task ------------------------------------------

    def run_script(self, trial: int, keep: tuple[str, ...]) -> dict[str, Any] | None:
        """One run (seed `trial`) of the command on a worker: its reply (remote.script_task), or None
        when the session was cancelled. A worker lost mid-run: the scheduler runs the task again, and
        only the task's one result is read, so the run is recorded once."""
        assert self.command is not None
        token = f"{self.run}-{next(self._seq)}"
        job = worker_side.ScriptJob(__version__, self.run, token, self.remote.tree_key, self.command, dict(self.contract), trial,
                                    self.timeout_s, keep, tuple(self.passthrough), self.files_key)
        try:
            return self._submit_until_tree(worker_side.script_task, job, token, queue.SimpleQueue(), lambda _: None, TICK_S)
        except Exception as exc:  # noqa: BLE001 - sorted by _failed_task
            failed = _failed_task(exc)
            if failed.get("by_budget"):
                return None
            return {"code": failed["rc"], "seconds": 0.0, "out": None, "stdout": "", "stderr": failed["stderr"]}

    # --- the end ----------------------------------------------------------------------------

    def cancel_all(self) -> None:
        """Ctrl-C or a bug: stop every shard now and forget the tasks not yet started."""
        with self._lock:
            self.cancelled = True
            tokens, futures = list(self._futures), list(self._futures.values())
        for token in tokens:
            self._cut(token, "budget")
        if futures:
            self.client.cancel(futures)

    def close(self) -> None:
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:  # noqa: BLE001 - the scheduler may be gone
            pass
        try:
            self.client.run(worker_side.close_run, self.run, on_error="return")
        except Exception:  # noqa: BLE001
            pass
        self._tar = None


@dataclass
class PythonShards:
    """Python mode on the cluster: a task runs a shard's calls one after another on a worker (a task
    per call would cost the scheduler more than a 50 ms call); each reply comes back as it is made
    and is settled here exactly as a local call's (PythonRunner.settle: cache, budget, retries)."""

    session: Session
    runner: PythonRunner
    target: str
    arm: str
    params: dict[str, Any]
    rows: Mapping[str, Mapping[str, Any]]
    deadline: float | None
    gate: BudgetGate | None

    def execute(self, unit: Unit[Shard]) -> list[Unit[Shard]]:
        s, shard = self.session, unit.payload
        token = f"{s.run}-{next(s._seq)}"
        inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        s._queues[token] = inbox
        cut = Cut(hook=lambda reason: s._cut(token, reason))
        if self.gate is not None:
            self.gate.on_stop(cut)
        left = None if self.deadline is None else self.deadline - time.monotonic()
        tick = BUDGET_TICK_S if self.gate is not None else TICK_S
        job = worker_side.CallShardJob(__version__, s.run, token, s.remote.tree_key, s.topic, self.target, self.arm, self.params, dict(s.contract),
                                       shard.trial, shard.keys, tuple(dict(self.rows[k]) for k in shard.keys), s.timeout_s,
                                       None if left is None else time.time() + left, max(s.timeout_s, 30.0), tick, tuple(s.passthrough))
        settled: set[str] = set()
        followups: list[Unit[Shard]] = []

        def take(message: dict[str, Any]) -> None:
            for key, kind, body in message.get("replies", []):
                if key in settled or key not in shard.keys:
                    continue  # a lost worker's retry: the first reply of a call stands
                settled.add(key)
                body = dict(body)
                limit, by_run = float(body.pop("_limit", s.timeout_s)), bool(body.pop("_by_run", False))
                for again in self.runner.settle(Unit(Call(key, shard.trial), 1, unit.attempt), Reply(str(kind), body), limit, by_run):
                    followups.append(Unit(Shard(shard.trial, shard.index, (again.payload.key,), shard.part + ".r"), 1, again.attempt, again.not_before))

        try:
            reply = s._submit_until_tree(worker_side.call_shard_task, job, token, inbox, take, tick)
        except Exception as exc:  # noqa: BLE001 - a worker lost too often: every unsettled call crashed
            failed = _failed_task(exc)
            reply = {"replies": [[k, "died", {"code": failed["rc"], "tail": failed["stderr"]}] for k in shard.keys]}
        finally:
            s._queues.pop(token, None)
        if reply is not None:
            take(reply)
        rest = tuple(k for k in shard.keys if k not in settled)
        if rest and not s.cancelled:  # stopped by the budget or the deadline: the scheduler leaves them unrun
            followups.append(Unit(replace(shard, keys=rest), len(rest), unit.attempt))
        return followups


def _done_event(future: Future[Any]) -> threading.Event:
    """An event set when the task has ended. (Polling `future.result(timeout=...)` instead can
    fail with an UnboundLocalError inside distributed when its timeout cancels the wait.)"""
    event = threading.Event()
    future.add_done_callback(lambda _: event.set())
    return event


def _line_key(line: str) -> str | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return id_key(obj.get("id")) if isinstance(obj, dict) else None


def _failed_task(exc: BaseException) -> dict[str, Any]:
    """A task that raised: a worker lost too often is a crashed invocation (bisection goes on);
    anything else (gitera missing or another version on a worker, a full disk) stops the run."""
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return {"rc": -9, "stderr": f"the Dask workers running this invocation died repeatedly ({exc}); see the workers' logs"}
    if isinstance(exc, FutureCancelledError):
        return {"rc": -15, "by_budget": True, "stderr": ""}
    if isinstance(exc, ModuleNotFoundError):
        raise EvalError(f"a Dask worker cannot import gitera ({exc}): install the same gitera with the dask extra on every worker.") from None
    if isinstance(exc, RuntimeError) and "install the same gitera" in str(exc):
        raise EvalError(f"{exc}.") from None
    raise EvalError(f"a Dask worker failed to run a harness invocation: {type(exc).__name__}: {exc}") from None


def _mirror(base: Path, reply: Mapping[str, Any], first: Mapping[str, tuple[str, str]] | None = None) -> Ended:
    """The worker's files, written under `base` as a local invocation leaves them. A row whose line
    was recorded from an earlier attempt (a lost worker) keeps that line."""
    base.mkdir(parents=True, exist_ok=True)
    out = str(reply.get("out", ""))
    earlier = {k: line for k, (attempt, line) in (first or {}).items() if attempt != reply.get("attempt")}
    if earlier:
        kept = [line for line in out.splitlines(keepends=True) if _line_key(line) not in earlier]
        out = "".join(line + "\n" for line in earlier.values()) + "".join(kept)  # an unterminated last line stays last
    (base / "out.jsonl").write_text(out, encoding="utf-8")
    (base / "stdout.txt").write_text(str(reply.get("stdout", "")), encoding="utf-8")
    (base / "stderr.txt").write_text(str(reply.get("stderr", "")), encoding="utf-8")
    return Ended(int(reply.get("rc", 0)), bool(reply.get("timed_out")), bool(reply.get("by_run")), base, by_budget=bool(reply.get("by_budget")))
