"""Running a run-level script: one invocation per run, one score each (docs/eval-contract.md, "Run-level scripts").

The script runs with ``/bin/sh -c`` in the arm's checkout, launched like every harness
(``evalrun.isolation``: a scrubbed environment, its own process group, watched so it dies with
gitera; a timeout or Ctrl-C kills it with its children), with ``GITERA_TRIAL`` as its seed. Its numbers are read
by ``gitera.core.runscore``. A scored run is cached by the checkout's content, the arm's params,
the harness, the split and the seed, so an unchanged script is never trained twice.

With ``remote`` (the frame's ``eval.executor: {kind: dask}``) each run is a task on a Dask
worker (``evalrun.cluster``, ``evalrun.remote``): the worker starts the same command in its
copy of the scored tree with the same contract, isolation and timeout, and sends back what the
run wrote; the cache, the order, the progress and the reading of the numbers stay here, so a run
scores the same wherever it ran (docs/scale.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.evalrun.isolation import command_argv, finish, harness_env, launch_harness
from gitera.adapters.evalrun.procs import ExitWaiter, kill_group, tail
from gitera.core.frame import RUN_RECORD_FIELDS
from gitera.core.runscore import line_patterns, read_run

if TYPE_CHECKING:
    from gitera.adapters.evalrun.cluster import Remote

RUN_ID = "run"  # the one "row" of a run-level per-run file
POLL_S = 0.01


@dataclass(frozen=True)
class RunSpec:
    """What to run and how to read it; ``harness`` identifies the locked harness (cache key)."""

    command: str
    timeout_s: float
    primary: str
    secondary: tuple[str, ...] = ()
    patterns: Mapping[str, str] = field(default_factory=dict)
    harness: str = ""
    env: tuple[str, ...] = ()  # the frame's eval.env: what of gitera's environment the script may see (isolation.harness_env)


@dataclass(frozen=True)
class RunResult:
    """One run of a run-level script: its trial (seed), status, score, seconds, secondary numbers and what was wrong."""
    trial: int
    status: str  # ok, crash, timeout or invalid (no score read)
    score: float | None
    seconds: float
    numbers: Mapping[str, float] = field(default_factory=dict)
    source: str | None = None
    error: str | None = None  # why the run has no score (crash, timeout, invalid)
    problems: tuple[str, ...] = ()  # what is wrong with a scored run's output (a declared secondary missing)
    cached: bool = False

    def record(self) -> dict[str, Any]:
        """The line of the per-run file: the shape of a per-row result, with the one id "run"."""
        out: dict[str, Any] = {"id": RUN_ID, "trial": self.trial, "score": self.score, "status": self.status,
                               "seconds": round(self.seconds, 3), **dict(self.numbers)}
        if self.source:
            out["source"] = self.source
        if self.error:
            out["error"] = self.error
        if self.problems:
            out["problems"] = list(self.problems)
        return out

    @staticmethod
    def from_record(d: Mapping[str, Any]) -> RunResult:
        numbers = {k: float(v) for k, v in d.items() if k not in RUN_RECORD_FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool)}
        score = d.get("score")
        return RunResult(int(d["trial"]), str(d.get("status", "ok")), float(score) if isinstance(score, (int, float)) else None,
                         float(d.get("seconds") or 0.0), numbers, d.get("source"), d.get("error"), tuple(d.get("problems") or ()))


class RunCache:
    """One JSON file per scored run under ``root``; only ok runs are stored."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: Sequence[Any]) -> Path:
        digest = hashlib.sha256(json.dumps(list(key), sort_keys=True, default=str).encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, key: Sequence[Any]) -> RunResult | None:
        try:
            return replace(RunResult.from_record(json.loads(self.path(key).read_text())), cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: Sequence[Any], result: RunResult) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result.record(), sort_keys=True))
        os.replace(tmp, path)


@dataclass(frozen=True)
class Invocation:
    """Where and as what one arm's runs happen."""

    checkout: Path
    tag: str
    arm: str
    params: Mapping[str, Any]
    split: str
    workdir: Path
    tree_id: str = ""

    def contract(self) -> dict[str, str]:
        """The contract's variables every run of the arm gets (each adds GITERA_TRIAL and GITERA_OUT)."""
        return {"GITERA_TAG": self.tag, "GITERA_ARM": self.arm, "GITERA_ARM_PARAMS": json.dumps(dict(self.params), sort_keys=True, default=str),
                "GITERA_SPLIT": self.split}

    def env(self, trial: int, out: Path, passthrough: Sequence[str] = ()) -> dict[str, str]:
        """The scrubbed environment every harness gets (isolation.harness_env) and this run's contract variables."""
        return harness_env(os.environ, passthrough, {**self.contract(), "GITERA_TRIAL": str(trial), "GITERA_OUT": str(out)})


def _finish(spec: RunSpec, trial: int, code: int | None, seconds: float, files: tuple[Path, Path, Path]) -> RunResult:
    out, stdout_path, stderr_path = files
    if code is None:
        return RunResult(trial, "timeout", None, seconds, error=f"the run was killed after {spec.timeout_s:g} s (eval.timeout_s)")
    if code != 0:
        last = tail(stderr_path, 20) or tail(stdout_path, 5)
        final = next((line.strip() for line in reversed(last.splitlines()) if line.strip()), "")
        return RunResult(trial, "crash", None, seconds, error=f"the command exited with code {code}; last stderr line: {final[:300]}\n{last}")
    stdout = stdout_path.read_text(encoding="utf-8", errors="replace")
    out_text = out.read_text(encoding="utf-8", errors="replace") if out.exists() else None
    parsed = read_run(stdout, out_text, primary=spec.primary, secondary=spec.secondary, patterns=spec.patterns)
    if parsed.score is None:
        return RunResult(trial, "invalid", None, seconds, parsed.numbers, error="; ".join(parsed.problems) + f"; stdout tail:\n{tail(stdout_path, 5)}")
    return RunResult(trial, "ok", parsed.score, seconds, parsed.numbers, parsed.source, problems=parsed.problems)


