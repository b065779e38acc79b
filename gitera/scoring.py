"""Scoring an arm at a commit: the glue between an experiment and the eval engine.

Shared by pilot, run, iterate, gate and verdict. The eval always runs in a clean
detached work tree of the arm's commit (never the user's tree); results are cached
by the commit's content (state under .gitera/<tag>/runs excluded), the params, the
harness (locked files + frame) and the trial index.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.errors import ConfigError, EvalError, RefusedError
from gitera.experiment import VERDICT_FILE, Experiment, frame_hash
from gitera.frame import Frame
from gitera.git import Repo, checkout_dir
from gitera.output import Output
from gitera.repolock import state_dir

if TYPE_CHECKING:
    import numpy as np

    from gitera.evalrun import Budget, EvalRun, EvalSpec

RUNS = "runs"
SPLITS = ("train", "dev", "gate")


def eval_spec(frame: Frame, lock: Mapping[str, Any]) -> EvalSpec:
    from gitera.evalrun import EvalSpec

    parts = [frame_hash(dict(lock)), *sorted(f["sha256"] for f in lock["files"])]
    harness_hash = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return EvalSpec(command=frame.eval.command, python=frame.eval.python, harness_hash=harness_hash)


def content_id(repo: Repo, commit: str, tag: str) -> str:
    """The commit's content minus gitera's run records: what the eval can see."""
    listing = repo.git("ls-tree", "-r", "--full-tree", commit)
    skip = f"\t.gitera/{tag}/{RUNS}/"
    kept = [line for line in listing.splitlines() if skip not in line]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def arm_commit(exp: Experiment, frame: Frame, arm: str) -> str:
    """The commit an arm is scored at: its `ref`, else the experiment branch tip."""
    ref = frame.arms[arm].ref
    commit = exp.repo.rev(ref) if ref else exp.repo.rev(f"refs/heads/{exp.branch}")
    if commit is None:
        raise ConfigError(f"arm {arm}'s ref {ref!r} is not a commit in this repository; fix `arms.{arm}.ref` in a new experiment.")
    return commit


def load_split(exp: Experiment, split: str) -> list[dict[str, Any]]:
    path = exp.path(f"split/{split}.jsonl")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RefusedError(f"experiment {exp.tag} has no split yet; run `gitera split` first.") from None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def require_split(exp: Experiment) -> dict[str, Any]:
    path = exp.path("split/manifest.json")
    if not path.exists():
        raise RefusedError(f"experiment {exp.tag} has no split yet; run `gitera split` first.")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def require_open(exp: Experiment) -> None:
    if exp.is_concluded:
        raise RefusedError(
            f"experiment {exp.tag} has its verdict: the sealed test set was opened once and the experiment is closed; "
            "a new question needs a new experiment (`gitera init NEW_TAG`)."
        )
    if exp.path(VERDICT_FILE).exists():
        raise RefusedError(
            f"{exp.rel(VERDICT_FILE)} exists but no verdict tag gitera/{exp.tag}/verdict names its commit: if `gitera verdict` "
            "made it, fetch the tag (`git fetch --tags`); if not, remove the file — only the verdict concludes an experiment."
        )


def budget_for(frame: Frame, spent: float, exp: Experiment | None = None) -> Budget | None:
    """The cost cap for a run, with the pilot's dearest per-row cost as the first estimate.

    Without an estimate the first unit (a whole shard) would be admitted blind and could
    overshoot the cap before any cost was known.
    """
    from gitera.evalrun import Budget

    cap = frame.iterate.budget.max_cost_usd if frame.iterate else None
    if cap is None:
        return None
    return Budget(max_cost_usd=cap, spent_before=spent, est_cost_per_call=pilot_cost_per_call(exp) if exp is not None else None)


def pilot_cost_per_call(exp: Experiment) -> float | None:
    """The highest cost_usd any arm reported for its pilot row (None without a pilot)."""
    try:
        arms = json.loads(exp.path("runs/pilot.json").read_text()).get("arms") or {}
        costs = [float(a["cost_usd"]) for a in arms.values() if isinstance(a, dict) and a.get("cost_usd") is not None]
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return max(costs) if costs and max(costs) > 0 else None


def spent_so_far(repo: Repo, branch: str) -> float:
    """Money the experiment's evals have spent, summed from the trailers on its branch (pilot, runs, attempts, gates)."""
    out = repo.git("log", "--format=%(trailers:key=Gitera-Result,valueonly,separator=%x1e)%x1e%(trailers:key=Gitera-Pilot,valueonly)%x1e"
                   "%(trailers:key=Gitera-Gate,valueonly)%x1e", branch)
    total = 0.0
    for chunk in out.split("\x1e"):
        chunk = chunk.strip()
        if not chunk:
            continue
        try:
            value = json.loads(chunk).get("spent_usd")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            total += value
    return total


