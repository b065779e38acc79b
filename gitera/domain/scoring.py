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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.git import Repo, checkout_dir
from gitera.adapters.output import Output
from gitera.adapters.repolock import state_dir
from gitera.core.errors import ConfigError, EvalError, RefusedError
from gitera.core.frame import Frame
from gitera.core.results import sanitize
from gitera.domain import judging
from gitera.domain.experiment import VERDICT_FILE, Experiment, frame_hash

if TYPE_CHECKING:

    from gitera.adapters.evalrun import Budget, EvalRun, EvalSpec
    from gitera.adapters.evalrun.cluster import Remote

RUNS = "runs"
SPLITS = ("train", "dev", "gate")
MIN_RUN_TIMEOUT_S = 0.001  # what is left of an arm's run timeout when its judge starts late: nothing is launched


def eval_spec(frame: Frame, lock: Mapping[str, Any]) -> EvalSpec:
    from gitera.adapters.evalrun import EvalSpec

    parts = [frame_hash(dict(lock)), *sorted(f["sha256"] for f in lock["files"])]
    harness_hash = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return EvalSpec(command=frame.eval.command, python=frame.eval.python, harness_hash=harness_hash)


def content_id(repo: Repo, commit: str, tag: str, skip: Sequence[str] = ()) -> str:
    """The commit's content minus gitera's run records (and the paths or folders in `skip`):
    what the eval can see."""
    # -z: paths unquoted, so a non-ASCII target or folder is recognised and skipped
    listing = repo.git("ls-tree", "-r", "-z", "--full-tree", commit)
    folders = (f".gitera/{tag}/{RUNS}/", *(p.rstrip("/") + "/" for p in skip))
    exact = {p.rstrip("/") for p in skip}

    def kept(path: str) -> bool:
        return path not in exact and not path.startswith(folders)

    kept_lines = [line for line in listing.split("\0") if line and kept(line.split("\t", 1)[-1])]
    return hashlib.sha256("\n".join(kept_lines).encode()).hexdigest()


def arm_commit(exp: Experiment, frame: Frame, arm: str) -> str:
    """The commit an arm is scored at: its `ref`, else the experiment branch tip."""
    ref = frame.arms[arm].ref
    commit = exp.repo.rev(ref) if ref else exp.repo.rev(f"refs/heads/{exp.branch}")
    if commit is None:
        raise ConfigError(f"arm {arm}'s ref {ref!r} is not a commit in this repository; fix `arms.{arm}.ref` in a new experiment.")
    return commit


def load_split(exp: Experiment, split: str) -> list[dict[str, Any]]:
    """The train or dev rows, refused when the file differs from the one the split pinned
    (the gate rows are sealed: ``splitfiles.gate_rows``)."""
    from gitera.domain.splitfiles import read_open_split

    return read_open_split(exp, split)


def require_split(exp: Experiment) -> dict[str, Any]:
    path = exp.path("split/manifest.json")
    if not path.exists():
        raise RefusedError(f"experiment {exp.tag} has no split yet; run `gitera split` first.")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def require_open(exp: Experiment) -> None:
    """Refuse once the test set was opened: by a verdict that concluded, or by one that recorded its
    opening and never concluded (killed, or failed after the key was used) — read from git itself."""
    if exp.is_concluded:
        raise RefusedError(
            f"experiment {exp.tag} has its verdict: the sealed test set was opened once and the experiment is closed; "
            "a new question needs a new experiment (`gitera init NEW_TAG`)."
        )
    from gitera.domain.records import opening_state

    state = opening_state(exp.repo, exp)
    if state.concluded:
        # the verdict commits, then tags: a kill in between, or a push without tags, leaves a verdict without its tag
        ran = state.concluded
        raise RefusedError(
            f"the verdict of experiment {exp.tag} ran in {ran[:10]} but its tag gitera/{exp.tag}/verdict is missing (not fetched, "
            f"or the verdict stopped before tagging): `git fetch --tags`, or tag it again with `git tag -a gitera/{exp.tag}/verdict "
            f"{ran[:10]} -m verdict`; the test set was opened, the experiment is closed."
        )
    if state.opened:
        raise RefusedError(unconcluded_opening(exp.tag, state.opened, state.aborted))
    if exp.path(VERDICT_FILE).exists():
        raise RefusedError(
            f"{exp.rel(VERDICT_FILE)} exists but no verdict ran on {exp.branch} (no Gitera-Verdict commit, no tag "
            f"gitera/{exp.tag}/verdict): remove the file — only the verdict concludes an experiment."
        )


