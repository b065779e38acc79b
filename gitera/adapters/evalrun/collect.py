"""Thread-safe collection of results as units finish: cache writes, progress, budget."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gitera.adapters.evalrun.model import RowResult
from gitera.adapters.evalrun.schedule import BudgetGate


class ProgressSink(Protocol):
    def advance(self, rows: int, cost_usd: float = 0.0) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass
class Collector:
    """Where an eval run's results go as they arrive: the result store, progress, the budget gate, the spend journal, and what is counted."""
    store: Callable[[Sequence[RowResult]], None] | None  # writes ok results to the cache
    progress: ProgressSink | None
    gate: BudgetGate | None
    journal: Callable[[float], None] | None = None  # writes each cost down before it is counted (evalrun.journal)
    results: dict[tuple[str, int], RowResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    aggregates: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    calls: int = 0
    invocations: int = 0
    spent: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def early(self, keyed: Mapping[str, RowResult]) -> None:
        """Rows a still-running unit has finished: cached and counted now, final later."""
        cost = sum(r.cost_usd or 0.0 for r in keyed.values())
        self._journal(cost)
        with self._lock:
            self.calls += len(keyed)
            self.spent += cost
        if self.store is not None:
            self.store(list(keyed.values()))
        if self.gate is not None:
            self.gate.record(len(keyed), cost)
        if self.progress is not None:
            self.progress.advance(len(keyed), cost)

    def finish(
        self, keyed: Mapping[str, RowResult], *, calls: int, invocations: int,
        problems: Sequence[str] = (), early: Collection[str] = (),
    ) -> None:
        """Record the final results of one unit (rows being retried are not in `keyed`).

        Rows already reported by `early` are not counted again; if their final status is
        no longer ok (e.g. the id turned out to be written twice) the cache entry is dropped.
        """
        new = {k: r for k, r in keyed.items() if k not in early}
        cost = sum(r.cost_usd or 0.0 for r in new.values())
        self._journal(cost)
        with self._lock:
            for key, result in keyed.items():
                self.results[(key, result.trial)] = result
            self.problems.extend(problems)
            self.calls += calls
            self.invocations += invocations
            self.spent += cost
        if self.store is not None:
            fresh = [r for r in new.values() if r.status == "ok" and r.score is not None]
            dropped = [r for k, r in keyed.items() if k in early and r.status != "ok"]
            if fresh or dropped:
                self.store(fresh + dropped)  # a non-ok result is a tombstone
        if self.gate is not None:
            self.gate.record(calls, cost)
        if self.progress is not None and new:
            self.progress.advance(len(new), cost)

    def spend_only(self, *, calls: int, invocations: int, cost: float, problems: Sequence[str] = ()) -> None:
        """A unit whose rows will be retried: the calls and cost count, the rows do not finish."""
        self._journal(cost)
        with self._lock:
            self.calls += calls
            self.invocations += invocations
            self.spent += cost
            self.problems.extend(problems)
        if self.gate is not None:
            self.gate.record(calls, cost)

    def _journal(self, cost: float) -> None:
        if self.journal is not None and cost > 0:
            self.journal(cost)

    def aggregate(self, trial: int, score: float, rows: int) -> None:
        with self._lock:
            self.aggregates.setdefault(trial, []).append((score, rows))

    def warn(self, message: str) -> None:
        with self._lock:
            self.warnings.append(message)
        if self.progress is not None:
            self.progress.warn(message)


def describe_ids(ids: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
