"""A small work scheduler: N threads, retries with a not-before time, a deadline and a budget gate."""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gitera.evalrun.model import Budget, StopReason

T = TypeVar("T")


@dataclass
class Unit(Generic[T]):
    payload: T
    calls: int  # row x trial evaluations in this unit (the budget's unit)
    attempt: int = 1
    not_before: float = 0.0
    deferred: bool = False  # run only when no other unit is left or running


@dataclass
class BudgetGate:
    """Admits work only while the estimated cost stays within the budget."""

    budget: Budget
    warn: Callable[[str], None]
    spent: float = 0.0
    observed_calls: int = 0
    warned: bool = False

    def per_call(self) -> float | None:
        if self.observed_calls:
            return self.spent / self.observed_calls
        return self.budget.est_cost_per_call

    def admit(self, calls: int, inflight_calls: int) -> bool | None:
        """True: go; False: would exceed; None: wait (no estimate yet, a probe is running)."""
        est = self.per_call()
        if est is None:
            return True if inflight_calls == 0 else None
        projected = self.budget.spent_before + self.spent + est * (inflight_calls + calls)
        return projected <= self.budget.max_cost_usd + 1e-12

    def record(self, calls: int, cost: float) -> None:
        self.observed_calls += calls
        self.spent += cost
        total = self.budget.spent_before + self.spent
        if not self.warned and total >= self.budget.warn_fraction * self.budget.max_cost_usd:
            self.warned = True
            self.warn(
                f"cost so far ${total:.4f} has reached {total / self.budget.max_cost_usd:.0%} "
                f"of the ${self.budget.max_cost_usd:g} budget"
            )


@dataclass
class Scheduler(Generic[T]):
    concurrency: int
    deadline: float | None = None  # time.monotonic() value
    gate: BudgetGate | None = None
    stop_reason: StopReason | None = None
    leftover: list[Unit[T]] = field(default_factory=list)
    _ready: deque[Unit[T]] = field(default_factory=deque)  # in submission order
    _delayed: list[tuple[float, int, Unit[T]]] = field(default_factory=list)  # heap of retries
    _parked: list[Unit[T]] = field(default_factory=list)  # deferred units
    _seq: int = 0
    _inflight: int = 0
    _inflight_calls: int = 0
    _error: BaseException | None = None
    _cancelled: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def run(self, units: Sequence[Unit[T]], execute: Callable[[Unit[T]], list[Unit[T]]], on_cancel: Callable[[], None]) -> None:
        """Run every unit (and the retries `execute` returns); leftovers stay in `self.leftover`."""
        self._push(units)
        threads = [threading.Thread(target=self._work, args=(execute,), daemon=True) for _ in range(max(1, self.concurrency))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except BaseException:
            with self._cond:
                self._cancelled = True
                self._cond.notify_all()
            on_cancel()
            raise
        if self._error is not None:
            on_cancel()
            raise self._error
        self.leftover = [*self._ready, *(u for _, _, u in sorted(self._delayed, key=lambda d: d[:2])), *self._parked]

    def _push(self, units: Sequence[Unit[T]]) -> None:
        for unit in units:
            if unit.deferred:
                self._parked.append(unit)
            elif unit.not_before > time.monotonic():
                self._seq += 1
                heapq.heappush(self._delayed, (unit.not_before, self._seq, unit))
            else:
                self._ready.append(unit)

    def _next(self) -> Unit[T] | None:
        with self._cond:
            while True:
                if self._cancelled or self.stop_reason is not None:
                    return None
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    self._ready.append(heapq.heappop(self._delayed)[2])
                if not self._ready and not self._delayed:
                    if self._inflight == 0 and self._parked:
                        self._ready.extend(self._parked)  # nothing else to run: their turn
                        self._parked.clear()
                        continue
                    if self._inflight == 0:
                        self._cond.notify_all()
                        return None
                    self._cond.wait()
                    continue
                if self.deadline is not None and now >= self.deadline:
                    self.stop_reason = "run_timeout"
                    self._cond.notify_all()
                    return None
                if not self._ready:
                    wake = self._delayed[0][0] if self.deadline is None else min(self._delayed[0][0], self.deadline)
                    self._cond.wait(max(0.0, wake - now))
                    continue
                unit = self._ready[0]
                if self.gate is not None:
                    admitted = self.gate.admit(unit.calls, self._inflight_calls)
                    if admitted is None or (admitted is False and self._inflight):
                        self._cond.wait()  # an in-flight unit will refine the estimate
                        continue
                    if admitted is False:
                        self.stop_reason = "budget"
                        self._cond.notify_all()
                        return None
                self._ready.popleft()
                self._inflight += 1
                self._inflight_calls += unit.calls
                return unit

    def _work(self, execute: Callable[[Unit[T]], list[Unit[T]]]) -> None:
        while True:
            unit = self._next()
            if unit is None:
                return
            followups: list[Unit[T]] = []
            try:
                followups = execute(unit)
            except BaseException as exc:  # a bug: stop everything and re-raise in the caller
                with self._cond:
                    self._error = exc
                    self._cancelled = True
            finally:
                with self._cond:
                    self._inflight -= 1
                    self._inflight_calls -= unit.calls
                    self._push(followups)
                    self._cond.notify_all()
