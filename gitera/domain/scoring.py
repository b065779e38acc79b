"""Scoring an arm at a commit: the glue between an experiment and the eval engine.

Shared by pilot, run, iterate, gate and verdict. What an arm is scored on (issue 12, "scoring
sees only what the frame allows") is a *scoring tree* built from git, never the branch tip:

- the **lock commit's tree** (the commit with the experiment's Gitera-Lock trailer: the harness
  and everything beside it as it was when the frame was locked), plus the split's
  `train.jsonl` (rows a harness may learn from; dev, gate and test rows reach it only through
  GITERA_ROWS);
- plus the arm's declared content: for the iterated arm, its `iterate.target` files (at the
  attempt, point or tip being scored); for an arm with a `ref`, the tree of the commit that ref
  named at lock (`lock.json` "refs"), with the locked files, frame and lock laid over it.

A file committed on the experiment branch after the lock that is not a target (a module beside
the harness, a sitecustomize.py, a .gitattributes) is therefore never seen by the harness. The
tree is written out by gitera.adapters.checkout (no git filters run) and scored in a clean slot
under .git/gitera/worktrees/; results are cached by the tree's content (state under
.gitera/<tag>/runs excluded), the params, the harness (locked files + frame) and the trial index.
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

from gitera.adapters.checkout import materialize
from gitera.adapters.git import Entry, Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import state_dir
from gitera.core.errors import ConfigError, EvalError, RefusedError
from gitera.core.frame import Frame
from gitera.core.results import dumps_line, sanitize
from gitera.domain import judging
from gitera.domain.experiment import VERDICT_FILE, Experiment, frame_hash, sha256

if TYPE_CHECKING:

    from gitera.adapters.evalrun import Budget, EvalRun, EvalSpec
    from gitera.adapters.evalrun.cluster import Remote

RUNS = "runs"
TRAIN_FILE = "split/train.jsonl"
SPLITS = ("train", "dev", "gate")
MIN_RUN_TIMEOUT_S = 0.001  # what is left of an arm's run timeout when its judge starts late: nothing is launched


def eval_spec(frame: Frame, lock: Mapping[str, Any]) -> EvalSpec:
    from gitera.adapters.evalrun import EvalSpec

    parts = [frame_hash(dict(lock)), *sorted(f["sha256"] for f in lock["files"])]
    harness_hash = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return EvalSpec(command=frame.eval.command, python=frame.eval.python, harness_hash=harness_hash, env=frame.eval.env)


def content_id(repo: Repo, commit: str, tag: str, skip: Sequence[str] = ()) -> str:
    """The commit's content minus gitera's run records (and the paths or folders in `skip`):
    what the eval can see."""
    return content_of(repo.tree_entries(commit), tag, skip)


def content_of(entries: Mapping[str, Entry], tag: str, skip: Sequence[str] = ()) -> str:
    """`content_id` of a tree listing (path -> (mode, object id)), in `git ls-tree -r` order and format."""
    folders = (f".gitera/{tag}/{RUNS}/", *(p.rstrip("/") + "/" for p in skip))
    exact = {p.rstrip("/") for p in skip}
    kept_lines = [f"{mode} {'commit' if mode == '160000' else 'blob'} {oid}\t{path}" for path, (mode, oid) in entries.items()
                  if path not in exact and not path.startswith(folders)]
    return hashlib.sha256("\n".join(kept_lines).encode()).hexdigest()


def arm_commit(exp: Experiment, frame: Frame, arm: str, at: str | None = None) -> str:
    """The scoring tree of an arm as registered: the lock commit's tree (and the train rows); for the
    iterated arm with its target files as the experiment branch's tip (or the commit ``at``, e.g. the
    one a run recorded) holds them; for an arm with a `ref`, the commit pinned at lock with the
    locked files over it."""
    repo = exp.repo
    if frame.arms[arm].ref is not None:
        return _ref_tree(exp, frame, arm)
    if frame.iterate is not None and arm == frame.iterate.arm:
        source = at or repo.rev(f"refs/heads/{exp.branch}")
        if source is None:
            raise RefusedError(f"branch {exp.branch} does not exist; run `gitera init {exp.tag}` first.")
        return candidate_commit(exp, dict(zip(frame.iterate.target, _contents(repo, source, frame.iterate.target))),
                                f"arm {arm} at {source[:10]}")
    return base_commit(exp)


def arm_source(exp: Experiment, frame: Frame, arm: str) -> str:
    """The commit on the branch (or the pinned ref) that the arm's registered content comes from, for
    the records: its pinned ref; the branch tip for the iterated arm (its target files); else the lock
    commit. Scoring trees themselves are commits on no branch, never pushed."""
    if frame.arms[arm].ref is not None:
        pinned = (exp.read_lock().get("refs") or {}).get(arm) or exp.repo.rev(frame.arms[arm].ref or "")
        if pinned:
            return str(pinned)
    if frame.iterate is not None and arm == frame.iterate.arm:
        return exp.repo.rev(f"refs/heads/{exp.branch}") or ""
    return lock_commit(exp)


def base_commit(exp: Experiment) -> str:
    """The lock commit's tree with the split's train rows: every arm's tree starts here (once per command)."""
    repo = exp.repo
    return repo.remember(f"scoring-base:{exp.tag}",
                         lambda: repo.compose(lock_commit(exp), _shared(exp), "gitera scoring tree: the lock commit and the train rows"))