def unconcluded_opening(tag: str, opened: str, aborted: str | None) -> str:
    why = f"it failed: {aborted}" if aborted else "it was stopped before its conclusion commit"
    return (f"the verdict of experiment {tag} opened the sealed test set in {opened[:10]} and never concluded ({why}); "
            f"a test set is opened once, so {tag} is closed without a decision and `gitera verify` fails on it — "
            "a new question needs a new experiment with fresh test rows (`gitera init NEW_TAG`).")


def budget_for(frame: Frame, spent: float, exp: Experiment | None = None) -> Budget | None:
    """The cost cap for a run, with the pilot's dearest per-row cost as the first estimate.

    Without an estimate the first unit (a whole shard) would be admitted blind and could
    overshoot the cap before any cost was known.
    """
    from gitera.adapters.evalrun import Budget

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


def spent_so_far(repo: Repo, branch: str, tag: str) -> float:
    """Money experiment ``tag``'s evals have spent, summed from its trailers on the branch (pilot,
    runs, attempts, gates); read through the history cache, so a grown branch costs only its new commits."""
    from gitera.adapters.history import read

    total = 0.0
    for r in read(repo, branch, tag):
        value = r.data.get("spent_usd") if r.kind in ("Result", "Pilot", "Gate", "Lock") else None  # Lock: `lock --check`
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
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
    work_root: Path | None = None  # where the harness's work dirs go (default .git/gitera/work; the verdict keeps its own)

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
        """The arm's run (judged when the frame has a judge); eval.run_timeout_s bounds both."""
        started = time.monotonic()
        repo = self.exp.repo
        checkout = checkout_dir(repo, commit, slot or _slot(arm))
        run = self._eval(eval_spec(self.frame, self.lock), checkout, content_id(repo, commit, self.exp.tag), arm, self.frame.arms[arm].params,
                         rows, split, trials, budget, started, _slot(arm), commit)
        for warning in run.warnings:
            self.out.warn(f"arm {arm}: {warning}")
        if self.frame.eval.judge is not None:
            run = self._judged(run, arm, rows, split, trials, budget, started)
        return run

    def _eval(self, spec: EvalSpec, checkout: Path, tree_id: str, arm: str, params: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
              split: str, trials: Sequence[int], budget: Budget | None, started: float, work_prefix: str, commit: str) -> EvalRun:
        """One run_eval with the frame's eval settings, the cache and a fresh work dir."""
        from gitera.adapters.cache import Cache
        from gitera.adapters.evalrun import run_eval
        from gitera.adapters.progress import Progress

        base = state_dir(self.exp.repo.common_dir)
        root = self.work_root or base / "work"
        root.mkdir(exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=work_prefix + "-", dir=root))
        limit = self.frame.eval.run_timeout_s
        try:
            return run_eval(
                spec, checkout=checkout, tag=self.exp.tag, arm=arm, params=dict(params), split=split, rows=list(rows), trials=list(trials),
                concurrency=self.frame.eval.concurrency, timeout_s=self.frame.eval.timeout_s,
                run_timeout_s=None if limit is None else max(MIN_RUN_TIMEOUT_S, limit - (time.monotonic() - started)),
                cache=Cache(base / "cache") if self.use_cache else None, tree_id=tree_id, budget=budget,
                progress=None if self.out.json_mode or self.out.quiet else Progress(sys.stderr), workdir=workdir,
                remote=self._remote(commit),
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _remote(self, commit: str) -> Remote | None:
        """scale (issue 15): the Dask cluster the frame's eval.executor names, and the tree it scores:
        the commit, without the experiment's sealed files (ciphertext needs no second home)."""
        executor = self.frame.eval.executor
        if executor.kind != "dask":
            return None
        from gitera.adapters.evalrun.cluster import Remote, resolve_address
        from gitera.adapters.git import tree_tar

        repo = self.exp.repo
        return Remote(resolve_address(executor.address), commit, lambda: tree_tar(repo, commit, skip=_sealed))

    def _judge_checkout(self) -> tuple[Path, str, str]:
        """Where every judge call runs (rule 15): the experiment branch tip in one slot, the
        same for every arm, so neither the cwd nor the files reveal whose output is judged.

        Also the tree part of the judge's cache key: the tip's content without the experiment's
        own records and the iterate target files (an iteration does not change the judge), so
        re-judging an unchanged output costs nothing while an edited judge file is a miss."""
        repo = self.exp.repo
        tip = repo.rev(f"refs/heads/{self.exp.branch}")
        if tip is None:
            raise RefusedError(f"branch {self.exp.branch} does not exist; run `gitera init` first.")
        targets = self.frame.iterate.target if self.frame.iterate else ()
        # without the experiment's run records: their per-arm files name each arm's outputs
        records = {path: None for path in repo.ls_tree(tip, [self.exp.rel(RUNS)])}
        blind = repo.make_commit(tip, records, "gitera judge checkout: the tip without its run records") if records else tip
        return checkout_dir(repo, blind, judging.JUDGE_ARM), content_id(repo, tip, self.exp.tag, (self.exp.rel(""), *targets)), blind

    def _judged(self, run: EvalRun, arm: str, rows: Sequence[Mapping[str, Any]], split: str, trials: Sequence[int],
                budget: Budget | None, started: float) -> EvalRun:
        """Replace the arm's scores by the blind judge's (rule 15), charged to the same budget."""
        judge = self.frame.eval.judge
        assert judge is not None
        spec = judging.judge_spec(judge, eval_spec(self.frame, self.lock).harness_hash)
        seed = frame_hash(dict(self.lock))
        checkout, tree, blind = self._judge_checkout()
        judged: dict[int, EvalRun] = {}
        spent, per_call = run.spent_usd, None
        for t in trials:
            jrows = judging.judge_rows(rows, run, t, seed, list(self.frame.arms), arm)
            if jrows:
                jrun = self._eval(spec, checkout, tree, judging.JUDGE_ARM, {}, jrows, split, [t], _charged(budget, spent, per_call), started, "judge",
                                  blind)
                for warning in jrun.warnings:  # e.g. the budget stopping the judge's invocations
                    self.out.warn(f"arm {arm}: judge: {warning}")
                judged[t], spent = jrun, spent + jrun.spent_usd
                per_call = jrun.spent_usd / jrun.calls if jrun.calls else per_call
        return judging.apply_judge(run, judged)

    def cross_judge(self, runs: Mapping[str, EvalRun], rows: Sequence[Mapping[str, Any]], spent: float = 0.0) -> dict[str, Any] | None:
        """Re-judge 5 dev rows of each arm with the cross-judge; record the agreement and its spend.

        `spent` is what the experiment has spent so far (the cross-judge shares the budget)."""
        cross = self.frame.eval.cross_judge
        if cross is None or self.frame.eval.judge is None:
            return None
        spec = judging.judge_spec(cross, eval_spec(self.frame, self.lock).harness_hash + ":cross")
        seed = frame_hash(dict(self.lock))
        checkout, tree, blind = self._judge_checkout()
        picked = sorted(rows, key=lambda r: hashlib.sha256(f"{seed}|{r['id']}".encode()).hexdigest())[: judging.CROSS_ROWS]
        picked_ids = {str(p["id"]) for p in picked}
        budget = budget_for(self.frame, spent, self.exp)
        started = time.monotonic()
        used = 0.0
        report: dict[str, Any] = {"arms": {}}
        for arm, run in runs.items():
            jrows = judging.judge_rows(picked, run, 0, seed, list(self.frame.arms), arm)
            cj = self._eval(spec, checkout, tree, judging.JUDGE_ARM, {}, jrows, "dev", [0], _charged(budget, used), started, "judge", blind)
            for warning in cj.warnings:
                self.out.warn(f"arm {arm}: cross-judge: {warning}")
            used += cj.spent_usd
            primary = {str(r.id): r.score for r in run.results if r.trial == 0 and str(r.id) in picked_ids}
            report["arms"][arm] = {**judging.cross_check(primary, {str(r.id): r.score for r in cj.results}), "spent_usd": sanitize(cj.spent_usd, 8)}
        report["flagged"] = any(a["flagged"] for a in report["arms"].values())
        report["spent_usd"] = sanitize(used, 8)
        return report


def _charged(budget: Budget | None, spent: float, per_call: float | None = None) -> Budget | None:
    """The budget after `spent` more: judge calls share the arm's cap. Their first estimate is the
    pilot's (arm and judge together, so an upper bound), then what judge calls really cost."""
    from dataclasses import replace

    if budget is None:
        return None
    return replace(budget, spent_before=budget.spent_before + spent, est_cost_per_call=per_call or budget.est_cost_per_call)


def _sealed(path: str) -> bool:
    """scale (issue 15): sealed files and wrapped keys stay off Dask workers."""
    return path.startswith(".gitera/") and path.endswith((".seal", ".wrapped"))


def _slot(arm: str) -> str:
    return "arm-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in arm)


# --- per-row records ------------------------------------------------------------------


def results_jsonl(run: EvalRun) -> bytes:
    lines = [json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False) for r in run.results]
    return ("\n".join(lines) + "\n").encode() if lines else b""


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


def relpath(exp: Experiment, name: str) -> str:
    return exp.rel(f"{RUNS}/{name}")


PILOT_FILE = "pilot.json"


def require_pilot(exp: Experiment) -> None:
    path = exp.path(f"runs/{PILOT_FILE}")
    try:
        status = json.loads(path.read_text()).get("status")
    except (FileNotFoundError, ValueError):
        status = None
    if status != "pass":
        raise RefusedError(f"experiment {exp.tag} has no passed pilot; run `gitera pilot` first (one row per arm).")
