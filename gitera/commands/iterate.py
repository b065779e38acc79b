"""gitera iterate -m HYPOTHESIS: one disciplined attempt on the iterated arm.

Only the target files may differ; the change is scored on dev in a clean work tree;
it is kept only if the paired gain over the current best beats the ladder rule and
every guard holds; otherwise a second commit restores the best state. After each
sprint the generalization gate runs. Each step is one compare-and-swap commit.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gitera.commands.lock import require_on_branch
from gitera.errors import ConfigError, Exit, RefusedError, UsageError
from gitera.experiment import Experiment, frame_hash, require_intact, resolve
from gitera.frame import Frame, Iterate
from gitera.git import Repo, blob_id
from gitera.loopstate import ACTIVE, KILLED, SATURATED, STOPPED, LoopState, Point, stop_reason
from gitera.output import Output
from gitera.repolock import exclusive
from gitera.scoring import (
    Scorer,
    budget_for,
    load_split,
    mean_of,
    read_results,
    relpath,
    require_open,
    require_split,
    results_jsonl,
    sanitize,
)
from gitera.trailers import build_message

STATE_FILE = "iterate.json"
PLATEAU_WINDOW = 6


# --- state --------------------------------------------------------------------------


def load_state(exp: Experiment) -> LoopState | None:
    path = exp.path(f"runs/{STATE_FILE}")
    if not path.exists():
        return None
    try:
        return LoopState.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{exp.rel('runs/' + STATE_FILE)} is corrupt; restore it with `git checkout -- {exp.rel('runs/' + STATE_FILE)}`.") from None


def state_bytes(state: LoopState) -> bytes:
    return (json.dumps(state.to_dict(), indent=1, sort_keys=True) + "\n").encode()


def _target_blobs(repo: Repo, rev: str, targets: Sequence[str]) -> dict[str, str]:
    return repo.ls_tree(rev, list(targets))


def start_state(exp: Experiment, frame: Frame, lock: Mapping[str, Any], out: Output, use_cache: bool) -> LoopState:
    """The loop starts from the latest complete run (made now if missing: it sets the noise floor)."""
    from gitera.commands.run import latest_run, record_run

    assert frame.iterate is not None
    summary = latest_run(exp)
    if summary is None:
        out.info("No complete dev run yet: running the baseline and arms first (this sets the noise floor).")
        _, summary = record_run(exp, frame, lock, out, use_cache)
        if not summary["complete"]:
            raise RefusedError("the dev run is incomplete, so there is no noise floor to iterate against; fix the harness and run `gitera run`.")
    arm = frame.iterate.arm
    if arm not in summary["arms"]:
        raise RefusedError(f"the latest run has no results for the iterated arm {arm}; run `gitera run` again.")
    a = summary["arms"][arm]
    tip = exp.repo.rev(f"refs/heads/{exp.branch}") or ""
    start = Point(0, tip, a["score"], a["rows_file"], _target_blobs(exp.repo, tip, frame.iterate.target))
    return LoopState(arm=arm, noise_floor=float(summary["noise_floor"] or 0.0), run=int(summary["run"]), best=start,
                     gate_passed=start, sprint_start=tip)


# --- checks -------------------------------------------------------------------------


def dirty_outside_targets(repo: Repo, targets: Sequence[str], contents: Mapping[str, bytes | None]) -> list[str]:
    """Changed tracked files other than the targets, and untracked files the change could read.

    An untracked file anywhere under a target's directory, or one whose path or file name a
    target file mentions (a prompt include, a rules fragment), could change what the arm does
    without being part of the attempt, so it is refused. Other untracked files at the
    repository root or in unrelated folders are exempt: notes and scratch files live there.
    """
    target_dirs = {str(Path(t).parent) + "/" for t in targets} - {"./"}
    named = {p: mentioned_names(c.decode("utf-8", errors="replace")) for p, c in contents.items() if c is not None}
    bad = []
    for code, path in repo.status_porcelain():
        if path in targets:
            continue
        if code != "??":
            bad.append(path)
        elif any(path.startswith(d) for d in target_dirs):
            bad.append(f"{path} (untracked, under a target file's folder)")
        else:
            by = [t for t, names in named.items() if path in names or Path(path).name in names]
            if by:
                bad.append(f"{path} (untracked, named in {by[0]})")
    return bad


def mentioned_names(text: str) -> set[str]:
    """Every path-like token of a text, and its last component: what a target file could refer to."""
    names = set()
    for token in re.findall(r"[\w.\-/]+", text):
        token = token.removeprefix("./").rstrip(".")
        if token:
            names.add(token)
            names.add(token.rsplit("/", 1)[-1])
    return names


def guard_failures(frame: Frame, attempt: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]]) -> list[str]:
    failures = []
    for g in frame.metric.guards:
        field = "score" if g.name == frame.metric.primary else g.name
        new, base = mean_of(attempt, field), mean_of(baseline, field)
        if new is None:
            failures.append(f"guard {g.name}: the harness reported no {g.name}")
            continue
        if g.kind == "max" and new > g.limit:
            failures.append(f"guard {g.name}: {new:.4g} is above the maximum {g.limit:g}")
        elif g.kind == "min" and new < g.limit:
            failures.append(f"guard {g.name}: {new:.4g} is below the minimum {g.limit:g}")
        elif g.kind in ("max_increase", "max_decrease") and base is not None:
            change = (new - base) / abs(base) if base else (0.0 if new == base else float("inf") * (1 if new > base else -1))
            if g.kind == "max_increase" and change > g.limit:
                failures.append(f"guard {g.name}: +{change:.0%} vs the baseline exceeds the allowed +{g.limit:.0%}")
            if g.kind == "max_decrease" and -change > g.limit:
                failures.append(f"guard {g.name}: {change:.0%} vs the baseline exceeds the allowed -{g.limit:.0%}")
    return failures


def plateau(history: Sequence[Mapping[str, Any]]) -> bool:
    recent = [h for h in history if h.get("status") in ("keep", "discard", "guard_fail")][-PLATEAU_WINDOW:]
    return len(recent) >= PLATEAU_WINDOW and not any(h["status"] == "keep" for h in recent)


def why_stop(state: LoopState, it: Iterate) -> str | None:
    """The frame's budget and the plateau rule applied to the loop state now."""
    b = it.budget
    return stop_reason(state, max_iterations=b.max_iterations, max_cost_usd=b.max_cost_usd, max_hours=b.max_wall_clock_hours,
                       max_crashes=b.max_consecutive_crashes, now=time.time(), plateau=plateau(state.history))


