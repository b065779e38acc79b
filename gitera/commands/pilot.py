"""gitera pilot: every arm on ONE train row before the full run (discipline rule 11)."""

from __future__ import annotations

import json
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.core.errors import Exit
from gitera.core.frame import Frame
from gitera.core.results import sanitize
from gitera.core.trailers import build_message
from gitera.domain.experiment import Experiment, frame_hash, require_intact, require_on_branch, resolve
from gitera.domain.scoring import PILOT_FILE, Scorer, arm_commit, arm_source, load_split, relpath, require_open, require_split


def pilot(tag: str | None, out: Output) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "pilot"):
        require_on_branch(exp)
        lock = require_intact(exp)
        require_open(exp)
        manifest = require_split(exp)
        frame = exp.load_frame()
        if frame.metric.level == "run":  # one run of the script per arm instead of one row (docs/run-level.md)
            return _pilot_runs(repo, exp, frame, lock, manifest, out)
        rows = load_split(exp, "train") or load_split(exp, "dev")  # k-fold mode has no train split
        row = rows[0]
        scorer = Scorer(exp, frame, lock, out, use_cache=False)  # the pilot calls the harness (its checks need every field)
        results: dict[str, Any] = {}
        runs = {}
        for arm in frame.arms:
            commit = arm_commit(exp, frame, arm)
            out.info(f"pilot: arm {arm} on row {row['id']} …")
            run = scorer.score(arm, commit, [row], "train", [0])
            runs[arm] = run
        from gitera.adapters.evalrun import check_pilot

        problems = check_pilot({arm: list(run.results) for arm, run in runs.items() if not run.aggregate_only})
        # an aggregate-only harness gives no per-row cost or latency at all (rule 11)
        problems += [f"arm {arm}: the harness prints only `SCORE:`, so `cost_usd` and `latency_ms` are missing; "
                     "write one result line per row to $GITERA_OUT (docs/eval-contract.md)"
                     for arm, run in runs.items() if run.aggregate_only]
        for arm, run in runs.items():
            if run.aggregate_only:
                out.warn(f"arm {arm}'s harness prints only `SCORE:` aggregates: paired tests, slices, iterate and the verdict need per-row results.")
        for arm, run in runs.items():
            r = run.results[0] if run.results else None
            results[arm] = {
                "commit": arm_source(exp, frame, arm),
                "status": r.status if r else "missing",
                "score": r.score if r else None,
                "cost_usd": r.cost_usd if r else None,
                "latency_ms": r.latency_ms if r else None,
                "output": (r.output or "")[:200] if r else None,
                "error": (r.error or "")[:500] if r and r.error else None,
            }
        passed = not problems
        spent = sum(run.spent_usd for run in runs.values())
        record = {
            "status": "pass" if passed else "fail",
            "row": row["id"],
            "arms": results,
            "problems": problems,
            "frame": frame_hash(lock),
            "split_commitment": manifest["commitment"]["value"],
        }
        files = {relpath(exp, PILOT_FILE): (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()}
        trailer = {"status": record["status"], "row": row["id"], "problems": len(problems), "spent_usd": sanitize(spent, 8),
                   "arms": {a: {"score": v["score"], "cost_usd": v["cost_usd"], "latency_ms": v["latency_ms"]} for a, v in results.items()}}
        message = build_message(f"gitera pilot: {exp.tag} {'passed' if passed else 'FAILED'}", [("Tag", exp.tag), ("Pilot", trailer)],
                                body="\n".join(problems))
        commit = repo.commit_files(exp.branch, files, message)
    lines = [f"{'arm':<16} {'status':<8} {'score':>6} {'cost_usd':>10} {'latency_ms':>11}  output"]
    for arm, v in results.items():
        lines.append(
            f"{arm:<16} {v['status']:<8} {_fmt(v['score']):>6} {_fmt(v['cost_usd']):>10} {_fmt(v['latency_ms']):>11}  {(v['output'] or '')[:40]}"
        )
    return _report(out, exp, commit, record, lines, problems, f"every arm returned complete, real fields on row {row['id']}",
                   "fix the harness or the arms")


def _pilot_runs(repo: Repo, exp: Experiment, frame: Frame, lock: dict[str, Any], manifest: dict[str, Any], out: Output) -> int:
    from gitera.domain.runlevel import pilot_record

    record, problems, spent = pilot_record(exp, frame, lock, out)
    record.update(frame=frame_hash(lock), split_commitment=manifest["commitment"]["value"])
    passed = not problems
    trailer = {"status": record["status"], "row": record["row"], "level": "run", "problems": len(problems), "spent_usd": sanitize(spent, 8),
               "arms": {a: {"score": v["score"], "cost_usd": v["cost_usd"], "seconds": v["seconds"]} for a, v in record["arms"].items()}}
    message = build_message(f"gitera pilot: {exp.tag} {'passed' if passed else 'FAILED'}", [("Tag", exp.tag), ("Pilot", trailer)],
                            body="\n".join(problems))
    commit = repo.commit_files(exp.branch, {relpath(exp, PILOT_FILE): (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()}, message)
    lines = [f"{'arm':<16} {'status':<8} {frame.metric.primary[:12]:>12} {'seconds':>8}  read from"]
    lines += [f"{arm:<16} {v['status']:<8} {_fmt(v['score']):>12} {_fmt(v['seconds']):>8}  {v['source'] or '—'}" for arm, v in record["arms"].items()]
    return _report(out, exp, commit, record, lines, problems, f"every arm's script ran once and reported {frame.metric.primary}",
                   "fix the script or the frame's patterns")


def _report(out: Output, exp: Experiment, commit: str, record: dict[str, Any], lines: list[str], problems: list[str], passed_because: str,
            fix: str) -> int:
    """The pilot's table, then passed (and what next) or its problems (and what to fix); the exit code."""
    if not problems:
        lines.append(f"Pilot passed ({commit[:10]}): {passed_because}. Next: `gitera run`.")
    else:
        lines += [f"  - {p}" for p in problems]
        lines.append(f"Pilot FAILED ({commit[:10]}, recorded): {fix}, then run `gitera pilot` again.")
    out.result({"tag": exp.tag, "commit": commit, **record}, "\n".join(lines))
    if problems:
        out.error("error: the pilot found problems (listed above); `gitera run` refuses until a pilot passes.")
    return Exit.OK if not problems else Exit.EVAL


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


