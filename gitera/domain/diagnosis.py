"""Where an attempt wins and loses against the baseline or the best, per slice and failure category.

Dev rows appear only as ids and aggregates (their text would be memorized); raw text is
given only for train rows, which the loop may learn from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from gitera.adapters.output import Output
from gitera.core.errors import EvalError, RefusedError
from gitera.core.frame import Frame
from gitera.core.results import matrix, read_results
from gitera.domain.experiment import Experiment
from gitera.domain.scoring import load_split

MAX_IDS = 15


def _rows_file(exp: Experiment, frame: Frame, which: str) -> tuple[str, str]:
    """(label, per-row results file) for 'baseline', 'best' or an iteration number."""
    from gitera.domain.loopstore import load_state
    from gitera.domain.runs import latest_run

    summary = latest_run(exp)
    if summary is None:
        raise RefusedError(f"experiment {exp.tag} has no complete dev run; run `gitera run` first.")
    if which == "baseline":
        return f"baseline {frame.baseline.arm}", str(summary["arms"][frame.baseline.arm]["rows_file"])
    state = load_state(exp)
    if which == "best":
        if state is None or state.best is None:
            arm = frame.iterate.arm if frame.iterate else frame.candidates[0]
            return f"arm {arm} (run {summary['run']})", str(summary["arms"][arm]["rows_file"])
        return f"best (iteration {state.best.iteration})", state.best.rows_file
    if which in summary["arms"]:
        return f"arm {which} (run {summary['run']})", str(summary["arms"][which]["rows_file"])
    if which.isdigit():
        path = exp.rel(f"runs/attempt-{int(which):03d}.jsonl")
        if not (exp.repo.root / path).exists():
            raise RefusedError(f"there is no attempt {which}; see `gitera log`.")
        return f"attempt {int(which)}", path
    raise RefusedError(f"{which!r} is not baseline, best, an arm or an attempt number.")


def compare_rows(
    rows: Sequence[Mapping[str, Any]], ids: Sequence[str], a: Any, b: Any, findings: Mapping[str, str | None],
    slice_columns: Sequence[str], direction: str,
) -> dict[str, Any]:
    """Wins / losses / ties of b against a, per slice and per failure category (pure)."""
    sign = 1.0 if direction == "higher" else -1.0
    diff = sign * (b.mean(axis=1) - a.mean(axis=1))
    outcome = ["win" if d > 1e-12 else "loss" if d < -1e-12 else "tie" for d in diff]
    by_id = {str(r["id"]): r for r in rows}
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for col in [*slice_columns, "finding"]:
        table: dict[str, dict[str, Any]] = defaultdict(lambda: {"win": 0, "loss": 0, "tie": 0, "loss_ids": []})
        for rid, o in zip(ids, outcome):
            value = findings.get(rid) if col == "finding" else by_id.get(rid, {}).get(col)
            key = str(value) if value is not None else "—"
            table[key][o] += 1
            if o == "loss" and len(table[key]["loss_ids"]) < MAX_IDS:
                table[key]["loss_ids"].append(rid)
        groups[col] = dict(sorted(table.items(), key=lambda kv: -kv[1]["loss"]))
    totals = {k: outcome.count(k) for k in ("win", "loss", "tie")}
    return {"totals": totals, "groups": groups, "loss_ids": [i for i, o in zip(ids, outcome) if o == "loss"][:MAX_IDS]}


def _trials(records: Sequence[Mapping[str, Any]]) -> list[int]:
    return sorted({int(r["trial"]) for r in records})


def diagnose_data(exp: Experiment, frame: Frame, attempt: str, against: str) -> dict[str, Any]:
    if frame.metric.level == "run":  # docs/run-level.md
        from gitera.core.errors import RefusedError

        raise RefusedError(f"experiment {exp.tag} scores one number per run of its script (metric.level: run): there are no rows to diagnose; "
                           "`gitera log` shows each attempt's runs and the keep rule's looks.")
    repo = exp.repo
    rows = load_split(exp, "dev")
    ids = [str(r["id"]) for r in rows]
    label_b, file_b = _rows_file(exp, frame, attempt)
    label_a, file_a = _rows_file(exp, frame, against)
    rec_b = read_results((repo.root / file_b).read_text())
    rec_a = read_results((repo.root / file_a).read_text())
    findings: dict[str, str | None] = {}
    for r in rec_b:
        if r.get("finding") and r.get("trial") == 0:
            findings[str(r["id"])] = str(r["finding"])
    # every trial each side recorded (a confirmed attempt has twice the frame's), as its keep decision used them
    result = compare_rows(rows, ids, matrix(rec_a, ids, _trials(rec_a)), matrix(rec_b, ids, _trials(rec_b)), findings,
                          frame.data.slices, frame.metric.direction)
    result.update(subject=label_b, against=label_a, n=len(ids))
    return result


def _subject(exp: Experiment, frame: Frame, which: str) -> tuple[str, str]:
    """(arm, commit to score) for 'baseline', 'best', an arm or an attempt number."""
    from gitera.adapters.history import read
    from gitera.core.loopstate import Point
    from gitera.domain.loopstore import load_state, point_commit
    from gitera.domain.records import attempt_commit
    from gitera.domain.scoring import arm_commit

    iterated = frame.iterate.arm if frame.iterate else frame.candidates[0]
    if which == "baseline":
        return frame.baseline.arm, arm_commit(exp, frame, frame.baseline.arm)
    if which in frame.arms:
        return which, arm_commit(exp, frame, which)
    state = load_state(exp)
    targets = list(frame.iterate.target) if frame.iterate else []
    if which == "best":
        if state is None or state.best is None:
            return iterated, arm_commit(exp, frame, iterated)
        return iterated, point_commit(exp, targets, state.best, f"diagnose: best (iteration {state.best.iteration})")
    commit = attempt_commit(read(exp.repo, exp.branch, exp.tag), int(which)) if which.isdigit() else None
    if commit is None:
        raise RefusedError(f"{which!r} is not baseline, best, an arm or an attempt number; see `gitera log`.")
    point = Point(int(which), commit, None, "", exp.repo.ls_tree(commit, targets))
    return iterated, point_commit(exp, targets, point, f"diagnose: attempt {which}")


def train_view(exp: Experiment, frame: Frame, lock: Mapping[str, Any], attempt: str, against: str, limit: int, out: Output) -> dict[str, Any]:
    """Both sides scored on up to ``limit`` train rows (cached); the losing rows with their text."""
    from gitera.domain.scoring import Scorer, budget_for, spent_so_far

    rows = load_split(exp, "train")[:limit]
    if not rows:
        raise RefusedError(f"experiment {exp.tag} has no train rows to diagnose on (k-fold mode keeps every row in dev).")
    ids = [str(r["id"]) for r in rows]
    trials = list(range(frame.metric.trials))
    scorer = Scorer(exp, frame, lock, out)
    spent = spent_so_far(exp.repo, exp.branch, exp.tag)
    runs = []
    for which in (against, attempt):
        arm, commit = _subject(exp, frame, which)
        run = scorer.score(arm, commit, rows, "train", trials, budget=budget_for(frame, spent, exp))
        spent += run.spent_usd  # the second side must fit in what the first one left
        if run.stop_reason == "budget":
            raise EvalError(f"{which} could not be scored on the {len(rows)} train rows: the cost budget ran out (${spent:.4f} spent); "
                            "diagnose with fewer train rows (--train N) or without --train.")
        if not run.complete:
            raise EvalError(f"{which} could not be scored on the train rows ({run.problems[0] if run.problems else 'incomplete'}); "
                            "fix the harness, or diagnose without --train.")
        runs.append([r.to_json() for r in run.results])
    findings = {str(r["id"]): str(r["finding"]) for r in runs[1] if r.get("finding") and r.get("trial") == 0}
    view = compare_rows(rows, ids, matrix(runs[0], ids, trials), matrix(runs[1], ids, trials), findings,
                        frame.data.slices, frame.metric.direction)
    by_id = {str(r["id"]): r for r in rows}
    view.update(n=len(rows), losses=[by_id[i] for i in view["loss_ids"]])
    return view
