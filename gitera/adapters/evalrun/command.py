"""Command mode: rows sharded across concurrent `/bin/sh -c <command>` invocations."""

from __future__ import annotations

import heapq
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from gitera.adapters.evalrun.collect import Collector, describe_ids
from gitera.adapters.evalrun.invoke import BUDGET_TICK_S, TICK_S, Cut, Ended, launch
from gitera.adapters.evalrun.model import RetryPolicy, RowId, RowResult
from gitera.adapters.evalrun.parse import TOO_DEEP, find_score, id_key, interpret, load_line, parse_lines
from gitera.adapters.evalrun.procs import LiveProcesses, tail
from gitera.adapters.evalrun.schedule import BudgetGate, Unit

WAVES = 4  # at most this many shards per concurrency slot
MAX_SHARD_ROWS = 256  # bounds the re-runs a crash or hang costs (log2(256) + 1 = 9 tries per row at most)


class ShardExecutor(Protocol):
    """Runs one shard elsewhere (a Dask worker) and leaves its files under `base` as `launch` would."""

    def run_shard(self, trial: int, keys: tuple[str, ...], rows_jsonl: str, base: Path, deadline: float | None, tick_s: float,
                  on_lines: Callable[[list[str]], bool], gate: BudgetGate | None) -> Ended: ...


@dataclass(frozen=True)
class Failure:
    """How an invocation failed, kept for its unwritten rows while bisection waits for evidence."""

    status: Literal["crash", "timeout"]
    error: str  # each row's error
    label: str  # the invocation, e.g. "trial 0 shard 3"
    how: str  # e.g. "exited with code 1"


@dataclass(frozen=True)
class Shard:
    """Rows of one trial for one invocation; `part` names the halves bisection re-runs (".1.2").
    With `failure`, the rows of a failed invocation parked until the run shows evidence."""

    trial: int
    index: int
    keys: tuple[str, ...]
    part: str = ""
    failure: Failure | None = None

    @property
    def name(self) -> str:
        return f"{self.index}{self.part}"


def _sizes(rows: int, parts: int) -> list[int]:
    """The sizes of `parts` nearly equal chunks of `rows` (they differ by at most one)."""
    parts = max(1, min(parts, rows))
    size, extra = divmod(rows, parts)
    return [size + (1 if i < extra else 0) for i in range(parts)]


def _split(keys: Sequence[str], parts: int) -> list[tuple[str, ...]]:
    """`parts` nearly equal consecutive chunks (sizes differ by at most one)."""
    out, start = [], 0
    for size in _sizes(len(keys), parts):
        out.append(tuple(keys[start:start + size]))
        start += size
    return out


def _counts(pending: Mapping[int, Sequence[str]], units: int) -> dict[int, int]:
    """Shards per trial, proportional to its rows (largest remainder), at least one each."""
    total = sum(len(k) for k in pending.values())
    quotas = {t: units * len(keys) / total for t, keys in pending.items()}
    counts = {t: min(len(pending[t]), max(1, math.floor(q))) for t, q in quotas.items()}
    for t in sorted(pending, key=lambda t: quotas[t] - math.floor(quotas[t]), reverse=True):
        if sum(counts.values()) >= units:
            break
        counts[t] = min(len(pending[t]), counts[t] + 1)
    return counts


Chunk = tuple[int, tuple[str, ...]]  # (trial, row keys)


def _even(pending: Mapping[int, Sequence[str]], counts: Mapping[int, int]) -> list[Chunk]:
    return [(t, c) for t in sorted(pending) for c in _split(pending[t], counts[t])]


def _fill(pending: Mapping[int, Sequence[str]], capacity: int) -> list[Chunk]:
    """Consecutive chunks that fill slots of `capacity` rows in turn: a slot where one trial
    ends and the next begins gets two shards, so no slot holds more than `capacity` rows."""
    out: list[Chunk] = []
    room = capacity
    for trial in sorted(pending):
        keys = pending[trial]
        start = 0
        while start < len(keys):
            take = min(room, len(keys) - start)
            out.append((trial, tuple(keys[start:start + take])))
            start += take
            room = room - take or capacity
    return out


def _makespan(sizes: Sequence[int], slots: int, start_cost: float, later_cost: float) -> float:
    """Longest slot when shards run largest first (LPT), in rows: the first wave's starts cost
    `start_cost` each (they compete for the CPU), a later start `later_cost`."""
    loads = [0.0] * min(slots, len(sizes))
    heapq.heapify(loads)
    for i, size in enumerate(sorted(sizes, reverse=True)):
        heapq.heapreplace(loads, loads[0] + size + (start_cost if i < slots else later_cost))
    return max(loads)