@dataclass
class Scorer:
    """Everything needed to score arms of one experiment."""

    exp: Experiment
    frame: Frame
    lock: Mapping[str, Any]
    out: Output
    use_cache: bool = True

    def score(
        self,
        arm: str,
        commit: str,
        rows: Sequence[Mapping[str, Any]],
        split: str,
        trials: Sequence[int],
        budget: Budget | None = None,
        slot: str | None = None,
    ) -> EvalRun:
        repo = self.exp.repo
        checkout = checkout_dir(repo, commit, slot or _slot(arm))
        base = state_dir(repo.common_dir)
        (base / "work").mkdir(exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=_slot(arm) + "-", dir=base / "work"))
        try:
            return self._score(arm, commit, checkout, rows, split, trials, budget, base, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _score(self, arm: str, commit: str, checkout: Path, rows: Sequence[Mapping[str, Any]], split: str,
               trials: Sequence[int], budget: Budget | None, base: Path, workdir: Path) -> EvalRun:
        from gitera.cache import Cache
        from gitera.evalrun import run_eval
        from gitera.progress import Progress

        repo = self.exp.repo
        progress = None if self.out.json_mode or self.out.quiet else Progress(sys.stderr)
        run = run_eval(
            eval_spec(self.frame, self.lock),
            checkout=checkout,
            tag=self.exp.tag,
            arm=arm,
            params=dict(self.frame.arms[arm].params),
            split=split,
            rows=list(rows),
            trials=list(trials),
            concurrency=self.frame.eval.concurrency,
            timeout_s=self.frame.eval.timeout_s,
            cache=Cache(base / "cache") if self.use_cache else None,
            tree_id=content_id(repo, commit, self.exp.tag),
            budget=budget,
            progress=progress,
            workdir=workdir,
        )
        for warning in run.warnings:
            self.out.warn(f"arm {arm}: {warning}")
        if self.frame.eval.judge is not None:
            run = self._judged(run, arm, checkout, rows, split, trials, base)
        return run

    def _judged(self, run: EvalRun, arm: str, checkout: Path, rows: Sequence[Mapping[str, Any]], split: str,
                trials: Sequence[int], base: Path) -> EvalRun:
        """Replace the arm's scores by the blind judge's (rule 15)."""
        from gitera import judging
        from gitera.evalrun import run_eval

        judge = self.frame.eval.judge
        assert judge is not None
        spec = judging.judge_spec(judge, eval_spec(self.frame, self.lock).harness_hash)
        seed = frame_hash(dict(self.lock))
        judged = {}
        for t in trials:
            jrows = judging.judge_rows(rows, run, t, seed, list(self.frame.arms), arm)
            workdir = judging.workdir_for(base, arm)
            try:
                judged[t] = run_eval(spec, checkout=checkout, tag=self.exp.tag, arm=judging.JUDGE_ARM, params={}, split=split, rows=jrows,
                                     trials=[t], concurrency=self.frame.eval.concurrency, timeout_s=self.frame.eval.timeout_s, workdir=workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        return judging.apply_judge(run, judged)

    def cross_judge(self, runs: Mapping[str, EvalRun], rows: Sequence[Mapping[str, Any]], commit: str) -> dict[str, Any] | None:
        """Re-judge the first 5 dev rows of each candidate with the cross-judge; record the agreement."""
        from gitera import judging
        from gitera.evalrun import run_eval

        cross = self.frame.eval.cross_judge
        if cross is None or self.frame.eval.judge is None:
            return None
        spec = judging.judge_spec(cross, eval_spec(self.frame, self.lock).harness_hash + ":cross")
        seed = frame_hash(dict(self.lock))
        checkout = checkout_dir(self.exp.repo, commit, "cross-judge")
        picked = sorted(rows, key=lambda r: hashlib.sha256(f"{seed}|{r['id']}".encode()).hexdigest())[: judging.CROSS_ROWS]
        report: dict[str, Any] = {"arms": {}}
        for arm, run in runs.items():
            jrows = judging.judge_rows(picked, run, 0, seed, list(self.frame.arms), arm)
            workdir = judging.workdir_for(state_dir(self.exp.repo.common_dir), "cross")
            try:
                cj = run_eval(spec, checkout=checkout, tag=self.exp.tag, arm=judging.JUDGE_ARM, params={}, split="dev", rows=jrows, trials=[0],
                              concurrency=self.frame.eval.concurrency, timeout_s=self.frame.eval.timeout_s, workdir=workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            primary = {str(r.id): r.score for r in run.results if r.trial == 0 and str(r.id) in {str(p["id"]) for p in picked}}
            report["arms"][arm] = judging.cross_check(primary, {str(r.id): r.score for r in cj.results})
        report["flagged"] = any(a["flagged"] for a in report["arms"].values())
        return report


def _slot(arm: str) -> str:
    return "arm-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in arm)


# --- per-row records ------------------------------------------------------------------


def results_jsonl(run: EvalRun) -> bytes:
    lines = [json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False) for r in run.results]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def read_results(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def matrix(records: Sequence[Mapping[str, Any]], ids: Sequence[str], trials: Sequence[int]) -> np.ndarray:
    """rows × trials scores in ``ids`` order; NaN where a row × trial has no ok score."""
    import numpy as np

    index = {str(i): k for k, i in enumerate(ids)}
    col = {t: j for j, t in enumerate(trials)}
    m = np.full((len(ids), len(trials)), np.nan)
    for r in records:
        k = index.get(str(r["id"]))
        j = col.get(int(r["trial"]))
        if k is not None and j is not None and r.get("status") == "ok" and r.get("score") is not None:
            m[k, j] = float(r["score"])
    return m


def mean_of(records: Sequence[Mapping[str, Any]], field: str) -> float | None:
    values = [float(r[field]) for r in records if isinstance(r.get(field), (int, float))]
    return sum(values) / len(values) if values else None


def require_complete(run: EvalRun, arm: str, what: str) -> None:
    if run.complete:
        return
    counts = run.status_counts()
    unscored = sum(v for k, v in counts.items() if k != "ok")
    first = run.problems[0] if run.problems else (run.stop_reason or "unknown reason")
    raise EvalError(
        f"arm {arm}'s {what} is incomplete: {unscored} row×trial result(s) not scored ({first}); "
        "fix the harness and run again (cached rows are not re-scored)."
    )


def sanitize(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def relpath(exp: Experiment, name: str) -> str:
    return exp.rel(f"{RUNS}/{name}")