# --- the command ----------------------------------------------------------------------


def iterate(tag: str | None, hypothesis: str, out: Output, use_cache: bool = True) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    if not hypothesis.strip():
        raise UsageError('state the one change this attempt tests: gitera iterate -m "HYPOTHESIS".')
    with exclusive(repo.common_dir, "iterate"):
        if repo.finish_interrupted_sync():
            out.info("Finished updating the work tree after an interrupted gitera command.")
        return _iterate(repo, exp, " ".join(hypothesis.split()), out, use_cache)


def prepare(repo: Repo, exp: Experiment, out: Output, use_cache: bool) -> tuple[Frame, Mapping[str, Any], LoopState]:
    """Checks shared by iterate and gate, and resumption of an interrupted step."""
    require_on_branch(exp)
    lock = require_intact(exp)
    require_open(exp)
    require_split(exp)
    frame = exp.load_frame()
    if frame.iterate is None:
        raise RefusedError(
            f"the frame of {exp.tag} has no `iterate` section: this experiment compares fixed arms; run `gitera verdict` when ready."
        )
    state = load_state(exp) or start_state(exp, frame, lock, out, use_cache)
    state = resume(exp, frame, lock, state, out, use_cache)
    return frame, lock, state


def resume(exp: Experiment, frame: Frame, lock: Mapping[str, Any], state: LoopState, out: Output, use_cache: bool) -> LoopState:
    """Finish what a killed command left pending (a restore, a gate)."""
    if "restore" in state.pending:
        out.info("Resuming: restoring the target files to the best state after the last attempt.")
        state = restore(exp, frame, state, state.best, "resume after an interrupted attempt", None)
    if "gate" in state.pending:
        from gitera.commands.gate import run_gate

        out.info("Resuming: running the generalization gate the last sprint ended with.")
        state = run_gate(exp, frame, lock, state, out, use_cache)
    return state


