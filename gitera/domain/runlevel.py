"""Run-level experiments (``metric.level: run``, docs/run-level.md): scoring a script's runs,
the pilot and the dev run.

One score per run of the script, ``GITERA_TRIAL`` as its seed. The dev run scores every arm
``metric.trials`` times; the baseline's spread is the noise floor. Per-run results are kept in
the shape of per-row results with the one row id ``run`` (``runs/run-NNN/<arm>.jsonl``), so the
log, the audit and the charts read them as they read rows. The baseline arm may share its file
with the iterated arm (``baseline.ref: train.py:1``, ``iterate.target: [train.py]``): it is then
scored with the target files as they were at the lock commit.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitera.adapters.checkout import materialize
from gitera.adapters.output import Output
from gitera.adapters.repolock import state_dir
from gitera.adapters.runscript import RUN_ID, Invocation, RunCache, RunResult, RunSpec, run_scripts
from gitera.core import runstats
from gitera.core.errors import RefusedError
from gitera.core.frame import Frame
from gitera.core.results import sanitize
from gitera.core.trailers import build_message
from gitera.domain.experiment import Experiment, frame_hash
from gitera.domain.scoring import (
    arm_commit,
    arm_source,
    content_id,
    eval_spec,
    relpath,
    remote_for,
    require_pilot,
    require_split,
    spend_journal_path,
    spent_so_far,
)

RUN_ROWS: tuple[Mapping[str, Any], ...] = ({"id": RUN_ID},)  # what the loop counts as its "dev rows"


def is_run_level(frame: Frame) -> bool:
    return frame.metric.level == "run"


def run_spec(frame: Frame, lock: Mapping[str, Any]) -> RunSpec:
    assert frame.eval.command is not None
    m = frame.metric
    return RunSpec(frame.eval.command, frame.eval.timeout_s, m.primary, m.secondary, dict(m.patterns), eval_spec(frame, lock).harness_hash,
                   tuple(frame.eval.env))


# --- which commit each arm is scored at ------------------------------------------------------------


def lock_commit(exp: Experiment) -> str:
    """The commit of `gitera lock` (its Gitera-Lock trailer)."""
    from gitera.adapters.history import read

    found = next((r.commit for r in read(exp.repo, exp.branch, exp.tag) if r.kind == "Lock"), None)
    if found is None:
        raise RefusedError(f"experiment {exp.tag} has no Gitera-Lock commit on {exp.branch}; run `gitera lock`.")
    return found


def baseline_commit(exp: Experiment, frame: Frame) -> str:
    """The baseline's commit: its ``ref``; else the branch tip with the target files as they were
    at the lock commit (the baseline is the iterated file's content at the lock)."""
    base = frame.baseline.arm
    if frame.arms[base].ref or frame.iterate is None:
        return arm_commit(exp, frame, base)
    repo, targets = exp.repo, list(frame.iterate.target)
    tip = arm_commit(exp, frame, base)
    then = repo.ls_tree(lock_commit(exp), targets)
    if repo.ls_tree(tip, targets) == then:
        return tip
    contents = dict(zip(then, repo.cat_blobs(list(then.values()))))
    return repo.make_commit(tip, {p: contents.get(p) for p in targets}, "gitera baseline: the target files as locked")


def arm_commits(exp: Experiment, frame: Frame) -> dict[str, str]:
    return {arm: baseline_commit(exp, frame) if arm == frame.baseline.arm else arm_commit(exp, frame, arm) for arm in frame.arms}


# --- scoring runs ------------------------------------------------------------------------------------


@dataclass
class RunScorer:
    """Runs of an experiment's script, with progress lines, the cache and sealed files."""

    exp: Experiment
    frame: Frame
    lock: Mapping[str, Any]
    out: Output
    use_cache: bool = True

    def score(self, arm: str, commit: str, split: str, trials: Sequence[int], *, slot: str | None = None,
              read_cache: bool | None = None, files: Mapping[str, bytes] | None = None, label: str | None = None,
              of: int | None = None, store: bool = True, work_root: Path | None = None) -> list[RunResult]:
        """The arm's runs at ``commit``, one per trial (seed). Only dev runs are cached: a test or
        gate run is always a fresh run. ``files`` (decrypted sealed files) are written into the
        checkout for these runs only and removed afterwards. ``of``: the runs this one is part of (an attempt's cap).
        ``store``: whether scored runs go into the cache (the gate's fresh seeds do not). ``work_root``: where
        the runs' files go (the verdict's opening: a folder destroyed with the process), else .git/gitera/work.

        With ``eval.executor: {kind: dask}`` the runs are tasks on the cluster (docs/scale.md); ``files``
        then go to the workers that run them, for these runs only, and never into the local checkout."""
        repo = self.exp.repo
        base = state_dir(repo.common_dir)
        cache = RunCache(base / "runcache") if split == "dev" else None
        reading = self.use_cache if read_cache is None else read_cache
        # written by gitera from git's objects (no filter), re-read in full for the gate and the verdict
        checkout = materialize(repo, commit, slot or "arm-" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in arm),
                               verify=split in ("gate", "test"))[0]
        root = work_root or base / "work"
        root.mkdir(exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="runs-", dir=root))
        where = Invocation(checkout, self.exp.tag, arm, self.frame.arms[arm].params, split, workdir,
                           content_id(repo, commit, self.exp.tag) if cache is not None else "")
        remote = remote_for(self.exp, self.frame, commit)
        written = [checkout / p for p in (files or {})] if remote is None else []
        name, total, count = label or arm, f" of at most {of}" if of else f"/{len(trials)}", [0 if of is None else min(trials)]
        from gitera.adapters.evalrun.journal import SpendJournal

        # each run's cost written down as it ends, before anything counts it: a kill -9 of gitera loses none (issue 12)
        journal = SpendJournal(spend_journal_path(repo, self.exp.tag), frame_hash(dict(self.lock)))

        def progress(r: RunResult) -> None:
            if not r.cached:
                journal(float(r.numbers.get("cost_usd", 0.0)))
            count[0] += 1
            what = (f"{self.frame.metric.primary} {r.score:.6g}" if r.status == "ok" else
                    f"{r.status.upper()}: {(r.error or '').splitlines()[0] if r.error else ''}")
            self.out.info(f"  {name} run {count[0]}{total} ({split}, seed {r.trial}): {what}"
                          + (" (cached)" if r.cached else f" in {r.seconds:.1f} s"))

        try:
            for path, content in (files or {}).items() if remote is None else ():
                target = checkout / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            return run_scripts(run_spec(self.frame, self.lock), where, trials, concurrency=self.frame.eval.concurrency,
                               cache=cache if reading else None, store=cache if store else None, on_result=progress,
                               remote=remote, sealed=files if remote is not None else None)
        finally:
            journal.close()
            for target in written:
                target.unlink(missing_ok=True)
            shutil.rmtree(workdir, ignore_errors=True)


