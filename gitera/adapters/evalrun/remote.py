"""What a Dask worker runs for gitera: the worker half of the Dask executor (client half: cluster.py).

The client sends the tar of the scored tree to the workers that have not got it
(`install_tree`), which extract it once per commit into their local directory
(`<local_directory>/gitera/trees/`); a task (a shard, or in python mode a call) then carries only
the tree's key, and the tree is copied once per run, so a harness that writes into its working directory never changes
what a later run sees, as the local executor resets its checkout per run. The harness is then
launched by the same code as on the client (invoke.launch, pymode.WorkerSlot), with the
worker's own environment plus the eval contract's GITERA_* variables: nothing of the client's
environment crosses the wire, and GITERA_SEAL_KEY never reaches a harness here. A run-level
script's run (`script_task`) is one task: the script is started as the client starts it
(isolation.launch_harness, its own process group, the run's timeout), and what it wrote comes
back to be read on the client by the same parser as a local run's. The decrypted sealed files a
gate's or verdict's runs need are laid into the run's copy of the tree only when a task of that
run asks for them (`install_files`), and go with that copy when the run ends.

Everything here lives in the worker process (module state is the point: a registry of running
shards for `cut_shard`, of runs for `close_run`, of extracted trees). Nothing is imported from
the client's repository; a worker needs gitera installed with the `dask` extra.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitera.adapters.evalrun.invoke import TICK_S, Cut, launch
from gitera.adapters.evalrun.isolation import command_argv, finish, launch_harness
from gitera.adapters.evalrun.parse import SCORE_LINE, id_key
from gitera.adapters.evalrun.procs import ExitWaiter, LiveProcesses, kill_group
from gitera.adapters.evalrun.pymode import WorkerSlot
from gitera.core.version import __version__

SCRUBBED = ("GITERA_SEAL_KEY",)  # never handed to a harness on a worker, whatever the worker's own environment holds
TAIL_BYTES = 16384  # of stderr, as procs.tail reads
STDOUT_TAIL_BYTES = 65536  # of stdout; the last `SCORE:` line is kept besides


@dataclass(frozen=True)
class ShardJob:
    """One command-mode shard: everything about it that crosses the wire."""

    version: str
    run: str
    token: str
    tree_key: str
    topic: str
    command: str
    contract: Mapping[str, str]  # GITERA_TAG, GITERA_ARM, GITERA_ARM_PARAMS, GITERA_SPLIT
    trial: int
    keys: tuple[str, ...]
    rows_jsonl: str
    timeout_s: float
    deadline_wall: float | None  # time.time() of the run's deadline
    tick_s: float
    passthrough: tuple[str, ...] = ()  # the frame's eval.env: what of the worker's environment a harness gets


@dataclass(frozen=True)
class CallShardJob:
    """Python mode: a shard of calls of the run's `module:function`, made one after another."""

    version: str
    run: str
    token: str
    tree_key: str
    topic: str
    target: str
    arm: str
    params: Mapping[str, Any]
    contract: Mapping[str, str]
    trial: int
    keys: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]
    timeout_s: float
    deadline_wall: float | None
    ready_timeout_s: float
    tick_s: float  # replies are streamed back at most this often
    passthrough: tuple[str, ...] = ()  # the frame's eval.env: what of the worker's environment a harness gets


@dataclass(frozen=True)
class ScriptJob:
    """One run of a run-level script (docs/run-level.md): everything about it that crosses the wire."""

    version: str
    run: str
    token: str
    tree_key: str
    command: str
    contract: Mapping[str, str]  # GITERA_TAG, GITERA_ARM, GITERA_ARM_PARAMS, GITERA_SPLIT
    trial: int  # GITERA_TRIAL, the run's seed
    timeout_s: float  # the whole run's
    keep: tuple[str, ...] = ()  # regexes of the stdout lines the client reads (core.runscore.line_patterns)
    passthrough: tuple[str, ...] = ()  # the frame's eval.env: what of the worker's environment the script gets
    files_key: str | None = None  # the sealed files (gate, verdict) the run needs in its tree; None: none


@dataclass
class _Run:
    """One run's state on a worker: the extracted tree, its live harness processes and the slot it holds."""
    tree: Path
    live: LiveProcesses = field(default_factory=LiveProcesses)
    slot: WorkerSlot | None = None
    files_key: str | None = None  # the sealed files laid into `tree` (install_files)


_lock = threading.Lock()
_runs: dict[str, _Run] = {}
_cuts: dict[str, Cut] = {}
_precut: dict[str, str] = {}  # shard token -> reason, for a cut that arrived before its shard started
_extracting: dict[str, threading.Lock] = {}