def target_files(repo: Repo, targets: Sequence[str], point: Point) -> dict[str, bytes | None]:
    """The target files' contents at a loop state (None where the file does not exist there)."""
    paths = [p for p in targets if p in point.blobs]
    contents = dict(zip(paths, repo.cat_blobs([point.blobs[p] for p in paths])))
    return {p: contents.get(p) for p in targets}


def point_commit(repo: Repo, targets: Sequence[str], point: Point, subject: str) -> str:
    """A commit of the branch tip with the target files at ``point``, on no branch (to score it)."""
    tip = repo.rev("HEAD")
    assert tip is not None
    return repo.make_commit(tip, target_files(repo, targets, point), f"gitera candidate: {subject}"[:200])


def restore(exp: Experiment, frame: Frame, state: LoopState, to: Point | None, why: str,
            iteration: int | None, extra_trailers: Sequence[tuple[str, str | dict[str, Any]]] = ()) -> LoopState:
    assert frame.iterate is not None and to is not None
    repo = exp.repo
    files = target_files(repo, frame.iterate.target, to)
    new_state = state.with_(pending=tuple(p for p in state.pending if p != "restore"))
    files[relpath(exp, STATE_FILE)] = state_bytes(new_state)
    record = {"iteration": iteration, "restored_to": to.iteration, "commit": to.commit, "files": list(frame.iterate.target), "reason": why}
    message = build_message(f"gitera restore: {exp.tag} back to iteration {to.iteration}", [("Tag", exp.tag), ("Restore", record), *extra_trailers])
    repo.commit_files(exp.branch, files, message)
    return new_state