def _best_even(
    pending: Mapping[int, Sequence[str]], concurrency: int, score: Callable[[Sequence[int]], tuple[float, int]],
) -> tuple[tuple[float, int], dict[int, int]] | None:
    """The best shard counts per trial for nearly equal shards, from one wave to WAVES waves."""
    total = sum(len(k) for k in pending.values())
    low = max(len(pending), min(total, concurrency), math.ceil(total / MAX_SHARD_ROWS))
    high = min(total, max(low + concurrency - 1, concurrency * WAVES))
    best: tuple[tuple[float, int], dict[int, int]] | None = None
    for units in range(low, high + 1):
        counts = _counts(pending, units)
        sizes = [size for t in pending for size in _sizes(len(pending[t]), counts[t])]
        if max(sizes) <= MAX_SHARD_ROWS:
            plan = (score(sizes), counts)
            best = plan if best is None or plan[0] < best[0] else best
    return best


def plan_shards(
    pending: Mapping[int, Sequence[str]], concurrency: int, shard_size: int | None = None, cpus: int | None = None,
) -> list[Shard]:
    """Shard rows per trial (an invocation has one GITERA_TRIAL), fewest shards for the best finish.

    Candidates: every trial cut into nearly equal shards, for shard counts from `concurrency`
    (one wave) to 4 waves; and the fill plan (`_fill`), one slot's share of rows per slot where
    a slot that straddles two trials runs two shards. Each is scored by its simulated makespan
    in rows and the cheapest (then fewest shards) wins. The first wave's process starts are
    charged a tenth of a slot's share each: `concurrency` harnesses starting at once (interpreter,
    imports, model clients) compete for the `cpus` cores. A later start happens alone, so it is
    charged that times cpus/concurrency. In practice: one wave, the fill plan when trials split
    unevenly, more waves when a shard would exceed MAX_SHARD_ROWS. Largest first (LPT order).
    """
    pending = {t: keys for t, keys in pending.items() if keys}
    total = sum(len(k) for k in pending.values())
    if not total:
        return []
    if shard_size is not None:
        chunks = _even(pending, {t: math.ceil(len(keys) / shard_size) for t, keys in pending.items()})
    else:
        start_cost = max(1.0, total / concurrency / 10)
        later_cost = start_cost * min(1.0, (cpus or os.cpu_count() or 1) / concurrency)

        def score(sizes: Sequence[int]) -> tuple[float, int]:
            return _makespan(sizes, concurrency, start_cost, later_cost), len(sizes)

        fill = _fill(pending, min(MAX_SHARD_ROWS, math.ceil(total / concurrency)))
        even = _best_even(pending, concurrency, score)
        chunks = fill if even is None or score([len(c) for _, c in fill]) < even[0] else _even(pending, even[1])
    shards = [Shard(trial, i, keys) for i, (trial, keys) in enumerate(chunks)]
    return sorted(shards, key=lambda s: -len(s.keys))


