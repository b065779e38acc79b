"""`gitera lock --check`: run the harness once per arm before the frame is frozen (issue 13).

A harness that produces no score is refused before it is locked, so nobody discovers a broken
harness after it can no longer change. The row it runs on is the first row the split will put in
*train* (the split is seeded from the frame's hash, so it is known before the lock): never a row
that will be sealed in the test set. Nothing is cached (a check row's result must not end up in
the eval cache) and nothing is committed by the check itself; `gitera lock` records its outcome.

`score_problem` is the one question "does this run of the harness produce a score?"; an experiment
kind that reads its score another way (one score per invocation, for run-level experiments)
answers it there, and the rest of the check stays as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.output import Output
from gitera.core.errors import ConfigError
from gitera.core.frame import Frame
from gitera.domain.experiment import Experiment
from gitera.domain.scoring import Scorer, ref_tree

if TYPE_CHECKING:
    from gitera.adapters.evalrun import EvalRun


@dataclass(frozen=True)
class ArmCheck:
    """The harness check's result for one arm: the commit scored, the score, a problem and notes."""
    arm: str
    commit: str
    score: float | None
    problem: str | None  # why this arm's harness run gives no score (None: it gave one)
    notes: tuple[str, ...] = ()  # what the pilot will refuse later (advice now, not a refusal)

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "commit": self.commit, "score": self.score, "problem": self.problem, "notes": list(self.notes)}


@dataclass(frozen=True)
class HarnessCheck:
    """lock --check's dry run: the row, the split it came from, each arm's check and the spend."""
    row: str
    split: str
    arms: tuple[ArmCheck, ...]
    spent_usd: float

    @property
    def ok(self) -> bool:
        return all(a.problem is None for a in self.arms)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "row": self.row, "split": self.split, "arms": [a.to_dict() for a in self.arms], "spent_usd": self.spent_usd}


def score_problem(frame: Frame, run: EvalRun) -> str | None:
    """Why this run of the harness produced no usable score, in words; None when it did."""
    if run.aggregate_only:
        return ("it printed only a `SCORE:` aggregate and wrote no result line to $GITERA_OUT, but this experiment compares "
                "arms row by row: write one JSON line per row with its `id` and a numeric `score` to $GITERA_OUT")
    if any(r.status == "ok" and r.score is not None for r in run.results):
        return None
    if run.problems:  # the first is the run's summary ("1 of 1 … unscored"); the next says why
        import re

        return re.sub(r"^trial \d+ shard \d+: ", "", run.problems[1] if len(run.problems) > 1 else run.problems[0])
    first = run.results[0] if run.results else None
    if first is None:
        return "the harness gave no result at all"
    return f"{first.status}: {(first.error or 'no score').splitlines()[0]}"


def check_row(exp: Experiment, frame: Frame, fhash: str, data: Path | None) -> tuple[dict[str, Any], str]:
    """The row the check runs on: the first row the split will put in train (in k-fold mode, in dev)."""
    from gitera.domain.splitplan import plan_split

    plan = plan_split(exp, frame, fhash, data, command="lock --check")
    for split in ("train", "dev"):
        for row, label in zip(plan.rows, plan.result.labels):
            if label == split:
                return row, split
    raise ConfigError(f"{plan.source} gives no train or dev row to run the harness on; check the data and data.split in {exp.frame_rel}.")


def check_harness(exp: Experiment, frame: Frame, lock: Mapping[str, Any], data: Path | None, out: Output) -> HarnessCheck:
    """Run every arm's harness once on the check row, at the commit the lock will freeze."""
    from gitera.adapters.evalrun import check_pilot

    repo = exp.repo
    tip = repo.rev(f"refs/heads/{exp.branch}")
    assert tip is not None
    # the branch with the frame as it will be locked (it is usually not committed yet)
    locked_state = repo.make_commit(tip, {exp.frame_rel: exp.frame_bytes()}, f"gitera lock --check: {exp.tag}")
    if frame.metric.level == "run":  # runlevel: one run of the script per arm, seed 0, dev (docs/run-level.md)
        return _check_runs(exp, frame, lock, locked_state, out)
    row, split = check_row(exp, frame, str(lock["frame"]["sha256"]), data)
    scorer = Scorer(exp, frame, lock, out, use_cache=False)
    arms, spent = [], 0.0
    for arm in frame.arms:
        ref = frame.arms[arm].ref  # the commit the lock will pin, with the files it will lock laid over it (issue 12)
        commit = ref_tree(exp, lock, arm, repo.rev(ref) or "", locked_state) if ref else locked_state
        out.info(f"lock --check: arm {arm} on {split} row {row['id']} …")
        run = scorer.score(arm, commit, [row], split, [0])
        spent += run.spent_usd
        problem = score_problem(frame, run)
        ok = next((r for r in run.results if r.status == "ok" and r.score is not None), None)
        notes = tuple(p for p in check_pilot({arm: list(run.results)}) if problem is None) if not run.aggregate_only else ()
        arms.append(ArmCheck(arm, commit, ok.score if ok else None, problem, notes))
    return HarnessCheck(str(row["id"]), split, tuple(arms), spent)


# --- runlevel: `lock --check` of a run-level experiment (docs/run-level.md) -----------------------------------
def _check_runs(exp: Experiment, frame: Frame, lock: Mapping[str, Any], locked_state: str, out: Output) -> HarnessCheck:
    """Every arm's script run once (seed 0, dev), not cached: a run must give a readable score."""
    from gitera.domain.runlevel import RunScorer, spent

    scorer = RunScorer(exp, frame, lock, out)
    arms, used = [], 0.0
    for arm in frame.arms:
        ref = frame.arms[arm].ref  # as for rows: the commit the lock will pin, with the files it will lock laid over it
        commit = ref_tree(exp, lock, arm, exp.repo.rev(ref) or "", locked_state) if ref else locked_state
        out.info(f"lock --check: arm {arm}, one run of `{frame.eval.command}` …")
        r = scorer.score(arm, commit, "dev", [0], read_cache=False, store=False)[0]
        used += spent([r])
        problem = None if r.status == "ok" else f"{r.status}: {(r.error or 'no score').splitlines()[0]}"
        arms.append(ArmCheck(arm, commit, r.score, problem, tuple(r.problems)))
    return HarnessCheck("run", "dev", tuple(arms), used)
# --- end runlevel -----------------------------------------------------------------------------------------------