def _iterate(repo: Repo, exp: Experiment, hypothesis: str, out: Output, use_cache: bool) -> int:
    frame, lock, state = prepare(repo, exp, out, use_cache)
    it = frame.iterate
    assert it is not None and state.best is not None
    if state.status != ACTIVE:
        raise RefusedError(_closed_reason(state))
    reason = why_stop(state, it)
    if reason:
        record_stop(exp, state, reason)
        raise RefusedError(f"the loop has stopped: {reason}; the verdict will use iteration {state.gate_passed.iteration if state.gate_passed else 0} (the latest gate-passed state).")
    contents = {}
    for path in it.target:
        p = repo.root / path
        contents[path] = p.read_bytes() if p.exists() else None
    dirty = dirty_outside_targets(repo, it.target, contents)
    if dirty:
        raise RefusedError(
            f"files other than the target files changed: {', '.join(dirty)}; an attempt may change only {', '.join(it.target)} "
            "— commit, stash or revert the others first (one change per attempt)."
        )
    candidate_blobs = {p: blob_id(c) for p, c in contents.items() if c is not None}
    if candidate_blobs == state.best.blobs:
        raise RefusedError(f"the target files ({', '.join(it.target)}) are unchanged from the current best; edit them to test your hypothesis first.")

    tip = repo.rev(f"refs/heads/{exp.branch}")
    assert tip is not None
    candidate = _dangling_commit(repo, tip, contents, hypothesis)
    rows = load_split(exp, "dev")
    ids = [str(r["id"]) for r in rows]
    trials = list(range(frame.metric.trials))
    out.info(f"iterate #{state.iteration + 1} (sprint {state.sprint}, attempt {state.in_sprint + 1}/{it.sprint}): scoring {it.arm} on {len(rows)} dev rows × {len(trials)} trials")
    started = state.started_at or time.time()
    scorer = Scorer(exp, frame, lock, out, use_cache=use_cache)
    run = scorer.score(it.arm, candidate, rows, "dev", trials, budget=budget_for(frame, state.spent_usd, exp), slot="iterate")
    if run.aggregate_only:
        raise RefusedError(
            "the harness reports only `SCORE:` aggregates, so no paired keep/discard decision is possible; "
            "write one result line per row to $GITERA_OUT (docs/eval-contract.md) and iterate again."
        )
    records = [r.to_json() for r in run.results]
    number = state.iteration + 1
    rows_rel = relpath(exp, f"attempt-{number:03d}.jsonl")
    best_records = read_results((repo.root / state.best.rows_file).read_text())
    decision = decide(frame, state, run.complete, run.problems, run.status_counts(), records, best_records, ids, trials, exp)
    score = decision["score"]
    keep = decision["status"] == "keep"
    point = Point(number, "", score, rows_rel, candidate_blobs)  # its commit is this attempt's (see the trailers)
    history_entry = {"iteration": number, "sprint": state.sprint, "status": decision["status"], "score": score,
                     "gain": decision["gain"], "hypothesis": hypothesis[:200]}
    new_state = state.with_(
        iteration=number, in_sprint=state.in_sprint + 1, started_at=started,
        spent_usd=state.spent_usd + run.spent_usd,
        consecutive_crashes=state.consecutive_crashes + 1 if decision["status"] in ("crash", "timeout") else 0,
        best=point if keep else state.best,
        pending=(() if keep else ("restore",)) + (("gate",) if state.in_sprint + 1 >= it.sprint else ()),
        history=(*state.history, history_entry),
    )
    fhash = frame_hash(dict(lock))
    result = {
        "kind": "attempt", "iteration": number, "sprint": state.sprint, "arm": it.arm, "split": "dev", "n": len(ids),
        "trials": len(trials), "score": score, "sd": decision["sd"], "delta": decision["gain"], "ci": decision["ci"],
        "best_score": state.best.score, "threshold": decision["threshold"], "status": decision["status"],
        "reason": decision["reason"], "outcome": decision["outcome"], "hypothesis": hypothesis,
        "cost_per_1k": decision["cost_per_1k"], "latency_ms": decision["latency_ms"], "spent_usd": sanitize(run.spent_usd, 8),
        "frame": fhash, "rows": rows_rel, "noise_floor": state.noise_floor,
    }
    files: dict[str, bytes | None] = {**contents, rows_rel: results_jsonl(run)}
    files[relpath(exp, STATE_FILE)] = state_bytes(new_state)
    message = build_message(f"gitera iterate: {exp.tag} #{number} {decision['status']}: {hypothesis}"[:100],
                            [("Tag", exp.tag), ("Result", result)], body=f"Hypothesis: {hypothesis}\nDecision: {decision['reason']}")
    commit = repo.commit_files(exp.branch, files, message)
    lines = [f"#{number} {decision['status'].upper()}: {decision['reason']}"]
    if not keep:
        new_state = restore(exp, frame, new_state, new_state.best, f"attempt {number} was not kept ({decision['status']})", number)
        lines.append(f"  restored {', '.join(it.target)} to iteration {new_state.best.iteration if new_state.best else 0} (the attempt stays in history at {commit[:10]})")
    if "gate" in new_state.pending:
        from gitera.commands.gate import run_gate

        new_state = run_gate(exp, frame, lock, new_state, out, use_cache)
        gate = new_state.history[-1] if new_state.history and new_state.history[-1].get("gate") else None
        if gate:
            lines.append(f"  gate after sprint {gate['sprint']}: {gate['outcome'].upper()} — {'; '.join(gate['reasons'])}")
    after = why_stop(new_state, it)
    if after and new_state.status == ACTIVE:
        new_state = record_stop(exp, new_state, after)
        lines.append(f"  the loop stops: {after}.")
    out.result({"tag": exp.tag, "commit": commit, "result": result, "state": new_state.to_dict()}, "\n".join(lines))
    if decision["status"] in ("crash", "timeout"):
        return Exit.EVAL
    return Exit.OK


def record_stop(exp: Experiment, state: LoopState, reason: str) -> LoopState:
    new_state = state.with_(status=STOPPED, stop_reason=reason)
    locked = state.gate_passed.iteration if state.gate_passed else 0
    message = build_message(f"gitera stop: {exp.tag} after {state.iteration} iterations",
                            [("Tag", exp.tag), ("Stop", {"reason": reason, "iteration": state.iteration, "locked_iteration": locked})])
    exp.repo.commit_files(exp.branch, {relpath(exp, STATE_FILE): state_bytes(new_state)}, message)
    return new_state


def _closed_reason(state: LoopState) -> str:
    locked = state.gate_passed.iteration if state.gate_passed else 0
    if state.status == KILLED:
        return f"the generalization gate failed and the arm {state.arm} was killed (back at iteration {locked}); a new idea needs a new experiment."
    if state.status == SATURATED:
        return f"the gate found the arm {state.arm} saturated and locked iteration {locked} for the verdict; run `gitera verdict`."
    return f"the loop has stopped ({state.stop_reason}); the verdict will use iteration {locked}. Run `gitera verdict` when ready."