def spent(results: Sequence[RunResult]) -> float:
    """What the runs made now cost (their reported cost_usd; cached runs cost nothing)."""
    return math.fsum(float(r.numbers.get("cost_usd", 0.0)) for r in results if not r.cached)


def scores(results: Sequence[RunResult]) -> list[float]:
    return [float(r.score) for r in results if r.status == "ok" and r.score is not None]


def records_jsonl(results: Sequence[RunResult]) -> bytes:
    return "".join(json.dumps(r.record(), sort_keys=True) + "\n" for r in results).encode()


def read_runs(text: str) -> list[float]:
    """The ok scores of a per-run file, in trial order."""
    recs = sorted((json.loads(line) for line in text.splitlines() if line.strip()), key=lambda d: int(d["trial"]))
    return [float(d["score"]) for d in recs if d.get("status") == "ok" and isinstance(d.get("score"), (int, float))]


def problem_of(arm: str, r: RunResult) -> str | None:
    if r.status != "ok":
        return f"arm {arm} seed {r.trial}: {r.status}: {r.error or 'no score'}"
    return f"arm {arm} seed {r.trial}: {'; '.join(r.problems)}" if r.problems else None


# --- the pilot ---------------------------------------------------------------------------------------


def pilot_record(exp: Experiment, frame: Frame, lock: Mapping[str, Any], out: Output) -> tuple[dict[str, Any], list[str], float]:
    """Every arm's script run once (seed 0, dev), always for real: its score must be readable and every
    declared secondary number present (rule 11). The runs are cached, so `gitera run` reuses them."""
    scorer = RunScorer(exp, frame, lock, out)
    results: dict[str, Any] = {}
    problems: list[str] = []
    used = 0.0
    for arm, commit in arm_commits(exp, frame).items():
        out.info(f"pilot: arm {arm}, one run of `{frame.eval.command}` …")
        r = scorer.score(arm, commit, "dev", [0], read_cache=False)[0]
        used += spent([r])
        problem = problem_of(arm, r)
        problems += [problem] if problem else []
        results[arm] = {"commit": commit, "status": r.status, "score": r.score, "seconds": round(r.seconds, 3), "numbers": dict(r.numbers),
                        "cost_usd": r.numbers.get("cost_usd"), "source": r.source, "error": (r.error or "")[:500] or None}
    return {"status": "pass" if not problems else "fail", "row": RUN_ID, "level": "run", "arms": results, "problems": problems}, problems, used