def _home(dask_worker: Any = None) -> Path:
    """gitera's folder in the worker's local directory (`client.run` passes `dask_worker`; a task asks)."""
    if dask_worker is None:
        from distributed import get_worker

        dask_worker = get_worker()
    return Path(dask_worker.local_directory) / "gitera"


def _check_version(version: str) -> None:
    if version != __version__:
        raise RuntimeError(f"this Dask worker has gitera {__version__} but the client runs {version}; install the same gitera on every worker")


class NeedTree(Exception):
    """This worker has not got the run's tree (it joined or restarted after the run began)."""


def has_tree(tree_key: str, dask_worker: Any = None) -> bool:
    """Whether this worker holds the tree of `tree_key` (`client.run`, before sending it)."""
    return (_home(dask_worker) / "trees" / tree_key).is_dir()


def install_tree(tree_key: str, archive: bytes, dask_worker: Any = None) -> None:
    """Extract the tar of `tree_key` once on this worker (`client.run`, to the workers without it)."""
    tree_for(tree_key, archive, _home(dask_worker))


def tree_for(tree_key: str, archive: bytes, home: Path) -> Path:
    """The pristine tree of `tree_key` (a commit), extracted once per worker."""
    trees = home / "trees"
    path = trees / tree_key
    with _lock:
        guard = _extracting.setdefault(tree_key, threading.Lock())
    with guard:
        if path.is_dir():
            return path
        trees.mkdir(parents=True, exist_ok=True)
        partial = trees / f".{tree_key}.{uuid.uuid4().hex}"
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            if hasattr(tarfile, "tar_filter"):
                tar.extractall(partial, filter="tar")  # symlinks kept as committed; no member outside the folder
            else:  # pragma: no cover - Python < 3.11.4
                tar.extractall(partial)
        partial.mkdir(exist_ok=True)  # an empty tree
        try:
            os.rename(partial, path)  # another worker process on this machine may have won: keep theirs
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
        return path


def _run_state(run: str, tree_key: str, home: Path | None = None) -> _Run:
    with _lock:
        state = _runs.get(run)
    if state is not None:
        return state
    home = home or _home()
    pristine = home / "trees" / tree_key
    if not pristine.is_dir():
        raise NeedTree(tree_key)
    with _lock:
        state = _runs.get(run)
        if state is None:
            copy = home / "runs" / run / "tree"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(pristine, copy, symlinks=True)
            state = _runs[run] = _Run(copy)
    return state


def worker_env(contract: Mapping[str, str], passthrough: Sequence[str] = ()) -> dict[str, str]:
    """The harness environment on a worker: the worker's own, scrubbed as a local harness's is
    (isolation.harness_env: the always-allowed variables and the frame's eval.env, never a
    GITERA_* variable it holds, the seal key above all), plus the eval contract's variables."""
    from gitera.adapters.evalrun.isolation import harness_env

    base = {k: v for k, v in os.environ.items() if not k.startswith("GITERA_") and k not in SCRUBBED}
    return harness_env(base, passthrough, contract)


def shard_task(job: ShardJob) -> dict[str, Any]:
    """Run one shard with invoke.launch; return its exit, its result lines and its output tails
    (or {"need_tree": address} when this worker has not got the tree yet)."""
    from distributed import get_worker

    _check_version(job.version)
    worker = get_worker()
    attempt = uuid.uuid4().hex[:12]  # a lost worker's shard runs again: its streamed lines carry another attempt
    try:
        state = _run_state(job.run, job.tree_key)
    except NeedTree:
        return {"need_tree": worker.address}
    cut = Cut()
    with _lock:
        reason = _precut.pop(job.token, None)
        _cuts[job.token] = cut
    if reason is not None:
        cut.event.set()
        cut.reason = reason
    keys = set(job.keys)

    def forward(lines: list[str]) -> bool:
        mine = []
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and id_key(obj.get("id")) in keys:
                mine.append(line)
        if mine:
            worker.log_event(job.topic, {"shard": job.token, "attempt": attempt, "lines": mine})
        return bool(mine)

    deadline = None if job.deadline_wall is None else time.monotonic() + (job.deadline_wall - time.time())
    base = _home() / "runs" / job.run / "shards" / f"{job.token}-{attempt}"
    try:
        ended = launch(job.command, cwd=state.tree, env=worker_env(job.contract, job.passthrough), base=base, rows_jsonl=job.rows_jsonl, trial=job.trial,
                       timeout_s=job.timeout_s, deadline=deadline, tick_s=job.tick_s, cut=cut, live=state.live, on_lines=forward)
        return {
            "attempt": attempt, "rc": ended.rc, "timed_out": ended.timed_out, "by_run": ended.by_run, "by_budget": ended.by_budget,
            "out": _read(ended.out_path), "stdout": _stdout_tail(ended.stdout_path), "stderr": _read(ended.stderr_path, TAIL_BYTES),
            "worker": worker.address,
        }
    finally:
        with _lock:
            _cuts.pop(job.token, None)
        shutil.rmtree(base, ignore_errors=True)  # the rows (dev or, at the verdict, test) leave no copy behind


