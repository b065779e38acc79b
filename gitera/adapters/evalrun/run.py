"""`run_eval`: one arm, some rows, some trials -> an EvalRun, using cache, budget and progress."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.cache import FIELDS, Cache, CacheKey, canonical_json, row_hash
from gitera.adapters.evalrun.collect import Collector, describe_ids
from gitera.adapters.evalrun.command import CommandRunner, Shard, plan_shards
from gitera.adapters.evalrun.isolation import harness_env
from gitera.adapters.evalrun.model import Budget, EvalRun, EvalSpec, RetryPolicy, RowId, RowResult
from gitera.adapters.evalrun.parse import id_key
from gitera.adapters.evalrun.procs import LiveProcesses
from gitera.adapters.evalrun.schedule import BudgetGate, Scheduler, Unit
from gitera.adapters.progress import Progress
from gitera.core.errors import ConfigError, EvalError

if TYPE_CHECKING:
    from gitera.adapters.evalrun.cluster import Remote, Session

AGGREGATE_WARNING = (
    "the eval printed only `SCORE:` lines (no per-row results in GITERA_OUT), so the run is "
    "aggregate-only: paired tests and per-slice results are impossible; write one JSON line per row to GITERA_OUT"
)


def _index_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, Mapping[str, Any]], dict[str, RowId]]:
    order: list[str] = []
    by_key: dict[str, Mapping[str, Any]] = {}
    ids: dict[str, RowId] = {}
    for number, row in enumerate(rows, start=1):
        key = id_key(row.get("id"))
        if key is None:
            raise ConfigError(f"Input row {number} has no usable `id` (got {row.get('id')!r}); every row needs a string or integer id.")
        if key in by_key:
            raise ConfigError(f"Input rows contain the id {row['id']!r} twice (row {number}); row ids must be unique.")
        order.append(key)
        by_key[key] = row
        ids[key] = row["id"]
    return order, by_key, ids


def _validate(trials: Sequence[int], concurrency: int, timeout_s: float, run_timeout_s: float | None, checkout: Path) -> None:
    if not trials or len(set(trials)) != len(trials) or any(t < 0 for t in trials):
        raise ConfigError(f"Trials must be distinct non-negative indices; got {list(trials)}.")
    if concurrency < 1:
        raise ConfigError(f"eval.concurrency must be at least 1; got {concurrency}.")
    if not timeout_s > 0 or (run_timeout_s is not None and not run_timeout_s > 0):
        raise ConfigError("eval.timeout_s and the run timeout must be positive numbers of seconds.")
    if not checkout.is_dir():
        raise EvalError(f"The checkout directory {checkout} does not exist; the arm's commit must be checked out before scoring.")


def run_eval(
    spec: EvalSpec,
    *,
    checkout: Path,
    tag: str,
    arm: str,
    params: Mapping[str, Any],
    split: str,
    rows: Sequence[Mapping[str, Any]],
    trials: Sequence[int],
    concurrency: int,
    timeout_s: float,
    run_timeout_s: float | None = None,
    cache: Cache | None = None,
    tree_id: str | None = None,
    budget: Budget | None = None,
    progress: Progress | None = None,
    workdir: Path,
    retry: RetryPolicy = RetryPolicy(),
    remote: Remote | None = None,
    spend_journal: Callable[[float], None] | None = None,
) -> EvalRun:
    """Score every row x trial of one arm; see docs/eval-contract.md for the contract.

    With `remote` the invocations run on a Dask cluster (cluster.py); everything else stays here.
    ``spend_journal`` is called with every reported cost before it is counted (evalrun.journal)."""
    started = time.monotonic()
    _validate(trials, concurrency, timeout_s, run_timeout_s, checkout)
    if cache is not None and tree_id is None:
        raise ValueError("run_eval: a cache needs the arm's tree_id")
    order, by_key, ids = _index_rows(rows)
    hashes = {k: row_hash(r) for k, r in by_key.items()} if cache is not None else {}
    cache_key = CacheKey(tree_id or "", canonical_json(dict(params)), spec.cache_id, split)
    hits: dict[tuple[str, int], RowResult] = {}
    pending: dict[int, list[str]] = {t: [] for t in trials}
    stored = cache.load(cache_key) if cache is not None else {}
    for trial in trials:
        for key in order:
            record = stored.get((key, hashes.get(key, ""), trial))
            if record is None:
                pending[trial].append(key)
            else:
                hits[(key, trial)] = RowResult(ids[key], trial, float(record["score"]), "ok", **{n: record[n] for n in FIELDS[1:]}, cached=True)

    def store(results: Sequence[RowResult]) -> None:
        assert cache is not None
        entries = []
        for r in results:
            key = id_key(r.id) or ""
            entries.append(((key, hashes[key], r.trial), {**r.to_json(), "output_full": r.output_full}))
        cache.put(cache_key, entries)

    total = len(order) * len(trials)
    if progress is not None:
        progress.start(total, label=f"{arm} ({split})", done=len(hits))
    collector = Collector(store if cache is not None else None, progress, None, spend_journal)
    if budget is not None:
        collector.gate = BudgetGate(budget, collector.warn)
    deadline = None if run_timeout_s is None else started + run_timeout_s
    workdir.mkdir(parents=True, exist_ok=True)
    contract = {
        "GITERA_TAG": tag,
        "GITERA_ARM": arm,
        "GITERA_ARM_PARAMS": json.dumps(dict(params), sort_keys=True, default=str),
        "GITERA_SPLIT": split,
    }
    env = harness_env(os.environ, spec.env, contract)
    live = LiveProcesses()
    stop_reason = None
    leftover_calls: list[tuple[str, int]] = []
    session = _open_session(remote, spec, contract, timeout_s) if remote is not None and any(pending.values()) else None

    def cancel() -> None:
        live.kill_all()
        if session is not None:
            session.cancel_all()

    try:
        stop_reason, leftover_calls = _schedule(spec, checkout, arm, params, env, by_key, ids, pending, trials, concurrency, timeout_s,
                                                deadline, retry, workdir, collector, live, session, cancel)
    finally:
        if session is not None:
            session.close()
    return _assemble(
        arm, split, trials, order, ids, hits, collector, stop_reason, leftover_calls, budget, time.monotonic() - started, progress
    )


def _open_session(remote: Remote, spec: EvalSpec, contract: Mapping[str, str], timeout_s: float) -> Session:
    """Connect to the cluster and send it the scored tree."""
    from gitera.adapters.evalrun.cluster import Session, connect

    return Session(connect(remote.address), remote, spec.command, contract, timeout_s, tuple(spec.env)).open()


def _schedule(
    spec: EvalSpec, checkout: Path, arm: str, params: Mapping[str, Any], env: Mapping[str, str], by_key: Mapping[str, Mapping[str, Any]],
    ids: Mapping[str, RowId], pending: Mapping[int, Sequence[str]], trials: Sequence[int], concurrency: int, timeout_s: float,
    deadline: float | None, retry: RetryPolicy, workdir: Path, collector: Collector, live: LiveProcesses, session: Session | None,
    cancel: Callable[[], None],
) -> tuple[Any, list[tuple[str, int]]]:
    """Run the pending calls through the scheduler; (stop reason, calls left unrun)."""
    if spec.command is not None:
        cmd_runner = CommandRunner(spec.command, checkout, env, by_key, ids, timeout_s, deadline, retry, workdir, collector, live, remote=session)
        shards = plan_shards(pending, concurrency, spec.shard_size)
        cmd_sched: Scheduler[Shard] = Scheduler(concurrency, deadline, collector.gate)
        cmd_sched.run([Unit(s, len(s.keys)) for s in shards], cmd_runner.execute, cancel)
        for unit in cmd_sched.leftover:
            if unit.payload.failure is not None:  # ran and failed: not "not run"
                cmd_runner.settle(unit)
        return cmd_sched.stop_reason, [(k, u.payload.trial) for u in cmd_sched.leftover if u.payload.failure is None for k in u.payload.keys]
    assert spec.python is not None
    from gitera.adapters.evalrun.pymode import Call, PythonRunner  # python mode only

    py_runner = PythonRunner(spec.python, arm, params, checkout, env, by_key, ids, timeout_s, deadline, retry, workdir, collector, live)
    if session is not None:  # calls go to the workers in shards, as command mode's rows do
        remote_runner = session.python_shards(py_runner, spec.python, arm, params, by_key, deadline, collector.gate)
        remote_sched: Scheduler[Shard] = Scheduler(concurrency, deadline, collector.gate)
        remote_sched.run([Unit(s, len(s.keys)) for s in plan_shards(pending, concurrency, spec.shard_size)], remote_runner.execute, cancel)
        return remote_sched.stop_reason, [(k, u.payload.trial) for u in remote_sched.leftover for k in u.payload.keys]
    units = [Unit(Call(k, t), 1) for t in trials for k in pending[t]]
    py_sched: Scheduler[Call] = Scheduler(concurrency, deadline, collector.gate)
    try:
        py_sched.run(units, py_runner.execute, cancel)
    finally:
        py_runner.close()
    return py_sched.stop_reason, [(u.payload.key, u.payload.trial) for u in py_sched.leftover]


def _assemble(
    arm: str, split: str, trials: Sequence[int], order: Sequence[str], ids: Mapping[str, RowId],
    hits: Mapping[tuple[str, int], RowResult], collector: Collector, stop_reason: Any,
    leftover: Sequence[tuple[str, int]], budget: Budget | None, wall_s: float, progress: Progress | None,
) -> EvalRun:
    problems: list[str] = []
    results_map = {**hits, **collector.results}
    if leftover:
        if stop_reason == "budget":
            assert budget is not None
            error = f"not run: the next calls would exceed the ${budget.max_cost_usd:g} cost budget"
            status = "missing"
        else:
            error = "not run: the run timeout was reached first"
            status = "timeout"
        for key, trial in leftover:
            results_map[(key, trial)] = RowResult(ids[key], trial, None, status, error=error)  # type: ignore[arg-type]
        problems.append(f"{error}; {len(leftover)} row x trial results unscored")
    results = tuple(results_map.get((k, t)) or RowResult(ids[k], t, None, "missing", error="not run") for t in trials for k in order)
    bad = [r for r in results if r.status != "ok"]
    if bad:
        counts: dict[str, int] = {}
        for r in bad:
            counts[r.status] = counts.get(r.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        problems.insert(0, f"{len(bad)} of {len(results)} row x trial results are unscored ({summary}), e.g. rows {describe_ids(sorted({r.id for r in bad}, key=str))}; the run is incomplete and no decision can use it")
    problems.extend(collector.problems)
    warnings = list(collector.warnings)
    aggregate_only = bool(collector.aggregates)
    aggregate_scores: dict[int, float] = {}
    if aggregate_only:
        warnings.insert(0, AGGREGATE_WARNING)
        for trial in trials:
            parts = list(collector.aggregates.get(trial, []))
            parts += [(r.score, 1) for r in results if r.trial == trial and r.score is not None]
            n = sum(w for _, w in parts)
            if n:
                aggregate_scores[trial] = sum(s * w for s, w in parts) / n
    run = EvalRun(
        arm=arm, split=split, trials=tuple(trials), results=results, complete=not bad,
        problems=tuple(problems), warnings=tuple(warnings), stop_reason=stop_reason,
        calls=collector.calls, invocations=collector.invocations, cache_hits=len(hits), wall_s=wall_s,
        cost_usd=sum(r.cost_usd or 0.0 for r in results), spent_usd=collector.spent,
        aggregate_only=aggregate_only, aggregate_scores=aggregate_scores,
    )
    if progress is not None:
        state = "complete" if run.complete else "INCOMPLETE"
        progress.finish(
            f"{arm} ({split}): {len(results) - len(bad)}/{len(results)} scored, {state}; {run.calls} calls, "
            f"{run.cache_hits} cached, {wall_s:.1f} s, ${run.spent_usd:.4f} spent"
        )
    return run