def _dangling_commit(repo: Repo, tip: str, contents: Mapping[str, bytes | None], subject: str) -> str:
    """A commit of the tip with the candidate target files, on no branch: what the eval scores."""
    return repo.make_commit(tip, contents, f"gitera candidate: {subject}"[:200])


def row_trial_scores(records: Sequence[Mapping[str, Any]], ids: Sequence[str], trials: Sequence[int]) -> list[list[float]]:
    """rows × trials scores of a complete run, in ``ids`` order (plain lists)."""
    col = {t: j for j, t in enumerate(trials)}
    index = {i: k for k, i in enumerate(ids)}
    out = [[0.0] * len(trials) for _ in ids]
    for r in records:
        k, j = index.get(str(r["id"])), col.get(int(r["trial"]))
        if k is not None and j is not None and r.get("score") is not None:
            out[k][j] = float(r["score"])
    return out


def decide(frame: Frame, state: LoopState, complete: bool, problems: Sequence[str], counts: Mapping[str, int],
           records: Sequence[Mapping[str, Any]], best_records: Sequence[Mapping[str, Any]], ids: Sequence[str],
           trials: Sequence[int], exp: Experiment) -> dict[str, Any]:
    """The keep / discard / crash / timeout / guard_fail decision with its reason in words.

    Plain Python on purpose: numpy and scipy would add ~0.2 s to every attempt's start-up."""
    from statistics import NormalDist, stdev

    from gitera.rules import ladder

    base: dict[str, Any] = {"score": None, "sd": None, "gain": None, "ci": None, "threshold": None,
                            "cost_per_1k": None, "latency_ms": sanitize(mean_of(records, "latency_ms"), 3)}
    cost = mean_of(records, "cost_usd")
    base["cost_per_1k"] = sanitize(cost * 1000, 6) if cost is not None else None
    if not complete:
        status = "timeout" if counts.get("timeout", 0) >= max(1, sum(v for k, v in counts.items() if k != "ok")) / 2 else "crash"
        first = problems[0] if problems else "rows were not scored"
        return {**base, "status": status, "outcome": "neutral", "reason": f"{status}: {sum(v for k, v in counts.items() if k != 'ok')} row×trial results unscored ({first})"}
    cand = row_trial_scores(records, ids, trials)
    best = row_trial_scores(best_records, ids, trials)
    n = len(ids)
    trial_means = [sum(row[j] for row in cand) / n for j in range(len(trials))]
    base["score"] = sanitize(sum(trial_means) / len(trial_means))
    base["sd"] = sanitize(stdev(trial_means)) if len(trials) > 1 else None
    it = frame.iterate
    assert it is not None
    sign = 1.0 if frame.metric.direction == "higher" else -1.0
    diffs = [sign * (sum(c) / len(c) - sum(b) / len(b)) for c, b in zip(cand, best)]
    promo = ladder(diffs, state.noise_floor, it.min_delta)
    z = NormalDist().inv_cdf(1 - frame.threshold.alpha / 2)
    half = z * promo.se if promo.se == promo.se else float("nan")
    base.update(gain=sanitize(promo.gain), ci=[sanitize(promo.gain - half), sanitize(promo.gain + half)], threshold=sanitize(promo.threshold))
    run_summary_path = exp.path(f"runs/run-{state.run:03d}/summary.json")
    baseline_records: list[dict[str, Any]] = []
    if run_summary_path.exists():
        summary = json.loads(run_summary_path.read_text())
        baseline_records = read_results((exp.repo.root / summary["arms"][frame.baseline.arm]["rows_file"]).read_text())
    guards = guard_failures(frame, records, baseline_records)
    if guards:
        return {**base, "status": "guard_fail", "outcome": "neutral", "reason": "; ".join(guards)}
    if promo.keep:
        return {**base, "status": "keep", "outcome": "supported", "reason": promo.reason}
    outcome = "falsified" if promo.gain < -promo.threshold else "neutral"
    reason = promo.reason
    if abs(promo.gain) <= 2 * state.noise_floor:
        reason += " (within the noise floor)"
    return {**base, "status": "discard", "outcome": outcome, "reason": reason}