def call_shard_task(job: CallShardJob) -> dict[str, Any]:
    """Python mode: the shard's calls, one after another, on this worker's python worker of the run
    (started on first use), each reply streamed as it comes; stops between calls when cut."""
    from distributed import get_worker

    _check_version(job.version)
    worker = get_worker()
    try:
        state = _run_state(job.run, job.tree_key)
    except NeedTree:
        return {"need_tree": worker.address}
    with _lock:
        if state.slot is None:
            stderr = _home() / "runs" / job.run / "python-worker.stderr"
            state.slot = WorkerSlot(job.target, job.arm, job.params, state.tree, worker_env(job.contract, job.passthrough), stderr, state.live, job.ready_timeout_s)
        slot = state.slot
        cut = Cut()
        reason = _precut.pop(job.token, None)
        _cuts[job.token] = cut
    if reason is not None:
        cut.event.set()
    attempt = uuid.uuid4().hex[:12]
    deadline = None if job.deadline_wall is None else time.monotonic() + (job.deadline_wall - time.time())
    replies: list[list[Any]] = []
    sent, last = 0, time.monotonic()
    try:
        for key, row in zip(job.keys, job.rows):
            if cut.event.is_set():
                break
            limit, by_run = job.timeout_s, False
            if deadline is not None and deadline - time.monotonic() < limit:
                limit, by_run = max(0.0, deadline - time.monotonic()), True
            reply = slot.call(row, job.trial, limit)
            replies.append([key, reply.kind, {**reply.body, "_limit": limit, "_by_run": by_run}])
            if time.monotonic() - last >= job.tick_s:  # streamed in batches, as command mode's lines are
                worker.log_event(job.topic, {"shard": job.token, "attempt": attempt, "replies": replies[sent:]})
                sent, last = len(replies), time.monotonic()
    finally:
        with _lock:
            _cuts.pop(job.token, None)
    return {"attempt": attempt, "replies": replies}


def install_files(run: str, tree_key: str, files_key: str, files: Mapping[str, bytes], dask_worker: Any = None) -> bool:
    """Lay a gate's or verdict's decrypted sealed files into this worker's copy of the run's tree
    (`client.run`, to a worker whose task asked for them); they go when the run ends (close_run)."""
    try:
        state = _run_state(run, tree_key, _home(dask_worker))
    except NeedTree:
        return False
    with _lock:
        if state.files_key == files_key:
            return True
        root = state.tree.resolve()
        for rel, content in files.items():
            target = (state.tree / rel).resolve()
            if root not in target.parents:
                raise ValueError(f"a sealed file's path {rel!r} leaves the tree")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)  # a symlink committed in its place is replaced, never followed
            target.write_bytes(content)
        state.files_key = files_key
    return True


def script_task(job: ScriptJob) -> dict[str, Any]:
    """One run of a run-level script in the run's copy of the tree; its exit code (None: killed at
    the timeout), duration, GITERA_OUT, stdout (cut to its tail and the lines the client reads) and
    stderr's tail. Or {"need_tree": address} / {"need_files": address} when this worker lacks them."""
    from distributed import get_worker

    _check_version(job.version)
    worker = get_worker()
    try:
        state = _run_state(job.run, job.tree_key)
    except NeedTree:
        return {"need_tree": worker.address}
    if job.files_key is not None and state.files_key != job.files_key:
        return {"need_files": worker.address}
    cut = Cut()
    with _lock:
        reason = _precut.pop(job.token, None)
        _cuts[job.token] = cut
    if reason is not None:
        cut.event.set()
    attempt = uuid.uuid4().hex[:12]
    base = _home() / "runs" / job.run / "scripts" / f"{job.token}-{attempt}"
    base.mkdir(parents=True, exist_ok=True)
    out = base / "out.json"
    env = worker_env({**job.contract, "GITERA_TRIAL": str(job.trial), "GITERA_OUT": str(out)}, job.passthrough)
    try:
        code, seconds = _run_script(job.command, state.tree, env, base, job.timeout_s, cut, state.live)
        return {"attempt": attempt, "code": code, "seconds": seconds, "cut": cut.event.is_set(),
                "out": _read(out) if out.is_file() else None, "stdout": _stdout_tail(base / "stdout.txt", job.keep),
                "stderr": _read(base / "stderr.txt", TAIL_BYTES), "worker": worker.address}
    finally:
        with _lock:
            _cuts.pop(job.token, None)
        shutil.rmtree(base, ignore_errors=True)