# --- the dev run ---------------------------------------------------------------------------------------


def _arm_summary(frame: Frame, results: Sequence[RunResult]) -> dict[str, Any]:
    ok = scores(results)
    complete = len(ok) == len(results)
    numbers = {name: sanitize(runstats.mean([float(r.numbers[name]) for r in results if name in r.numbers]))
               for name in sorted({k for r in results for k in r.numbers})}
    cost = numbers.get("cost_usd")
    return {
        "complete": complete, "n": 1, "trials": len(results), "runs": [sanitize(x, 10) for x in ok],
        "score": sanitize(runstats.mean(ok)) if complete and ok else None,
        "sd": sanitize(runstats.sd(ok)) if complete and len(ok) > 1 else None,
        "numbers": numbers, "cost_per_1k": sanitize(cost * 1000, 6) if cost is not None else None, "latency_ms": None,
        "seconds": sanitize(runstats.mean([r.seconds for r in results]), 3), "spent_usd": sanitize(spent(results), 8),
        "statuses": {s: sum(1 for r in results if r.status == s) for s in ("ok", "crash", "timeout", "invalid")},
        "problems": [p for r in results if (p := problem_of("", r))][:20],
    }


def sizing(frame: Frame, noise_sd: float | None) -> dict[str, Any] | None:
    """Runs per arm that detect the threshold at the measured noise (two-sided, power 80 %)."""
    if noise_sd is None:
        return None
    t = frame.threshold
    need = runstats.runs_needed(t.effect, noise_sd, t.alpha, 0.8)
    mde = runstats.runs_mde(frame.metric.trials, noise_sd, t.alpha, 0.8)
    return {"effect": t.effect, "noise_sd": noise_sd, "alpha": t.alpha, "power": 0.8, "runs_needed": need,
            "trials": frame.metric.trials, "mde": sanitize(mde), "enough": need is not None and need <= frame.metric.trials}


def sizing_sentence(s: Mapping[str, Any] | None) -> str:
    if not s:
        return "Sizing: no noise measured (the run is incomplete)."
    need = s["runs_needed"] if s["runs_needed"] is not None else "more than 100,000"
    verdict = ("enough" if s["enough"] else f"NOT enough: the verdict will likely be underpowered unless the effect is larger "
               f"(the {s['trials']} runs detect {s['mde']:.4g})")
    return (f"Sizing: to detect {s['effect']:g} with noise sd {s['noise_sd']:.4g} you need {need} runs per arm "
            f"(two-sided alpha {s['alpha']:g}, power 80 %); the frame's metric.trials = {s['trials']} is {verdict}.")


