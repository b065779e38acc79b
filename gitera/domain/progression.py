"""Charts drawn from the history alone (the progression chart of `gitera log --chart` and of the conclusion)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.history import Record, attempts

if TYPE_CHECKING:
    from gitera.adapters import charts


@dataclass(frozen=True)
class Progression:
    """What the progression chart draws, from the trailers. ``start`` is the iterated arm's dev
    score before its first attempt — the state the first attempt was compared with, where the
    running best starts (not the baseline arm's score: the iterated arm may start elsewhere)."""

    points: tuple[charts.AttemptPoint, ...]
    gates: tuple[charts.GateMark, ...]
    start: float | None
    noise_floor: float | None


def progression_of(records: Sequence[Record], locked: int | None = None) -> Progression:
    """The loop's attempts and gates; ``locked`` (default: the last gate's locked iteration) is ringed."""
    from gitera.adapters import charts

    atts = attempts(list(records))
    gates = [r.data for r in records if r.kind == "Gate"]
    if locked is None and gates:
        locked = gates[-1].get("locked_iteration")
    first = atts[0] if atts else None
    before = records[: records.index(first)] if first is not None else records
    runs = [r.data for r in before if r.kind == "Result" and r.data.get("kind") == "run"]
    arm = first.data.get("arm") if first is not None else None
    start: Any = first.data.get("best_score") if first is not None else None
    if not isinstance(start, (int, float)):  # an attempt trailer from before best_score was recorded
        start = next((d.get("score") for d in reversed(runs) if d.get("arm") == arm), None)
    noise = next((d.get("noise_floor") for d in reversed(runs) if d.get("status") == "baseline"), None)
    points = tuple(charts.AttemptPoint(_int(r.data.get("iteration")), _float(r.data.get("score")), str(r.data.get("status")),
                                       r.data.get("iteration") == locked) for r in atts)
    marks = tuple(charts.GateMark(_int(g.get("after_iteration")), str(g.get("outcome"))) for g in gates)
    return Progression(points, marks, _float(start), _float(noise))


def _float(v: Any) -> float | None:
    """A trailer's number, or None (a hand-written record may hold anything)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if f == f and abs(f) != float("inf") else None


def _int(v: Any) -> int:
    f = _float(v)
    return int(f) if f is not None and abs(f) < 1e9 else 0


def progression_chart(records: Sequence[Record], target: Path, metric: str = "score", higher_is_better: bool = True) -> tuple[Path, Path]:
    from gitera.adapters import charts

    p = progression_of(records)
    with tempfile.TemporaryDirectory() as tmp:
        png, svg = charts.progression(p.points, p.start if p.start is not None else float("nan"), p.noise_floor, tmp, metric,
                                      p.gates, higher_is_better=higher_is_better)
        target.parent.mkdir(parents=True, exist_ok=True)
        out_png, out_svg = target.with_suffix(".png"), target.with_suffix(".svg")
        shutil.copy(png, out_png)
        shutil.copy(svg, out_svg)
    return out_png, out_svg
