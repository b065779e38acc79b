"""The experiment's dev runs: scoring baseline and arms on every dev row, and the run records.

A run is `runs/run-NNN/` (one per-row file per arm and `summary.json`) in one commit whose
Gitera-Result trailers carry each arm's numbers; the latest complete run sets the noise floor.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gitera.adapters.output import Output
from gitera.core.frame import Frame
from gitera.core.results import matrix, mean_of, read_results, sanitize
from gitera.core.trailers import build_message
from gitera.domain.experiment import Experiment, frame_hash
from gitera.domain.scoring import (
    Scorer,
    arm_commit,
    arm_source,
    budget_for,
    load_split,
    relpath,
    require_pilot,
    require_split,
    results_jsonl,
    spent_so_far,
)

if TYPE_CHECKING:
    import numpy as np

    from gitera.adapters.evalrun import EvalRun


def run_dirs(exp: Experiment) -> list[str]:
    base = exp.path("runs")
    return sorted(p.name for p in base.glob("run-*") if (p / "summary.json").exists()) if base.is_dir() else []


def latest_run(exp: Experiment) -> dict[str, Any] | None:
    """The summary of the latest complete run, or None."""
    for name in reversed(run_dirs(exp)):
        summary: dict[str, Any] = json.loads(exp.path(f"runs/{name}/summary.json").read_text())
        if summary.get("complete"):
            return summary
    return None


def load_run_matrix(exp: Experiment, summary: Mapping[str, Any], arm: str) -> np.ndarray:
    rows = summary["arms"][arm]["rows_file"]
    records = read_results((exp.repo.root / rows).read_text())
    return matrix(records, summary["row_ids"], summary["trials"])


def summarize(frame: Frame, fhash: str, ids: Sequence[str], runs: Mapping[str, EvalRun]) -> dict[str, Any]:
    """Per-arm score, trial sd, paired delta vs baseline with CI, cost and latency; the noise floor."""
    import numpy as np

    from gitera.core import stats

    trials = list(range(frame.metric.trials))
    base = frame.baseline.arm
    mats = {arm: matrix([r.to_json() for r in run.results], ids, trials) for arm, run in runs.items()}
    complete = all(run.complete for run in runs.values())
    aggregate_only = any(run.aggregate_only for run in runs.values())
    arms: dict[str, Any] = {}
    noise = None
    comparisons: dict[str, Any] = {}
    if complete and len(ids) >= 2 and not aggregate_only:
        noise = stats.noise_floor(mats[base])
        others = {a: m for a, m in mats.items() if a != base}
        if others:
            comparisons = stats.compare_arms(mats[base], others, alpha=frame.threshold.alpha, seed=int(fhash[:8], 16))
    for arm, run in runs.items():
        m = mats[arm]
        results = [r.to_json() for r in run.results]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an arm stopped by the budget has empty trials
            trial_means = np.nanmean(m, axis=0) if m.size and not run.aggregate_only else np.array([])
        info: dict[str, Any] = {
            "complete": run.complete,
            "n": len(ids),
            "trials": len(trials),
            "score": sanitize(float(np.mean(m))) if run.complete and m.size else None,
            "sd": sanitize(float(np.std(trial_means, ddof=1))) if run.complete and len(trial_means) > 1 else None,
            "cost_per_1k": sanitize((mean_of(results, "cost_usd") or 0.0) * 1000, 6) if mean_of(results, "cost_usd") is not None else None,
            "latency_ms": sanitize(mean_of(results, "latency_ms"), 3),
            "spent_usd": sanitize(run.spent_usd, 8),
            "statuses": run.status_counts(),
            "problems": list(run.problems[:20]),
        }
        if run.aggregate_only and run.complete:
            # SCORE: lines only (the fallback): one number per trial, no rows to pair
            vals = [float(v) for v in run.aggregate_scores.values()]
            info["score"] = sanitize(sum(vals) / len(vals)) if vals else None
            info["sd"] = sanitize(float(np.std(vals, ddof=1))) if len(vals) > 1 else None
            info["aggregate_only"] = True
            info["problems"].append("aggregate only (SCORE: lines): paired tests and slices are impossible")
        if arm in comparisons:
            c = comparisons[arm]
            info.update(delta=sanitize(c.effect), ci=[sanitize(c.ci_low), sanitize(c.ci_high)], p=sanitize(c.p_value, 8), test=c.test)
        arms[arm] = info
    if aggregate_only and complete and runs[base].aggregate_only:
        vals = [float(v) for v in runs[base].aggregate_scores.values()]
        base_sd = sanitize(float(np.std(vals, ddof=1))) if len(vals) > 1 else None
    else:
        base_sd = sanitize(noise.sd) if noise else None
    return {
        "complete": complete,
        "aggregate_only": aggregate_only,
        "noise_floor": base_sd,
        "noise": {"sd": sanitize(noise.sd), "within_row_var": sanitize(noise.within_row_var), "between_row_var": sanitize(noise.between_row_var),
                  "trial_means": [sanitize(x) for x in noise.trial_means]} if noise else None,
        "arms": arms,
    }


def record_run(exp: Experiment, frame: Frame, lock: Mapping[str, Any], out: Output, use_cache: bool = True) -> tuple[str, dict[str, Any]]:
    """Score baseline + arms on dev and commit the run; the caller holds the repository lock."""
    if frame.metric.level == "run":  # one score per run of a script (docs/run-level.md)
        from gitera.domain.runlevel import record_runs

        return record_runs(exp, frame, lock, out, use_cache)
    repo = exp.repo
    require_split(exp)
    require_pilot(exp)
    fhash = frame_hash(dict(lock))
    rows = load_split(exp, "dev")
    ids = [str(r["id"]) for r in rows]
    scorer = Scorer(exp, frame, lock, out, use_cache=use_cache)
    spent = spent_so_far(repo, exp.branch, exp.tag)
    order = [frame.baseline.arm, *frame.candidates]  # the baseline is measured first (rule 2)
    runs: dict[str, EvalRun] = {}
    commits: dict[str, str] = {}
    for arm in order:
        commits[arm] = arm_commit(exp, frame, arm)
        out.info(f"run: arm {arm} — {len(rows)} dev rows × {frame.metric.trials} trials")
        runs[arm] = scorer.score(arm, commits[arm], rows, "dev", list(range(frame.metric.trials)), budget=budget_for(frame, spent, exp))
        spent += runs[arm].spent_usd
        if runs[arm].stop_reason == "budget":
            out.warn(f"the budget of ${frame.iterate.budget.max_cost_usd if frame.iterate else '?'} is spent; arms after {arm} were not run.")
            break
    summary = summarize(frame, fhash, ids, runs)
    judge_report = scorer.cross_judge(runs, rows, spent) if summary["complete"] else None
    if judge_report is not None:
        summary["cross_judge"] = judge_report
        for arm, check in judge_report["arms"].items():  # the cross-judge's calls count in the arm's recorded spend
            summary["arms"][arm]["spent_usd"] = sanitize(summary["arms"][arm]["spent_usd"] + check["spent_usd"], 8)
        if judge_report["flagged"]:
            out.warn("the cross-judge disagrees with the judge on 2 or more of 5 rows: the metric needs work; the verdict will refuse this run.")
    number = len(run_dirs(exp)) + 1
    name = f"run-{number:03d}"
    files: dict[str, bytes | None] = {}
    for arm, arm_run in runs.items():
        rel = relpath(exp, f"{name}/{arm}.jsonl")
        files[rel] = results_jsonl(arm_run)
        summary["arms"][arm]["rows_file"] = rel
        summary["arms"][arm]["commit"] = arm_source(exp, frame, arm)
    summary.update(run=number, split="dev", row_ids=ids, trials=list(range(frame.metric.trials)), frame=fhash,
                   baseline=frame.baseline.arm, arms_order=list(runs))
    files[relpath(exp, f"{name}/summary.json")] = (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode()
    trailers: list[tuple[str, str | dict[str, Any]]] = [("Tag", exp.tag)]
    for arm in runs:
        a = summary["arms"][arm]
        status = "baseline" if arm == frame.baseline.arm else "measured"
        if not a["complete"]:
            status = "incomplete"
        trailers.append(("Result", {
            "kind": "run", "run": number, "arm": arm, "split": "dev", "n": a["n"], "trials": a["trials"],
            "score": a["score"], "sd": a["sd"], "delta": a.get("delta"), "ci": a.get("ci"), "p": a.get("p"),
            "status": status, "reason": (a["problems"][0] if a["problems"] else ("noise floor" if status == "baseline" else "")),
            "cost_per_1k": a["cost_per_1k"], "latency_ms": a["latency_ms"], "spent_usd": a["spent_usd"],
            "noise_floor": summary["noise_floor"] if arm == frame.baseline.arm else None,
            "frame": fhash, "rows": a["rows_file"], "commit": a["commit"],
        }))
    state = "complete" if summary["complete"] else "INCOMPLETE"
    message = build_message(f"gitera run: {exp.tag} #{number} on dev ({state})", trailers)
    commit = repo.commit_files(exp.branch, files, message)
    return commit, summary