def run_scripts(spec: RunSpec, where: Invocation, trials: Sequence[int], *, concurrency: int = 1, cache: RunCache | None = None,
                store: RunCache | None = None, on_result: Callable[[RunResult], None] | None = None,
                remote: Remote | None = None, sealed: Mapping[str, bytes] | None = None) -> list[RunResult]:
    """Every trial of one arm (cached ones from ``cache``), up to ``concurrency`` at once, in trial order.

    ``cache``: where earlier runs are looked up; ``store``: where scored ok runs are written (the pilot stores without reading).
    A timeout or an interrupt kills the run's whole process group. ``remote``: the runs are tasks on
    that Dask cluster, ``sealed`` (a gate's or verdict's decrypted sealed files) laid into the workers'
    trees for them; locally the caller has written those into ``where.checkout``."""
    key = [where.tree_id, json.dumps(dict(where.params), sort_keys=True, default=str), spec.command, spec.harness, where.split]
    done: dict[int, RunResult] = {}
    pending: list[int] = []
    for t in trials:
        hit = cache.get([*key, t]) if cache is not None and where.tree_id else None
        if hit is not None:
            done[t] = hit
            if on_result:
                on_result(hit)
        else:
            pending.append(t)
    where.workdir.mkdir(parents=True, exist_ok=True)

    def finished(result: RunResult) -> None:
        done[result.trial] = result
        if result.status == "ok" and store is not None and where.tree_id:
            store.put([*key, result.trial], result)
        if on_result:
            on_result(result)

    if remote is not None:
        if pending:
            _run_remote(spec, where, pending, concurrency, remote, sealed or {}, finished)
        return [done[t] for t in trials]
    running: dict[int, tuple[Any, ExitWaiter, float, tuple[Path, Path, Path], list[Any]]] = {}
    try:
        while pending or running:
            while pending and len(running) < max(1, concurrency):
                t = pending.pop(0)
                files = (where.workdir / f"out-{t}.json", where.workdir / f"stdout-{t}.txt", where.workdir / f"stderr-{t}.txt")
                handles = [files[1].open("wb"), files[2].open("wb")]
                proc = launch_harness(command_argv(spec.command), cwd=where.checkout, env=where.env(t, files[0], spec.env),
                                      stdout=handles[0], stderr=handles[1])
                running[t] = (proc, ExitWaiter(proc), time.monotonic(), files, handles)
            for t, (proc, waiter, started, files, handles) in list(running.items()):
                left = started + spec.timeout_s - time.monotonic()
                # one run: block on its exit; several: look at each in turn
                exited = waiter.wait(min(max(left, 0.0), 3600.0) if len(running) == 1 else 0.0)
                timed_out = not exited and time.monotonic() >= started + spec.timeout_s
                if timed_out:
                    kill_group(proc)
                if exited:
                    finish(proc)  # what the run left running in its group dies with it
                if exited or timed_out:
                    waiter.close()
                    for h in handles:
                        h.close()
                    del running[t]
                    finished(_finish(spec, t, None if timed_out else proc.returncode, time.monotonic() - started, files))
            if len(running) > 1:
                time.sleep(POLL_S)
    except BaseException:
        for proc, waiter, _, _, handles in running.values():
            kill_group(proc, grace_s=0.2)
            waiter.close()
            for h in handles:
                h.close()
        raise
    return [done[t] for t in trials]


def _run_remote(spec: RunSpec, where: Invocation, pending: Sequence[int], concurrency: int, remote: Remote, files: Mapping[str, bytes],
                finished: Callable[[RunResult], None]) -> None:
    """The pending runs as Dask tasks, up to ``concurrency`` in flight; each reply is written into the
    work dir as a local run leaves its files and read by ``_finish``, here. Ctrl-C (or an error)
    cancels the tasks and kills the runs on the workers."""
    from gitera.adapters.evalrun.cluster import Session, connect

    session = Session(connect(remote.address), remote, spec.command, where.contract(), spec.timeout_s, tuple(spec.env), files=dict(files))
    keep = line_patterns(spec.primary, spec.secondary, spec.patterns)
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="gitera-run")
    try:
        session.open()  # the tree, to the workers without it
        running: dict[Future[dict[str, Any] | None], int] = {pool.submit(session.run_script, t, keep): t for t in pending}
        while running:
            ready, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)  # a timeout: Ctrl-C is seen at once
            for future in ready:
                t = running.pop(future)
                reply = future.result()
                if reply is None:  # cancelled: only when the session is, by an error raised here
                    continue
                finished(_mirror(spec, where, t, reply))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # no thread takes up another run
        session.cancel_all()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        session.close()


def _mirror(spec: RunSpec, where: Invocation, trial: int, reply: Mapping[str, Any]) -> RunResult:
    """A run a worker made, read as a local one: its files written where run_scripts keeps them."""
    files = (where.workdir / f"out-{trial}.json", where.workdir / f"stdout-{trial}.txt", where.workdir / f"stderr-{trial}.txt")
    if reply.get("out") is not None:
        files[0].write_text(str(reply["out"]), encoding="utf-8", newline="")
    files[1].write_text(str(reply.get("stdout", "")), encoding="utf-8", newline="")
    files[2].write_text(str(reply.get("stderr", "")), encoding="utf-8", newline="")
    code = reply.get("code")
    return _finish(spec, trial, None if code is None else int(code), float(reply.get("seconds") or 0.0), files)
