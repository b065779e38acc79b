"""gitera run: baseline first, then every arm, on all dev rows with the frame's trials (one commit)."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gitera.commands.lock import require_on_branch
from gitera.commands.pilot import require_pilot
from gitera.errors import Exit
from gitera.experiment import Experiment, frame_hash, require_intact, resolve
from gitera.frame import Frame
from gitera.git import Repo
from gitera.output import Output
from gitera.repolock import exclusive
from gitera.scoring import (
    Scorer,
    arm_commit,
    budget_for,
    load_split,
    matrix,
    mean_of,
    read_results,
    relpath,
    require_open,
    require_split,
    results_jsonl,
    sanitize,
    spent_so_far,
)
from gitera.trailers import build_message

if TYPE_CHECKING:
    import numpy as np

    from gitera.evalrun import EvalRun


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

    from gitera import stats

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


def run(tag: str | None, use_cache: bool, out: Output) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "run"):
        require_on_branch(exp)
        lock = require_intact(exp)
        require_open(exp)
        commit, summary = record_run(exp, exp.load_frame(), lock, out, use_cache)
    frame = exp.load_frame()
    out.result({"tag": exp.tag, "commit": commit, **{k: v for k, v in summary.items() if k != "row_ids"}}, render(summary, frame, commit))
    if not summary["complete"]:
        out.error("error: the run is incomplete (some rows unscored); it is recorded but no comparison is made — fix the harness and run again.")
        return Exit.EVAL
    return Exit.OK


def record_run(exp: Experiment, frame: Frame, lock: Mapping[str, Any], out: Output, use_cache: bool = True) -> tuple[str, dict[str, Any]]:
    """Score baseline + arms on dev and commit the run; the caller holds the repository lock."""
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
        summary["arms"][arm]["commit"] = commits[arm]
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
            "frame": fhash, "rows": a["rows_file"], "commit": commits[arm],
        }))
    state = "complete" if summary["complete"] else "INCOMPLETE"
    message = build_message(f"gitera run: {exp.tag} #{number} on dev ({state})", trailers)
    commit = repo.commit_files(exp.branch, files, message)
    return commit, summary


def _f(value: Any, spec: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def render(summary: Mapping[str, Any], frame: Frame, commit: str) -> str:
    lines = [
        f"{'arm':<16} {'score':>7} {'± sd':>7} {'Δ vs base':>10} {'95% CI':>19} {'$/1k rows':>10} {'latency ms':>10}  status",
    ]
    for arm in summary["arms_order"]:
        a = summary["arms"][arm]
        ci = a.get("ci")
        ci_text = f"[{_f(ci[0], '+.3f')}, {_f(ci[1], '+.3f')}]" if ci else ""
        status = "baseline" if arm == frame.baseline.arm else ("ok" if a["complete"] else "INCOMPLETE")
        lines.append(
            f"{arm:<16} {_f(a['score']):>7} {_f(a['sd']):>7} {_f(a.get('delta'), '+.4f'):>10} {ci_text:>19} "
            f"{_f(a['cost_per_1k'], '.4f'):>10} {_f(a['latency_ms'], '.2f'):>10}  {status}"
        )
        for problem in a["problems"][:3]:
            lines.append(f"    ! {problem}")
    nf = summary["noise_floor"]
    lines.append(
        f"Noise floor (baseline trial-to-trial sd): {_f(nf)} — a gain must exceed about 2× that ({_f(2 * nf if nf is not None else None)})."
    )
    lines.append(f"Run {summary['run']} recorded in {commit[:10]} ({'complete' if summary['complete'] else 'INCOMPLETE'}).")
    if summary["complete"]:
        lines.append("Next: `gitera iterate -m HYPOTHESIS` to climb the iterated arm, or `gitera verdict` for a plain comparison.")
    return "\n".join(lines)
