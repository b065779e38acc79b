"""A small work scheduler: N threads, retries with a not-before time, a deadline and a budget gate."""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gitera.adapters.evalrun.model import Budget, StopReason

T = TypeVar("T")


@dataclass
class Unit(Generic[T]):
    """A shard waiting to be scheduled: its payload, the calls it makes, its attempt number and when it may start."""
    payload: T
    calls: int  # row x trial evaluations in this unit (the budget's unit)
    attempt: int = 1
    not_before: float = 0.0
    deferred: bool = False  # run only when no other unit is left or running


FIRST_WAVE_MARGIN = 1.5  # until this run's first cost arrives, the estimate (the pilot's one row) is trusted this far


@dataclass
class BudgetGate:
    """Admits work only while the committed cost fits the budget; cuts running work that would not.

    Committed = spent + rate x outstanding calls (admitted, not yet recorded); the rate is the
    mean cost per call this run has observed, or before any, the estimate x FIRST_WAVE_MARGIN.
    When an observed cost shows the calls in flight would take the total past the cap, the gate
    stops (nothing new is admitted) and calls the stoppers of running units, most outstanding
    calls first, until the rest fit. Stopping a unit saves all but its call in progress, which is
    paid for and never reported: `unseen` counts it at the rate. A unit runs from admission to its
    end on one scheduler thread, which also records its costs, so outstanding calls and stoppers
    are kept per thread.
    """

    budget: Budget
    warn: Callable[[str], None]
    spent: float = 0.0
    observed_calls: int = 0
    warned: bool = False
    stopped: bool = False
    unseen: float = 0.0  # estimated cost of the calls in progress when their invocation was stopped
    listener: Callable[[], None] | None = None  # wakes the scheduler when an estimate or the gate changes
    _outstanding: dict[int, int] = field(default_factory=dict)
    _stoppers: dict[int, Callable[[], None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def per_call(self) -> float | None:
        if self.observed_calls:
            return self.spent / self.observed_calls
        est = self.budget.est_cost_per_call
        return None if est is None else est * FIRST_WAVE_MARGIN

    def _committed(self, rate: float, more: int = 0) -> float:
        return self.budget.spent_before + self.spent + self.unseen + rate * (sum(self._outstanding.values()) + more)

    def admit(self, calls: int) -> bool | None:
        """True: go (the calls are now outstanding on this thread); False: would exceed or the gate
        has stopped; None: wait (no estimate yet, a probe is running)."""
        with self._lock:
            rate = self.per_call()
            if self.stopped:
                return False
            if rate is None and self._outstanding:
                return None
            if rate is not None and self._committed(rate, calls) > self.budget.max_cost_usd + 1e-12:
                return False
            self._outstanding[threading.get_ident()] = calls
            return True

    def on_stop(self, stop: Callable[[], None]) -> None:
        """How to stop the unit this thread runs (an invocation can be killed; a python call cannot)."""
        with self._lock:
            self._stoppers[threading.get_ident()] = stop

    def end(self) -> None:
        """This thread's unit has ended: nothing of it is outstanding any more."""
        with self._lock:
            self._outstanding.pop(threading.get_ident(), None)
            self._stoppers.pop(threading.get_ident(), None)

    def record(self, calls: int, cost: float) -> None:
        me = threading.get_ident()
        with self._lock:
            self.observed_calls += calls
            self.spent += cost
            if me in self._outstanding:
                self._outstanding[me] = max(0, self._outstanding[me] - calls)
            total = self.budget.spent_before + self.spent
            crossed = not self.warned and total >= self.budget.warn_fraction * self.budget.max_cost_usd
            self.warned = self.warned or crossed
            cut = self._cut()
        if crossed:
            self.warn(f"cost so far ${total:.4f} has reached {total / self.budget.max_cost_usd:.0%} of the ${self.budget.max_cost_usd:g} budget")
        if cut is not None:
            message, stoppers = cut
            self.warn(message)
            for stop in stoppers:
                stop()
        if self.listener is not None:
            self.listener()

    def _cut(self) -> tuple[str, list[Callable[[], None]]] | None:
        """When the calls in flight would pass the cap at the observed rate: stop the gate and pick
        the running units to stop (most outstanding calls first) until the rest fit."""
        rate = self.per_call()
        if rate is None or not self.observed_calls:
            return None
        projected = self._committed(rate)
        over = projected - self.budget.max_cost_usd
        if over <= 1e-12:
            return None
        first, self.stopped = not self.stopped, True
        stoppers: list[Callable[[], None]] = []
        for key in sorted(self._stoppers, key=lambda k: -self._outstanding.get(k, 0)):
            if over <= 1e-12 or self._outstanding.get(key, 0) < 2:
                break
            over -= rate * (self._outstanding[key] - 1)
            self._outstanding[key] = 0
            self.unseen += rate
            stoppers.append(self._stoppers.pop(key))
        if not (first or stoppers):
            return None
        stopped = f"stopped {len(stoppers)} running invocation(s); " if stoppers else ""
        return (
            f"at the observed ${rate:.4f} per call, the calls in flight would take the cost to ${projected:.4f}, "
            f"past the ${self.budget.max_cost_usd:g} budget: {stopped}no further calls start"
        ), stoppers


@dataclass
class Scheduler(Generic[T]):
    """Hands shards to eval.concurrency threads in order, holding back retries and stopping when the deadline or the budget says."""
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
    _error: BaseException | None = None
    _cancelled: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def run(self, units: Sequence[Unit[T]], execute: Callable[[Unit[T]], list[Unit[T]]], on_cancel: Callable[[], None]) -> None:
        """Run every unit (and the retries `execute` returns); leftovers stay in `self.leftover`."""
        if self.gate is not None:
            self.gate.listener = self._wake  # a streamed cost can admit waiting units or stop the run
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
                if self.gate is not None and self.gate.stopped:  # work is left that the budget will not pay for
                    self.stop_reason = "budget"
                    self._cond.notify_all()
                    return None
                if not self._ready:
                    wake = self._delayed[0][0] if self.deadline is None else min(self._delayed[0][0], self.deadline)
                    self._cond.wait(max(0.0, wake - now))
                    continue
                unit = self._ready[0]
                if self.gate is not None:
                    admitted = self.gate.admit(unit.calls)
                    if admitted is None or (admitted is False and self._inflight):
                        self._cond.wait()  # an in-flight unit will refine the estimate
                        continue
                    if admitted is False:
                        self.stop_reason = "budget"
                        self._cond.notify_all()
                        return None
                self._ready.popleft()
                self._inflight += 1
                return unit

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

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
                    if self.gate is not None:
                        self.gate.end()
                    self._push(followups)
                    self._cond.notify_all()
