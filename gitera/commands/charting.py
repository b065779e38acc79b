"""Charts drawn from the history alone (the progression chart of `gitera log --chart`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gitera.history import Record, attempts


def progression_chart(records: Sequence[Record], target: Path) -> tuple[Path, Path]:
    from gitera import charts

    base = next((r.data for r in records if r.kind == "Result" and r.data.get("kind") == "run" and r.data.get("status") == "baseline"), {})
    gates = [r.data for r in records if r.kind == "Gate"]
    locked = gates[-1].get("locked_iteration") if gates else None
    points = [charts.AttemptPoint(int(r.data.get("iteration") or 0), r.data.get("score"), str(r.data.get("status")),
                                  r.data.get("iteration") == locked) for r in attempts(list(records))]
    marks = [charts.GateMark(int(g.get("after_iteration") or 0), str(g.get("outcome"))) for g in gates]
    with tempfile.TemporaryDirectory() as tmp:
        png, svg = charts.progression(points, float(base.get("score") or 0.0), base.get("noise_floor"), tmp, gates=marks)
        target.parent.mkdir(parents=True, exist_ok=True)
        out_png, out_svg = target.with_suffix(".png"), target.with_suffix(".svg")
        shutil.copy(png, out_png)
        shutil.copy(svg, out_svg)
    return out_png, out_svg