def candidate_commit(exp: Experiment, targets: Mapping[str, bytes | None], subject: str) -> str:
    """The iterated arm's scoring tree with its target files set to ``targets`` (None: absent)."""
    return exp.repo.make_commit(base_commit(exp), dict(targets), f"gitera candidate: {subject}"[:200])


def lock_commit(exp: Experiment) -> str:
    """The commit that locked the experiment: the first with its Gitera-Lock trailer on the branch.

    It must hold lock.json as the work tree has it and every locked file at its locked content:
    a rewritten lock commit (`rebase -i`) is refused rather than scored. Found once per command."""
    return exp.repo.remember(f"lock-commit:{exp.tag}", lambda: _find_lock_commit(exp))


def _find_lock_commit(exp: Experiment) -> str:
    from gitera.adapters.history import read
    from gitera.domain.experiment import locked_records

    repo = exp.repo
    lock = exp.read_lock()
    commit = next((r.commit for r in read(repo, exp.branch, exp.tag) if r.kind == "Lock"), None)
    if commit is None:
        raise RefusedError(f"no commit on {exp.branch} carries the Gitera-Lock trailer of experiment {exp.tag}, so there is no "
                           "locked tree to score on; the branch's history was rewritten — restore it (`git reflog`) or start a new experiment.")
    paths = [exp.lock_rel, *(str(rec["path"]) for rec in locked_records(lock))]
    found = repo.cat_blobs([f"{commit}:{p}" for p in paths])
    expected = [(exp.path("lock.json").read_bytes(), None), *((None, rec["sha256"]) for rec in locked_records(lock))]
    for path, content, (raw, digest) in zip(paths, found, expected):
        if content is None or (raw is not None and content != raw) or (digest is not None and sha256(content) != digest):
            raise RefusedError(f"the lock commit {commit[:10]} does not hold {path} as {exp.lock_rel} records it: the lock commit or "
                               "lock.json was rewritten after the lock; restore them (`git reflog`), or start a new experiment.")
    return commit


def _shared(exp: Experiment) -> dict[str, Entry | None]:
    """What every arm's tree holds beside the lock commit's: the split's train rows, as the split committed them."""
    from gitera.adapters.history import read

    split = next((r.commit for r in read(exp.repo, exp.branch, exp.tag) if r.kind == "Split"), None)
    if split is None:
        return {}
    rel = exp.rel(TRAIN_FILE)
    return dict(exp.repo.tree_entries(split, [rel]))