@dataclass
class CommandRunner:
    """Runs a command-mode harness on one shard of rows (one invocation) and streams its result lines back."""
    command: str
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
    _seq: Iterator[int] = field(default_factory=itertools.count)  # unique work dirs for retries and halves
    evidence: bool = False  # some invocation of this run wrote a result line: the harness can work
    remote: ShardExecutor | None = None  # where shards run when not here

    def execute(self, unit: Unit[Shard]) -> list[Unit[Shard]]:
        shard = unit.payload
        if shard.failure is not None:  # parked rows, released when nothing else is left to run
            if self.evidence:
                return self._bisect(unit, shard.keys, shard.failure)
            self.settle(unit)
            return []
        base = self.workdir / f"t{shard.trial}-s{shard.index:04d}{shard.part}-a{unit.attempt}-{next(self._seq)}"
        rows_jsonl = "".join(json.dumps(self.rows[k], default=str) + "\n" for k in shard.keys)
        early: dict[str, RowResult] = {}
        tick = TICK_S if self.collector.gate is None else BUDGET_TICK_S

        def on_lines(lines: list[str]) -> bool:
            return self._stream(shard, lines, early)

        if self.remote is not None:  # the shard runs on a Dask worker
            ended = self.remote.run_shard(shard.trial, shard.keys, rows_jsonl, base, self.deadline, tick, on_lines, self.collector.gate)
        else:
            cut = Cut()
            if self.collector.gate is not None:
                self.collector.gate.on_stop(cut)
            ended = launch(self.command, cwd=self.checkout, env=self.env, base=base, rows_jsonl=rows_jsonl, trial=shard.trial,
                           timeout_s=self.timeout_s, deadline=self.deadline, tick_s=tick, cut=cut, live=self.live, on_lines=on_lines)
        return self._collect(unit, ended, set(early))

    def _stream(self, shard: Shard, lines: list[str], early: dict[str, RowResult]) -> bool:
        """Record rows a running shard has finished (cache, progress, budget see them now).
        True when a new line for one of the shard's rows appeared (the per-row timer restarts)."""
        batch: dict[str, RowResult] = {}
        progressed = False
        for line in lines:
            try:
                obj = load_line(line)
            except ValueError:  # bad JSON or nested too deep: judged when the invocation ends
                continue
            key = id_key(obj.get("id")) if isinstance(obj, dict) else None
            if key is None or key not in shard.keys:
                continue
            progressed = True
            if key in early or key in batch:
                continue
            got = interpret(obj, self.ids[key], shard.trial, "")
            if got.result.status == "ok" and not got.transient:
                batch[key] = got.result
        early.update(batch)
        if batch:
            self.collector.early(batch)
        self.evidence = self.evidence or progressed
        return progressed

    def _collect(self, unit: Unit[Shard], ended: Ended, early: set[str]) -> list[Unit[Shard]]:
        shard = unit.payload
        label = f"trial {shard.trial} shard {shard.name}" + (f" (attempt {unit.attempt})" if unit.attempt > 1 else "")
        path = ended.out_path
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        source = f"{label} GITERA_OUT ({path})"
        parsed = parse_lines(text, {k: self.ids[k] for k in shard.keys}, source)
        problems = list(parsed.problems)
        if parsed.lines == 0 and not ended.timed_out and ended.rc == 0:
            score = find_score(ended.stdout_path.read_text(encoding="utf-8", errors="replace"))
            if score is not None:
                self.collector.aggregate(shard.trial, score, len(shard.keys))
                aggregate = {k: RowResult(self.ids[k], shard.trial, None, "ok") for k in shard.keys}
                self.collector.finish(aggregate, calls=len(shard.keys), invocations=1, problems=problems)
                return []
        final: dict[str, RowResult] = {}
        retry: list[str] = []
        cost_of_retried = 0.0
        unwritten: list[str] = []
        for k in shard.keys:
            if k in parsed.too_deep:
                final[k] = RowResult(self.ids[k], shard.trial, None, "crash", error=f"{source} line {parsed.too_deep[k]}: {TOO_DEEP}")
            elif k in parsed.duplicates:
                lines = ", ".join(map(str, parsed.duplicates[k]))
                final[k] = RowResult(self.ids[k], shard.trial, None, "invalid", error=f"written {len(parsed.duplicates[k])} times (lines {lines})")
            elif k in parsed.found:
                obj, line = parsed.found[k]
                got = interpret(obj, self.ids[k], shard.trial, f"{source} line {line}")
                problems.extend(got.problems)
                if got.transient and unit.attempt < self.retry.attempts:
                    retry.append(k)
                    cost_of_retried += got.result.cost_usd or 0.0
                elif got.transient:
                    final[k] = _replace_error(got.result, f"still transient after {unit.attempt} attempts: {got.result.error}")
                else:
                    final[k] = got.result
            else:
                unwritten.append(k)
        self.evidence = self.evidence or bool(parsed.found or parsed.duplicates)
        followups: list[Unit[Shard]] = []
        if unwritten and ended.by_budget:  # back to the queue, which the stopped budget leaves unrun
            followups = [Unit(replace(shard, keys=tuple(unwritten)), len(unwritten), unit.attempt)]
        elif unwritten and ended.failed and len(shard.keys) > 1 and not self.live.cancelled:
            failure = self._failure(label, ended)
            if self.evidence:
                followups = self._bisect(unit, unwritten, failure)
            else:  # perhaps every row fails (a broken harness): wait until other shards show otherwise
                followups = [Unit(replace(shard, keys=tuple(unwritten), failure=failure), 0, unit.attempt, deferred=True)]
        else:
            final.update((k, self._unwritten(k, shard.trial, ended)) for k in unwritten)
        problems.extend(self._shard_problems(label, final, ended, parsed.lines))
        if retry:
            self.collector.spend_only(calls=0, invocations=0, cost=cost_of_retried)
            again = Shard(shard.trial, shard.index, tuple(retry), shard.part)
            followups.append(Unit(again, len(retry), unit.attempt + 1, time.monotonic() + self.retry.delay(unit.attempt)))
        not_run = len(unwritten) if ended.by_budget else 0
        self.collector.finish(final, calls=len(shard.keys) - len(early) - not_run, invocations=1, problems=problems, early=early)
        return followups

    def _failure(self, label: str, ended: Ended) -> Failure:
        how = self._how(ended)
        if ended.timed_out:
            return Failure("timeout", f"the command {how}", label, how)
        return Failure("crash", f"the command {how}; stderr tail:\n{tail(ended.stderr_path)}", label, how)

    def _bisect(self, unit: Unit[Shard], unwritten: Sequence[str], failure: Failure) -> list[Unit[Shard]]:
        """Re-run the rows a crashed or hung invocation did not write, so only the rows that really
        fail end up crash or timeout: the first unwritten row alone, the others in two halves (down
        to one row per invocation). A harness that scores its rows in order stopped at that first
        row, so it is usually the culprit: one hanging row then costs two `timeout_s` waits, not
        one per halving level."""
        shard = unit.payload
        if not shard.part:  # one notice per planned shard, not one per level
            self.collector.warn(
                f"{failure.label}: the command {failure.how} with {len(unwritten)} rows unwritten; "
                "re-running them in smaller invocations to find the ones that fail"
            )
        parts = [tuple(unwritten[:1]), *(_split(unwritten[1:], 2) if len(unwritten) > 1 else [])]
        return [Unit(Shard(shard.trial, shard.index, part, f"{shard.part}.{i}"), len(part), unit.attempt) for i, part in enumerate(parts, 1)]

    def settle(self, unit: Unit[Shard]) -> None:
        """Parked rows with no evidence that the harness works: they fail as their invocation did."""
        shard, failure = unit.payload, unit.payload.failure
        assert failure is not None
        final = {k: RowResult(self.ids[k], shard.trial, None, failure.status, error=failure.error) for k in shard.keys}
        why = ("the run stopped before they were re-run in smaller invocations" if self.evidence else
               "not re-run in smaller invocations: no invocation of this run wrote a result line (the harness seems to fail on every row)")
        rows = describe_ids([self.ids[k] for k in shard.keys])
        self.collector.finish(final, calls=0, invocations=0, problems=[f"{failure.label}: the command {failure.how}; rows {rows} unscored; {why}"])

    def _how(self, ended: Ended) -> str:
        if ended.timed_out and ended.by_run:
            return "was killed when the run timeout was reached"
        if ended.timed_out:
            return f"was killed after writing no result line for {self.timeout_s:g} s (timeout_s, per row)"
        return f"was killed by signal {-ended.rc}" if ended.rc < 0 else f"exited with code {ended.rc}"

    def _unwritten(self, key: str, trial: int, ended: Ended) -> RowResult:
        """The final result of a row its invocation did not write (a single-row one if it failed)."""
        row_id = self.ids[key]
        if ended.timed_out:
            alone = "" if ended.by_run else " when scored alone"
            return RowResult(row_id, trial, None, "timeout", error=f"the command {self._how(ended)}{alone}")
        if ended.rc != 0:
            return RowResult(row_id, trial, None, "crash", error=f"the command {self._how(ended)}; stderr tail:\n{tail(ended.stderr_path)}")
        return RowResult(row_id, trial, None, "missing", error="the command wrote no result line for this row")

    def _shard_problems(self, label: str, final: Mapping[str, RowResult], ended: Ended, lines: int) -> list[str]:
        def ids(status: str) -> list[RowId]:
            return [r.id for r in final.values() if r.status == status]

        out: list[str] = []
        if ids("timeout"):
            out.append(f"{label}: the command {self._how(ended)}; rows {describe_ids(ids('timeout'))} unscored")
        elif ids("crash") and ended.rc != 0:
            last = tail(ended.stderr_path, lines=1) or "(no stderr)"
            out.append(f"{label}: the command {self._how(ended)}; rows {describe_ids(ids('crash'))} unscored; last stderr line: {last}")
        if ids("missing"):
            if lines == 0:
                out.append(f"{label}: the command exited 0 but wrote nothing to GITERA_OUT and printed no `SCORE:` line; rows {describe_ids(ids('missing'))} unscored")
            else:
                out.append(f"{label}: no result line for rows {describe_ids(ids('missing'))}")
        for result in final.values():
            if result.status == "crash" and result.error and not result.error.startswith("the command"):
                out.append(f"{label}: row {result.id!r}: {result.error}")
        return out


def _replace_error(result: RowResult, error: str) -> RowResult:
    return replace(result, error=error)
