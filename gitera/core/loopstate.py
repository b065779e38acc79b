"""The iterate loop's state, committed as .gitera/<tag>/runs/iterate.json with every step (pure).

Because the state travels in the same commit as the attempt it describes, a kill at
any moment leaves a branch whose tip holds a consistent state; `pending` says which
follow-up (restore, gate) the next command must finish first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

ACTIVE = "active"
KILLED = "killed"  # the gate failed: the arm is back at its last gate-passed state
SATURATED = "saturated"  # the gate locked the arm for the verdict
STOPPED = "stopped"  # a budget or plateau stop


@dataclass(frozen=True)
class Point:
    """A state of the iterated arm's target files: the attempt that produced it and its dev results."""

    iteration: int  # 0 = the arm as it was in the run
    commit: str
    score: float | None
    rows_file: str
    blobs: dict[str, str]  # target path -> git blob id


@dataclass(frozen=True)
class LoopState:
    """The iterate loop's state (.gitera/<tag>/loop.json): where the loop is, why it stopped, and what it has spent."""
    arm: str
    iteration: int = 0
    sprint: int = 1
    in_sprint: int = 0
    status: str = ACTIVE
    stop_reason: str | None = None
    consecutive_crashes: int = 0
    spent_usd: float = 0.0
    started_at: float | None = None
    noise_floor: float = 0.0
    run: int = 0
    best: Point | None = None
    gate_passed: Point | None = None  # the latest gate-passed state: what the verdict uses
    sprint_start: str = ""  # commit where the current sprint began (the gate diffs from here)
    pending: tuple[str, ...] = ()  # "restore", "gate": follow-ups the last command did not finish
    holdout: dict[str, Any] | None = None  # the reusable holdout's state (gitera.core.gate.Thresholdout)
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # compact per-attempt records
    stop_kind: str | None = None  # what stopped the loop (STOP_KINDS), None while active
    plateau_from: int = 0  # the plateau window counts attempts after this iteration (set by a resume)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pending"] = list(self.pending)
        d["history"] = list(self.history)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> LoopState:
        def point(p: dict[str, Any] | None) -> Point | None:
            return Point(**p) if p else None

        return LoopState(
            arm=d["arm"],
            iteration=int(d["iteration"]),
            sprint=int(d["sprint"]),
            in_sprint=int(d["in_sprint"]),
            status=str(d["status"]),
            stop_reason=d.get("stop_reason"),
            consecutive_crashes=int(d["consecutive_crashes"]),
            spent_usd=float(d["spent_usd"]),
            started_at=d.get("started_at"),
            noise_floor=float(d["noise_floor"]),
            run=int(d["run"]),
            best=point(d.get("best")),
            gate_passed=point(d.get("gate_passed")),
            sprint_start=str(d.get("sprint_start", "")),
            pending=tuple(d.get("pending", ())),
            history=tuple(d.get("history", ())),
            holdout=d.get("holdout"),
            stop_kind=d.get("stop_kind"),
            plateau_from=int(d.get("plateau_from", 0)),
        )

    def with_(self, **changes: Any) -> LoopState:
        return replace(self, **changes)


def stop_reason(state: LoopState, *, max_iterations: int, max_cost_usd: float | None, max_hours: float | None,
                max_crashes: int, now: float, plateau: bool, next_cost: float | None = None) -> str | None:
    """Why the loop must stop now, in words, or None. ``next_cost``: what the next attempt should cost."""
    found = stop_check(state, max_iterations=max_iterations, max_cost_usd=max_cost_usd, max_hours=max_hours,
                       max_crashes=max_crashes, now=now, plateau=plateau, next_cost=next_cost)
    return found.reason if found else None


# --- what kind of stop, and whether `gitera iterate --resume` may go on (docs/iterate.md) ---
FINAL_KINDS = ("iterations", "cost", "wall_clock")  # the frame's budget: locked, so a stop for it is final
RESUMABLE_KINDS = ("plateau", "crashes", "session")  # a heuristic or a session ended: `--resume` may go on
STOP_KINDS = FINAL_KINDS + RESUMABLE_KINDS


@dataclass(frozen=True)
class Stop:
    """Why the loop must stop: the kind of stop and its reason."""
    kind: str  # one of STOP_KINDS
    reason: str

    @property
    def final(self) -> bool:
        return self.kind in FINAL_KINDS


def stop_check(state: LoopState, *, max_iterations: int, max_cost_usd: float | None, max_hours: float | None,
               max_crashes: int, now: float, plateau: bool, next_cost: float | None = None) -> Stop | None:
    """The first stop that applies now (the frame's budget first), or None."""
    if state.iteration >= max_iterations:
        return Stop("iterations", f"the budget of {max_iterations} iterations is spent")
    if max_cost_usd is not None and state.spent_usd >= max_cost_usd:
        return Stop("cost", f"the cost budget of ${max_cost_usd:g} is spent (${state.spent_usd:.4f})")
    if max_cost_usd is not None and next_cost is not None and state.spent_usd + next_cost > max_cost_usd:
        return Stop("cost", f"the next attempt would cost about ${next_cost:.4f} (the last one's cost per call) but only "
                            f"${max_cost_usd - state.spent_usd:.4f} of the ${max_cost_usd:g} cost budget is left")
    if max_hours is not None and state.started_at is not None and now - state.started_at >= max_hours * 3600:
        return Stop("wall_clock", f"the wall-clock budget of {max_hours:g} h is spent")
    if state.consecutive_crashes >= max_crashes:
        return Stop("crashes", f"{state.consecutive_crashes} consecutive attempts crashed (limit {max_crashes}); "
                               "fix the harness or the change")
    if plateau:
        return Stop("plateau", "plateau: the recent attempts brought no kept gain beyond the noise floor")
    return None


def kind_of(reason: str | None) -> str | None:
    """The kind of a stop recorded before loop states carried `stop_kind` (read from its words)."""
    if not reason:
        return None
    for kind, words in (("iterations", "iterations is spent"), ("cost", "cost budget"), ("wall_clock", "wall-clock budget"),
                        ("crashes", "consecutive attempts crashed"), ("plateau", "plateau")):
        if words in reason:
            return kind
    return "session"


def plateau_reached(history: Sequence[dict[str, Any]], window: int | None, since: int = 0) -> bool:
    """`window` scored attempts after iteration `since` without a keep (crashes do not count); never when off."""
    if window is None:
        return False
    scored = [h for h in history if not h.get("gate") and int(h.get("iteration") or 0) > since
              and h.get("status") in ("keep", "discard", "guard_fail")][-window:]
    return len(scored) >= window and not any(h["status"] == "keep" for h in scored)