def _run_script(command: str, cwd: Path, env: Mapping[str, str], base: Path, timeout_s: float, cut: Cut,
                live: LiveProcesses) -> tuple[int | None, float]:
    """(exit code, or None when killed at the timeout; seconds) of one run, started as runscript
    starts it locally; a cut kills its process group at once."""
    started = time.monotonic()
    with (base / "stdout.txt").open("wb") as stdout, (base / "stderr.txt").open("wb") as stderr:
        if cut.event.is_set():  # cancelled before it started
            return -15, 0.0
        proc = launch_harness(command_argv(command), cwd=cwd, env=env, stdout=stdout, stderr=stderr)
        cut.proc = proc
        live.add(proc)
        waiter = ExitWaiter(proc)
        try:
            while not cut.event.is_set():
                left = started + timeout_s - time.monotonic()
                if waiter.wait(max(0.0, min(left, TICK_S))):
                    finish(proc)  # what the run left running in its group dies with it
                    return proc.returncode, time.monotonic() - started
                if time.monotonic() >= started + timeout_s:
                    kill_group(proc)
                    return None, time.monotonic() - started
            kill_group(proc, grace_s=0.2)
            return proc.returncode, time.monotonic() - started
        finally:
            waiter.close()
            live.discard(proc)


def cut_shard(token: str, reason: str) -> bool:
    """Stop a running shard (its harness gets SIGTERM, then SIGKILL), or one not started yet."""
    with _lock:
        cut = _cuts.get(token)
        if cut is None:
            _precut[token] = reason
    if cut is not None:
        cut(reason)
    return cut is not None


def close_run(run: str, dask_worker: Any = None) -> None:
    """The run is over: kill its harness processes, drop its tree copy and its notes."""
    with _lock:
        state = _runs.pop(run, None)
        for token in [t for t in _precut if t.startswith(run)]:
            del _precut[token]
    if state is not None:
        if state.slot is not None:
            state.slot.close()
        state.live.kill_all()
    shutil.rmtree(_home(dask_worker) / "runs" / run, ignore_errors=True)


def trees_cached(dask_worker: Any = None) -> list[str]:
    """The tree keys (commits) this worker holds (`client.run(trees_cached)`), for diagnostics and tests."""
    trees = _home(dask_worker) / "trees"
    return sorted(p.name for p in trees.iterdir() if not p.name.startswith(".")) if trees.is_dir() else []


def _read(path: Path, limit: int | None = None) -> str:
    try:
        with path.open("rb") as fh:
            if limit is not None:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _stdout_tail(path: Path, keep: Sequence[str] = ()) -> str:
    """The end of stdout (from a line's start) and, in front, the last earlier line matching each of
    SCORE_LINE and the `keep` regexes that has no match in the end, in their order: the client's
    parsers read the last matching line of each, so they find the same numbers as in the whole."""
    text = _read(path)
    raw = text.encode()
    if len(raw) <= STDOUT_TAIL_BYTES:
        return text
    cut = len(raw) - STDOUT_TAIL_BYTES
    if raw[cut - 1:cut] != b"\n":  # never a line's second half: "val_loss: 1" must not read as "loss: 1"
        nl = raw.find(b"\n", cut)
        cut = len(raw) if nl < 0 else nl + 1
    tail_text = raw[cut:].decode("utf-8", "ignore")
    earlier = raw[:cut].decode("utf-8", "replace").splitlines()
    wanted: set[int] = set()
    for regex in (re.compile(p, re.MULTILINE) for p in (SCORE_LINE.pattern, *keep)):
        if regex.search(tail_text):
            continue
        found = next((i for i in range(len(earlier) - 1, -1, -1) if regex.search(earlier[i])), None)
        if found is not None:
            wanted.add(found)
    return "".join(earlier[i] + "\n" for i in sorted(wanted)) + tail_text
