"""The verdict as the frame registers it: the rules applied with every locked parameter, the
per-slice scores, and the decision in one sentence. Pure: arrays and the frame in, values out.

`gitera verdict` decides with these (gitera.domain.opening) and `gitera verify` re-decides
with the same functions from the locked frame (gitera.domain.audit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gitera.core.frame import Frame
from gitera.core.results import sanitize

if TYPE_CHECKING:
    from gitera.core import rules


def registered_threshold(frame: Frame) -> rules.Threshold:
    from gitera.core import rules

    t = frame.threshold
    return rules.Threshold(effect=t.effect, basis=t.basis, slice_loss_floor=t.slice_loss_floor, alpha=t.alpha, direction=frame.metric.direction)


def apply_rules(frame: Frame, fhash: str, mats: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> rules.Verdict:
    """The pre-registered verdict rules on the test scores, every parameter from the frame (rule 3):
    what `gitera verdict` decides, and what `gitera verify` re-decides from the locked frame."""
    from gitera.core import analysis

    base = frame.baseline.arm
    return analysis.analyze_rows(mats[base], {a: m for a, m in mats.items() if a != base}, rows, threshold=registered_threshold(frame),
                                 seed=int(fhash[:8], 16), slice_columns=frame.data.slices, cluster=frame.data.cluster,
                                 severity=frame.metric.severity)


def slice_scores(scores: Any, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], alpha: float) -> dict[str, dict[str, Any]]:
    """One arm's test score in each slice (``column=value``), trials averaged per row first, with a
    Wilson interval when every row's score is 0 or 1 (a proportion of rows: honest for small slices)."""
    from gitera.core import stats

    means = [float(x) for x in stats.row_means(scores)]
    binary = stats.is_binary(means)
    out: dict[str, dict[str, Any]] = {}
    for column in columns:
        groups: dict[str, list[float]] = {}
        for row, x in zip(rows, means):
            groups.setdefault(f"{column}={row.get(column)}", []).append(x)
        for name, xs in sorted(groups.items()):
            w = stats.wilson_interval(round(sum(xs)), len(xs), alpha) if binary else None
            out[name] = {"n": len(xs), "score": sanitize(sum(xs) / len(xs)), "wilson": [sanitize(w.low), sanitize(w.high)] if w else None}
    return out


def count_findings(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        f = r.get("finding")
        if f:
            counts[str(f)] = counts.get(str(f), 0) + 1
    return counts


def decision_sentence(d: Mapping[str, Any], frame: Frame) -> str:
    from gitera.core.rules import narrow_scope

    arm, kind = d.get("arm"), d.get("decision")
    if frame.metric.level == "run":  # one score per run: no slices, and sizing in runs (docs/run-level.md)
        return _run_sentence(d, frame)
    if kind == "ship":
        return f"Ship {arm}: it beats {frame.baseline.arm} by at least the registered {frame.threshold.effect:g} on the sealed test set and holds on every slice."
    if kind == "ship_narrowly":
        return f"Ship {arm} narrowly, to {narrow_scope(d.get('slices') or [])} only: it clears the threshold overall but not on every slice."
    if kind == "underpowered":
        need = d.get("rows_needed")
        return "Underpowered — cannot conclude: no arm is decided either way" + (f"; about {need} test rows would decide it." if need else ".")
    return f"Kill: no arm beats {frame.baseline.arm} by the registered {frame.threshold.effect:g} on the sealed test set."


def _run_sentence(d: Mapping[str, Any], frame: Frame) -> str:
    arm, kind, base, effect = d.get("arm"), d.get("decision"), frame.baseline.arm, frame.threshold.effect
    where = f"on the sealed test files ({frame.metric.trials} runs per arm, Welch's t)"
    if kind == "ship":
        return f"Ship {arm}: it beats {base} by at least the registered {effect:g} {where}."
    if kind == "underpowered":
        need = d.get("rows_needed")
        return "Underpowered — cannot conclude: no arm is decided either way" + (f"; about {need} runs per arm would decide it." if need else ".")
    return f"Kill: no arm beats {base} by the registered {effect:g} {where}."