def record_runs(exp: Experiment, frame: Frame, lock: Mapping[str, Any], out: Output, use_cache: bool = True) -> tuple[str, dict[str, Any]]:
    """`gitera run` for a run-level experiment: every arm ``metric.trials`` times on dev, one commit."""
    require_split(exp)
    require_pilot(exp)
    fhash = frame_hash(dict(lock))
    cap = frame.iterate.budget.max_cost_usd if frame.iterate else None
    if cap is not None and spent_so_far(exp.repo, exp.branch, exp.tag) >= cap:
        raise RefusedError(f"the cost budget of ${cap:g} is spent; no run was started.")
    trials = list(range(frame.metric.trials))
    scorer = RunScorer(exp, frame, lock, out, use_cache)
    commits = arm_commits(exp, frame)
    results: dict[str, list[RunResult]] = {}
    for arm in [frame.baseline.arm, *frame.candidates]:  # the baseline is measured first (rule 2)
        out.info(f"run: arm {arm} — {len(trials)} runs on dev (seeds {trials[0]}–{trials[-1]})")
        results[arm] = scorer.score(arm, commits[arm], "dev", trials)
    arms = {arm: _arm_summary(frame, rs) for arm, rs in results.items()}
    complete = all(a["complete"] for a in arms.values())
    base = frame.baseline.arm
    noise = arms[base]["sd"] if complete else None
    if complete:
        for arm, info in arms.items():
            if arm != base:
                c = runstats.welch(scores(results[base]), scores(results[arm]), frame.threshold.alpha)
                info.update(delta=sanitize(c.effect), ci=[sanitize(c.ci_low), sanitize(c.ci_high)], p=sanitize(c.p_value, 8), test="welch")
    number = len(_run_dirs(exp)) + 1
    name = f"run-{number:03d}"
    files: dict[str, bytes | None] = {}
    for arm, rs in results.items():
        rel = relpath(exp, f"{name}/{arm}.jsonl")
        files[rel] = records_jsonl(rs)
        # the records name the arm's source on the branch (its scoring tree is a commit on no branch): a
        # gate's sprint starts there, and `gitera verify` checks every commit a gate names is on the branch
        arms[arm].update(rows_file=rel, commit=arm_source(exp, frame, arm))
    summary: dict[str, Any] = {
        "level": "run", "complete": complete, "aggregate_only": False, "noise_floor": noise,
        "noise": {"sd": noise, "runs": arms[base]["runs"]} if noise is not None else None,
        "sizing": sizing(frame, noise), "arms": arms, "run": number, "split": "dev", "row_ids": [RUN_ID], "trials": trials,
        "frame": fhash, "baseline": base, "arms_order": list(results),
    }
    files[relpath(exp, f"{name}/summary.json")] = (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode()
    trailers: list[tuple[str, str | dict[str, Any]]] = [("Tag", exp.tag)]
    for arm in results:
        a = arms[arm]
        status = ("baseline" if arm == base else "measured") if a["complete"] else "incomplete"
        trailers.append(("Result", {
            "kind": "run", "level": "run", "run": number, "arm": arm, "split": "dev", "n": 1, "trials": a["trials"],
            "score": a["score"], "sd": a["sd"], "delta": a.get("delta"), "ci": a.get("ci"), "p": a.get("p"), "status": status,
            "reason": a["problems"][0] if a["problems"] else ("noise floor" if status == "baseline" else ""),
            "cost_per_1k": a["cost_per_1k"], "latency_ms": None, "spent_usd": a["spent_usd"],
            "noise_floor": noise if arm == base else None, "frame": fhash, "rows": a["rows_file"], "commit": a["commit"],
            "secondary": {n: a["numbers"].get(n) for n in frame.metric.secondary},
        }))
    message = build_message(f"gitera run: {exp.tag} #{number} on dev, {len(trials)} runs per arm ({'complete' if complete else 'INCOMPLETE'})", trailers)
    return exp.repo.commit_files(exp.branch, files, message), summary


def _run_dirs(exp: Experiment) -> list[str]:
    base = exp.path("runs")
    return sorted(p.name for p in base.glob("run-*") if (p / "summary.json").exists()) if base.is_dir() else []


def render_runs(summary: Mapping[str, Any], frame: Frame, commit: str) -> str:
    """`gitera run`'s table for a run-level experiment."""
    def f(v: Any, spec: str = ".4f") -> str:
        return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "—"

    extra = list(frame.metric.secondary)
    lines = [f"{'arm':<16} {'mean':>9} {'± sd':>8} {'Δ vs base':>10} {'95% CI (Welch)':>21} {'s/run':>7} "
             + "".join(f"{n[:10]:>11}" for n in extra) + "  status"]
    for arm in summary["arms_order"]:
        a = summary["arms"][arm]
        ci = a.get("ci")
        status = "baseline" if arm == frame.baseline.arm else ("ok" if a["complete"] else "INCOMPLETE")
        ci_text = f"[{f(ci[0], '+.4f')}, {f(ci[1], '+.4f')}]" if ci else ""
        lines.append(f"{arm:<16} {f(a['score']):>9} {f(a['sd']):>8} {f(a.get('delta'), '+.4f'):>10} "
                     f"{ci_text:>21} {f(a['seconds'], '.1f'):>7} "
                     + "".join(f"{f(a['numbers'].get(n), '.4g'):>11}" for n in extra) + f"  {status}")
        lines += [f"    ! {p}" for p in a["problems"][:3]]
    nf = summary["noise_floor"]
    lines.append(f"Noise floor (sd of the baseline's {len(summary['trials'])} runs): {f(nf)} — a gain must exceed about 2× that ({f(2 * nf if nf is not None else None)}).")
    lines.append(sizing_sentence(summary.get("sizing")))
    lines.append(f"Run {summary['run']} recorded in {commit[:10]} ({'complete' if summary['complete'] else 'INCOMPLETE'}).")
    if summary["complete"]:
        lines.append("Next: `gitera iterate -m HYPOTHESIS` (or `--loop --propose CMD`) to climb the iterated arm, or `gitera verdict`.")
    return "\n".join(lines)
