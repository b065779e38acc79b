"""Where an attempt wins and loses against the baseline or the best, per slice and failure category.

Dev rows appear only as ids and aggregates (their text would be memorized); raw text is
given only for train rows, which the loop may learn from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from gitera.adapters.output import Output
from gitera.core import rowview
from gitera.core.errors import EvalError, RefusedError
from gitera.core.frame import Frame
from gitera.core.results import read_results
from gitera.domain.experiment import Experiment
from gitera.domain.scoring import load_split

MAX_IDS = 15


def rows_file(exp: Experiment, frame: Frame, which: str) -> tuple[str, str]:
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
    rows: Sequence[Mapping[str, Any]], ids: Sequence[str], rec_a: Sequence[Mapping[str, Any]], rec_b: Sequence[Mapping[str, Any]],
    slice_columns: Sequence[str], direction: str, secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """Wins / losses / ties / crashes of b against a, and the rows b gets wrong, per slice and
    per failure category (pure). A row either side could not score is a crash, never a tie;
    its first error text has every string of ``secrets`` (the dev rows' text) redacted."""
    binary = rowview.is_binary([*rec_a, *rec_b])
    pairs = rowview.pair_rows(ids, rowview.sides(rec_a, binary, direction), rowview.sides(rec_b, binary, direction), direction)
    by_id = {str(r["id"]): r for r in rows}
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for col in [*slice_columns, "finding"]:
        table: dict[str, dict[str, Any]] = defaultdict(lambda: {"win": 0, "loss": 0, "tie": 0, "crash": 0, "wrong": 0, "loss_ids": []})
        for p in pairs:
            value = (p.b.finding if p.b else None) if col == "finding" else by_id.get(p.id, {}).get(col)
            g = table[str(value) if value is not None else "—"]
            g[p.outcome] += 1
            g["wrong"] += bool(p.b and p.b.wrong)
            if p.outcome == "loss" and len(g["loss_ids"]) < MAX_IDS:
                g["loss_ids"].append(p.id)
        groups[col] = dict(sorted(table.items(), key=lambda kv: (-kv[1]["loss"], -kv[1]["wrong"])))
    totals = {k: sum(p.outcome == k for p in pairs) for k in rowview.OUTCOMES}
    wrong = [p for p in pairs if p.b is not None and p.b.wrong]
    crashed = [p for p in pairs if p.outcome == "crash"]
    first = next((s for p in crashed for s in (p.b, p.a) if s is not None and s.error), None)
    return {
        "totals": totals, "groups": groups,
        "loss_ids": [p.id for p in pairs if p.outcome == "loss"][:MAX_IDS],
        "wrong": {"n": len(wrong), "both": sum(p.change == "wrong_both" for p in pairs),
                  "fixed": sum(p.change == "fixed" for p in pairs), "broken": sum(p.change == "broken" for p in pairs),
                  "ids": [p.id for p in wrong][:MAX_IDS], "binary": binary},
        "crash": {"n": len(crashed), "ids": [p.id for p in crashed][:MAX_IDS],
                  "error": rowview.excerpt(rowview.redact(first.error, secrets)) if first is not None and first.error else None},
    }


def dev_secrets(frame: Frame, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The dev rows' free text (every text column but the id, label and slices): what an error
    text shown to the loop must not carry."""
    from gitera.core.leak import row_texts

    return row_texts(rows, exclude=["id", frame.data.id or "id", *([frame.data.label] if frame.data.label else []), *frame.data.slices])


def diagnose_data(exp: Experiment, frame: Frame, attempt: str, against: str) -> dict[str, Any]:
    if frame.metric.level == "run":  # docs/run-level.md
        from gitera.core.errors import RefusedError

        raise RefusedError(f"experiment {exp.tag} scores one number per run of its script (metric.level: run): there are no rows to diagnose; "
                           "`gitera log` shows each attempt's runs and the keep rule's looks.")
    repo = exp.repo
    rows = load_split(exp, "dev")
    ids = [str(r["id"]) for r in rows]
    label_b, file_b = rows_file(exp, frame, attempt)
    label_a, file_a = rows_file(exp, frame, against)
    rec_b = read_results((repo.root / file_b).read_text())
    rec_a = read_results((repo.root / file_a).read_text())
    # every trial each side recorded (a confirmed attempt has twice the frame's), as its keep decision used them
    result = compare_rows(rows, ids, rec_a, rec_b, frame.data.slices, frame.metric.direction, dev_secrets(frame, rows))
    result.update(subject=label_b, against=label_a, n=len(ids))
    return result


def _subject(exp: Experiment, frame: Frame, which: str) -> tuple[str, str]:
    """(arm, commit to score) for 'baseline', 'best', an arm or an attempt number."""
    from gitera.adapters.history import read
    from gitera.core.loopstate import Point
    from gitera.domain.loopstore import load_state, point_commit
    from gitera.domain.records import attempt_commit
    from gitera.domain.runs import latest_run
    from gitera.domain.scoring import arm_commit

    summary = latest_run(exp) or {"arms": {}}

    def as_run(arm: str) -> tuple[str, str]:
        """An arm as the latest dev run scored it, as the dev side of the comparison reads it (the tip
        holds the iterated arm's current best, not the state the run scored)."""
        return arm, arm_commit(exp, frame, arm, at=summary["arms"].get(arm, {}).get("commit"))  # its tree rebuilt (issue 12)

    iterated = frame.iterate.arm if frame.iterate else frame.candidates[0]
    if which == "baseline":
        return as_run(frame.baseline.arm)
    if which in frame.arms:
        return as_run(which)
    state = load_state(exp)
    targets = list(frame.iterate.target) if frame.iterate else []
    if which == "best":
        if state is None or state.best is None:
            return as_run(iterated)
        return iterated, point_commit(exp, targets, state.best, f"diagnose: best (iteration {state.best.iteration})")
    commit = attempt_commit(read(exp.repo, exp.branch, exp.tag), int(which)) if which.isdigit() else None
    if commit is None:
        raise RefusedError(f"{which!r} is not baseline, best, an arm or an attempt number; see `gitera log`.")
    point = Point(int(which), commit, None, "", exp.repo.ls_tree(commit, targets))
    return iterated, point_commit(exp, targets, point, f"diagnose: attempt {which}")


def score_train(exp: Experiment, frame: Frame, lock: Mapping[str, Any], attempt: str, against: str, limit: int,
                out: Output) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Both sides scored on up to ``limit`` train rows (cached, within the cost budget): (rows, against's records, attempt's records)."""
    from gitera.domain.scoring import Scorer, budget_for, spent_so_far

    rows = load_split(exp, "train")[:limit]
    if not rows:
        raise RefusedError(f"experiment {exp.tag} has no train rows to compare on (k-fold mode keeps every row in dev).")
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
                            "use fewer train rows (--train N) or leave --train out.")
        if not run.complete:
            raise EvalError(f"{which} could not be scored on the train rows ({run.problems[0] if run.problems else 'incomplete'}); "
                            "fix the harness, or leave --train out.")
        runs.append([r.to_json() for r in run.results])
    return rows, runs[0], runs[1]


def train_view(exp: Experiment, frame: Frame, lock: Mapping[str, Any], attempt: str, against: str, limit: int, out: Output) -> dict[str, Any]:
    """Both sides scored on up to ``limit`` train rows (cached); the losing rows with their text."""
    rows, rec_a, rec_b = score_train(exp, frame, lock, attempt, against, limit, out)
    ids = [str(r["id"]) for r in rows]
    view = compare_rows(rows, ids, rec_a, rec_b, frame.data.slices, frame.metric.direction)
    by_id = {str(r["id"]): r for r in rows}
    view.update(n=len(rows), losses=[by_id[i] for i in view["loss_ids"]])
    return view
