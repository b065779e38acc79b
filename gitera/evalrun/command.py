"""Command mode: rows sharded across concurrent `/bin/sh -c <command>` invocations."""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitera.evalrun.collect import Collector, describe_ids
from gitera.evalrun.model import RetryPolicy, RowId, RowResult
from gitera.evalrun.parse import find_score, id_key, interpret, parse_lines
from gitera.evalrun.procs import ExitWaiter, LiveProcesses, kill_group, spawn, tail
from gitera.evalrun.schedule import Unit

WAVES = 4  # at most this many shards per concurrency slot
MAX_SHARD_ROWS = 256  # bounds what one crash or timeout can take down
TICK_S = 0.25  # how often a running shard's GITERA_OUT is read for finished rows


@dataclass(frozen=True)
class Shard:
    trial: int
    index: int
    keys: tuple[str, ...]


def _split(keys: Sequence[str], parts: int) -> list[tuple[str, ...]]:
    """`parts` nearly equal consecutive chunks (sizes differ by at most one)."""
    parts = max(1, min(parts, len(keys)))
    size, extra = divmod(len(keys), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(tuple(keys[start:end]))
        start = end
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


def _makespan(sizes: Sequence[int], slots: int, start_cost: float) -> float:
    """Longest slot when shards run largest first (LPT), a process start costing `start_cost` rows."""
    loads = [0.0] * min(slots, len(sizes))
    heapq.heapify(loads)
    for size in sorted(sizes, reverse=True):
        heapq.heapreplace(loads, loads[0] + size + start_cost)
    return max(loads)


def plan_shards(pending: Mapping[int, Sequence[str]], concurrency: int, shard_size: int | None = None) -> list[Shard]:
    """Shard rows per trial (an invocation has one GITERA_TRIAL), fewest shards for the best finish.

    Candidate shard counts run from `concurrency` (one wave) to 4 waves; each is scored by
    its simulated makespan in rows, and the cheapest (then fewest) wins. A process start is
    charged a tenth of a slot's share of rows: harness start-up (interpreter, imports, model
    clients) competes for the CPU when `concurrency` shards start at once, so an extra wave
    must buy a real balance gain. In practice: one wave, more when trials split unevenly or
    a shard would exceed MAX_SHARD_ROWS. Shards are returned largest first (LPT order).
    """
    pending = {t: keys for t, keys in pending.items() if keys}
    total = sum(len(k) for k in pending.values())
    if not total:
        return []
    if shard_size is not None:
        counts = {t: math.ceil(len(keys) / shard_size) for t, keys in pending.items()}
    else:
        low = max(len(pending), min(total, concurrency), math.ceil(total / MAX_SHARD_ROWS))
        high = min(total, max(low + concurrency - 1, concurrency * WAVES))
        start_cost = max(1.0, total / concurrency / 10)
        best: tuple[float, int, dict[int, int]] | None = None
        for units in range(low, high + 1):
            counts = _counts(pending, units)
            sizes = [len(c) for t in pending for c in _split(pending[t], counts[t])]
            if max(sizes) > MAX_SHARD_ROWS:
                continue
            cost = _makespan(sizes, concurrency, start_cost)
            if best is None or cost < best[0]:
                best = (cost, units, counts)
        counts = best[2] if best is not None else _counts(pending, high)
    shards: list[Shard] = []
    for trial in sorted(pending):
        for chunk in _split(pending[trial], counts[trial]):
            shards.append(Shard(trial, len(shards), chunk))
    return sorted(shards, key=lambda s: -len(s.keys))


@dataclass
class CommandRunner:
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

    def execute(self, unit: Unit[Shard]) -> list[Unit[Shard]]:
        shard = unit.payload
        base = self.workdir / f"t{shard.trial}-s{shard.index:04d}-a{unit.attempt}"
        base.mkdir(parents=True, exist_ok=True)
        rows_path, out_path = base / "rows.jsonl", base / "out.jsonl"
        stdout_path, stderr_path = base / "stdout.txt", base / "stderr.txt"
        out_path.unlink(missing_ok=True)  # a reused workdir must never feed an earlier run's lines back
        rows_path.write_text("".join(json.dumps(self.rows[k], default=str) + "\n" for k in shard.keys), encoding="utf-8")
        env = {**self.env, "GITERA_TRIAL": str(shard.trial), "GITERA_ROWS": str(rows_path), "GITERA_OUT": str(out_path)}
        limit, by_run = self.timeout_s, False
        if self.deadline is not None and self.deadline - time.monotonic() < limit:
            limit, by_run = max(0.0, self.deadline - time.monotonic()), True
        timed_out = False
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = spawn(["/bin/sh", "-c", self.command], cwd=self.checkout, env=env, stdout=out, stderr=err)
            self.live.add(proc)
            early: dict[str, RowResult] = {}
            tailer = _Tail(out_path)
            end = time.monotonic() + limit
            waiter = ExitWaiter(proc)
            try:
                while not waiter.wait(min(TICK_S, end - time.monotonic())):
                    if time.monotonic() >= end:
                        timed_out = True
                        kill_group(proc)
                        break
                    self._stream(shard, tailer, early)
            finally:
                waiter.close()
                self.live.discard(proc)
        return self._collect(unit, proc.returncode, timed_out, by_run, limit, out_path, stdout_path, stderr_path, set(early))

    def _stream(self, shard: Shard, tailer: _Tail, early: dict[str, RowResult]) -> None:
        """Record rows a running shard has finished (cache, progress, budget see them now)."""
        batch: dict[str, RowResult] = {}
        for line in tailer.new_lines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            key = id_key(obj.get("id")) if isinstance(obj, dict) else None
            if key is None or key not in shard.keys or key in early or key in batch:
                continue
            got = interpret(obj, self.ids[key], shard.trial, "")
            if got.result.status == "ok" and not got.transient:
                batch[key] = got.result
        early.update(batch)
        if batch:
            self.collector.early(batch)

    def _collect(
        self, unit: Unit[Shard], rc: int, timed_out: bool, by_run: bool, limit: float,
        out_path: Path, stdout_path: Path, stderr_path: Path, early: set[str],
    ) -> list[Unit[Shard]]:
        shard = unit.payload
        label = f"trial {shard.trial} shard {shard.index}" + (f" (attempt {unit.attempt})" if unit.attempt > 1 else "")
        text = out_path.read_text(encoding="utf-8", errors="replace") if out_path.exists() else ""
        expected = {k: self.ids[k] for k in shard.keys}
        source = f"{label} GITERA_OUT ({out_path})"
        parsed = parse_lines(text, expected, source)
        problems = list(parsed.problems)
        final: dict[str, RowResult] = {}
        retry: list[str] = []
        cost_of_retried = 0.0
        if parsed.lines == 0 and not timed_out and rc == 0:
            score = find_score(stdout_path.read_text(encoding="utf-8", errors="replace"))
            if score is not None:
                self.collector.aggregate(shard.trial, score, len(shard.keys))
                for k in shard.keys:
                    final[k] = RowResult(self.ids[k], shard.trial, None, "ok")
                self.collector.finish(final, calls=len(shard.keys), invocations=1, problems=problems)
                return []
        for k in shard.keys:
            row_id = self.ids[k]
            if k in parsed.duplicates:
                lines = ", ".join(map(str, parsed.duplicates[k]))
                final[k] = RowResult(row_id, shard.trial, None, "invalid", error=f"written {len(parsed.duplicates[k])} times (lines {lines})")
            elif k in parsed.found:
                obj, line = parsed.found[k]
                got = interpret(obj, row_id, shard.trial, f"{source} line {line}")
                problems.extend(got.problems)
                if got.transient and unit.attempt < self.retry.attempts:
                    retry.append(k)
                    cost_of_retried += got.result.cost_usd or 0.0
                elif got.transient:
                    final[k] = _replace_error(got.result, f"still transient after {unit.attempt} attempts: {got.result.error}")
                else:
                    final[k] = got.result
            elif timed_out:
                why = "the run timeout" if by_run else "timeout_s"
                final[k] = RowResult(row_id, shard.trial, None, "timeout", error=f"the invocation was killed after {limit:g} s ({why})")
            elif rc != 0:
                how = f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
                final[k] = RowResult(row_id, shard.trial, None, "crash", error=f"the command {how}; stderr tail:\n{tail(stderr_path)}")
            else:
                final[k] = RowResult(row_id, shard.trial, None, "missing", error="the command wrote no result line for this row")
        problems.extend(self._shard_problems(label, final, timed_out, by_run, limit, rc, parsed.lines, stderr_path))
        if retry:
            self.collector.spend_only(calls=0, invocations=0, cost=cost_of_retried)
        self.collector.finish(final, calls=len(shard.keys) - len(early), invocations=1, problems=problems, early=early)
        if not retry:
            return []
        delay = self.retry.delay(unit.attempt)
        again = Shard(shard.trial, shard.index, tuple(retry))
        return [Unit(again, len(retry), unit.attempt + 1, time.monotonic() + delay)]

    def _shard_problems(
        self, label: str, final: Mapping[str, RowResult], timed_out: bool, by_run: bool, limit: float,
        rc: int, lines: int, stderr_path: Path,
    ) -> list[str]:
        def ids(status: str) -> list[RowId]:
            return [r.id for r in final.values() if r.status == status]

        out: list[str] = []
        if ids("timeout"):
            why = "the run timeout was reached" if by_run else "it exceeded timeout_s"
            out.append(f"{label}: killed after {limit:g} s because {why}; rows {describe_ids(ids('timeout'))} unscored")
        elif ids("crash") and rc != 0:
            last = tail(stderr_path, lines=1) or "(no stderr)"
            out.append(f"{label}: the command exited with code {rc}; rows {describe_ids(ids('crash'))} unscored; last stderr line: {last}")
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
    from dataclasses import replace

    return replace(result, error=error)


class _Tail:
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