def _ref_tree(exp: Experiment, frame: Frame, arm: str) -> str:
    """An arm with a `ref`: the commit the ref named at lock (see ref_tree)."""
    lock = exp.read_lock()
    pinned = (lock.get("refs") or {}).get(arm)
    if pinned is None:  # a lock made before refs were pinned: the ref as it is now
        pinned = exp.repo.rev(frame.arms[arm].ref or "")
    if pinned is None or exp.repo.rev(pinned) is None:
        raise ConfigError(f"arm {arm}'s ref {frame.arms[arm].ref!r} (pinned at lock: {pinned or 'nothing'}) is not a commit in this "
                          f"repository; fetch it, or fix `arms.{arm}.ref` in a new experiment.")
    return ref_tree(exp, lock, arm, pinned, lock_commit(exp), _shared(exp))


def ref_tree(exp: Experiment, lock: Mapping[str, Any], arm: str, pinned: str, base: str,
             shared: Mapping[str, Entry | None] | None = None) -> str:
    """The tree of ``pinned`` with the locked files, frame and lock.json of ``base`` (the lock commit,
    or before the lock the commit it will freeze) and the ``shared`` train rows laid over it: the
    arm's code is the ref's, the harness always the locked one."""
    from gitera.domain.experiment import locked_records

    repo = exp.repo
    keep = [exp.lock_rel, *(str(rec["path"]) for rec in locked_records(dict(lock)))]
    laid = {**dict.fromkeys(keep), **repo.tree_entries(base, keep), **(shared or {})}
    return repo.compose(pinned, laid, f"gitera scoring tree: arm {arm} at {pinned[:10]} with the locked files")


def _contents(repo: Repo, commit: str, paths: Sequence[str]) -> list[bytes | None]:
    return repo.cat_blobs([f"{commit}:{p}" for p in paths])


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
    """Money experiment ``tag``'s evals have spent: the larger of the sum of its trailers on the
    branch (pilot, runs, attempts, gates; read through the history cache, so a grown branch costs
    only its new commits) and its spend journal (every cost a harness reported, written before it
    was counted: what a killed run spent without a commit, what `diagnose` spent)."""
    from gitera.adapters.evalrun.journal import journal_total
    from gitera.adapters.history import read

    total = 0.0
    frame = None
    for r in read(repo, branch, tag):
        value = r.data.get("spent_usd") if r.kind in ("Result", "Pilot", "Gate", "Lock") else None  # Lock: `lock --check`
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            total += value
        if r.kind == "Lock" and frame is None:
            frame = r.data.get("frame")
    journal = journal_total(spend_journal_path(repo, tag), frame) if isinstance(frame, str) else 0.0
    return journal if journal > total + JOURNAL_ROUNDING else total


JOURNAL_ROUNDING = 1e-6  # trailers round spend to 8 decimals: a journal ahead by less is the same spend


def spend_journal_path(repo: Repo, tag: str) -> Path:
    return state_dir(repo.common_dir) / "spend" / f"{tag}.jsonl"


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
        # the gate's and the verdict's trees are re-read in full: a file changed in a reused slot never counts
        checkout, entries = materialize(self.exp.repo, commit, slot or _slot(arm), verify=split in ("gate", "test"))
        run = self._eval(eval_spec(self.frame, self.lock), checkout, content_of(entries, self.exp.tag), arm, self.frame.arms[arm].params,
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
        from gitera.adapters.evalrun.journal import SpendJournal
        from gitera.adapters.progress import Progress

        base = state_dir(self.exp.repo.common_dir)
        root = self.work_root or base / "work"
        root.mkdir(exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=work_prefix + "-", dir=root))
        limit = self.frame.eval.run_timeout_s
        journal = SpendJournal(spend_journal_path(self.exp.repo, self.exp.tag), frame_hash(dict(self.lock)))
        try:
            return run_eval(
                spec, checkout=checkout, tag=self.exp.tag, arm=arm, params=dict(params), split=split, rows=list(rows), trials=list(trials),
                concurrency=self.frame.eval.concurrency, timeout_s=self.frame.eval.timeout_s,
                run_timeout_s=None if limit is None else max(MIN_RUN_TIMEOUT_S, limit - (time.monotonic() - started)),
                cache=Cache(base / "cache") if self.use_cache else None, tree_id=tree_id, budget=budget,
                progress=None if self.out.json_mode or self.out.quiet else Progress(sys.stderr), workdir=workdir,
                remote=self._remote(commit),
                spend_journal=journal,
            )
        finally:
            journal.close()
            shutil.rmtree(workdir, ignore_errors=True)

    def _remote(self, commit: str) -> Remote | None:
        return remote_for(self.exp, self.frame, commit)

    def _judge_checkout(self) -> tuple[Path, str, str]:
        """Where every judge call runs (rule 15): the lock commit's tree (with the train rows) in
        one slot, the same for every arm, so neither the cwd nor the files reveal whose output is
        judged (the lock commit holds no run records, which name each arm's outputs); and that
        commit, for a judge scored on a cluster.

        Also the tree part of the judge's cache key: that content without the experiment's own
        records and the iterate target files, so re-judging an unchanged output costs nothing."""
        targets = self.frame.iterate.target if self.frame.iterate else ()
        blind = base_commit(self.exp)
        checkout, entries = materialize(self.exp.repo, blind, judging.JUDGE_ARM)
        return checkout, content_of(entries, self.exp.tag, (self.exp.rel(""), *targets)), blind

    def _judged(self, run: EvalRun, arm: str, rows: Sequence[Mapping[str, Any]], split: str, trials: Sequence[int],
                budget: Budget | None, started: float) -> EvalRun:
        """Replace the arm's scores by the blind judge's (rule 15), charged to the same budget."""
        judge = self.frame.eval.judge
        assert judge is not None
        spec = judging.judge_spec(judge, eval_spec(self.frame, self.lock).harness_hash, self.frame.eval.env)
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
        spec = judging.judge_spec(cross, eval_spec(self.frame, self.lock).harness_hash + ":cross", self.frame.eval.env)
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


def remote_for(exp: Experiment, frame: Frame, commit: str) -> Remote | None:
    """The Dask cluster the frame's eval.executor names, and the tree it scores: the scoring commit
    (the locked tree and the arm's declared content), without the experiment's sealed files
    (ciphertext needs no second home). None for the local executor."""
    executor = frame.eval.executor
    if executor.kind != "dask":
        return None
    from gitera.adapters.evalrun.cluster import Remote, resolve_address
    from gitera.adapters.git import tree_tar

    repo = exp.repo
    return Remote(resolve_address(executor.address), commit, lambda: tree_tar(repo, commit, skip=_sealed))


def _charged(budget: Budget | None, spent: float, per_call: float | None = None) -> Budget | None:
    """The budget after `spent` more: judge calls share the arm's cap. Their first estimate is the
    pilot's (arm and judge together, so an upper bound), then what judge calls really cost."""
    from dataclasses import replace

    if budget is None:
        return None
    return replace(budget, spent_before=budget.spent_before + spent, est_cost_per_call=per_call or budget.est_cost_per_call)


def _sealed(path: str) -> bool:
    """Sealed files and wrapped keys stay off Dask workers."""
    return path.startswith(".gitera/") and path.endswith((".seal", ".wrapped"))


def _slot(arm: str) -> str:
    return "arm-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in arm)


# --- per-row records ------------------------------------------------------------------


def results_jsonl(run: EvalRun) -> bytes:
    lines = [dumps_line(r.to_json()) for r in run.results]
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
