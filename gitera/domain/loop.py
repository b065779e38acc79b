"""The iterate loop: one disciplined attempt on the iterated arm, its restore, its stops.

Only the target files may differ; the change is scored on dev in a clean work tree; it is
kept only if the paired gain over the current best beats the ladder rule and every guard
holds; otherwise a second commit restores the best state. After each sprint the
generalization gate runs (gitera.domain.gating). Each step is one compare-and-swap commit.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo, blob_id
from gitera.adapters.output import Output
from gitera.core.errors import Exit, GiteraError, RefusedError
from gitera.core.frame import PLATEAU_DEFAULT, Frame, Iterate
from gitera.core.loopstate import ACTIVE, KILLED, SATURATED, STOPPED, LoopState, Point, Stop, kind_of, plateau_reached, stop_check
from gitera.core.results import sanitize
from gitera.core.trailers import build_message
from gitera.domain.attempt import Scored, score_attempt, weight_fields
from gitera.domain.experiment import Experiment, frame_hash, require_intact, require_on_branch
from gitera.domain.loopstore import STATE_FILE, closed_reason, load_state, locked_iteration, state_bytes, target_files, ungated_work
from gitera.domain.scoring import Scorer, candidate_commit, load_split, relpath, require_open, require_split, spent_so_far

PLATEAU_WINDOW = PLATEAU_DEFAULT  # the frame's `iterate.plateau` when it does not say (docs/iterate.md, "Loop control")


def _target_blobs(repo: Repo, rev: str, targets: Sequence[str]) -> dict[str, str]:
    return repo.ls_tree(rev, list(targets))


def start_state(exp: Experiment, frame: Frame, lock: Mapping[str, Any], out: Output, use_cache: bool) -> LoopState:
    """The loop starts from the latest complete run (made now if missing: it sets the noise floor)."""
    from gitera.domain.runs import latest_run, record_run

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
    # iteration 0 is the arm as the run measured it, not what the tip holds now: a target changed by
    # a plain commit since the run is then scored as the first attempt (and the gate's diff covers it)
    measured = exp.repo.rev(str(a.get("commit") or "")) if a.get("commit") else None
    start_commit = measured or exp.repo.rev(f"refs/heads/{exp.branch}") or ""
    start = Point(0, start_commit, a["score"], a["rows_file"], _target_blobs(exp.repo, start_commit, frame.iterate.target))
    return LoopState(arm=arm, noise_floor=float(summary["noise_floor"] or 0.0), run=int(summary["run"]), best=start,
                     gate_passed=start, sprint_start=start_commit)


def dirty_outside_targets(repo: Repo, targets: Sequence[str], contents: Mapping[str, bytes | None]) -> list[str]:
    """Changed tracked files other than the targets, and untracked files the change could read.

    An untracked file anywhere under a target's directory, or one whose path or file name a
    target file mentions (a prompt include, a rules fragment), or one in a folder a target
    mentions as such (`rules/`, `rules/*.txt`), could change what the arm does
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
            by = [t for t, names in named.items() if path in names or Path(path).name in names
                  or any(path.startswith(n) for n in names if n.endswith("/"))]  # in a folder it names, e.g. `glob("rules/*.txt")`
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


def plateau(history: Sequence[Mapping[str, Any]], window: int | None = PLATEAU_WINDOW, since: int = 0) -> bool:
    return plateau_reached([dict(h) for h in history], window, since)


def why_stop(state: LoopState, it: Iterate, next_cost: float | None = None, *, heuristics: bool = True) -> Stop | None:
    """The frame's budget and (with ``heuristics``) the crash limit and the plateau rule applied to the loop state now."""
    b = it.budget
    return stop_check(state if heuristics else state.with_(consecutive_crashes=0), max_iterations=b.max_iterations,
                      max_cost_usd=b.max_cost_usd, max_hours=b.max_wall_clock_hours, max_crashes=b.max_consecutive_crashes,
                      now=time.time(), plateau=heuristics and plateau(state.history, it.plateau, state.plateau_from), next_cost=next_cost)


def expected_attempt_cost(exp: Experiment, state: LoopState, n_rows: int, trials: int) -> float | None:
    """What scoring one attempt should cost: rows × trials at the last scored attempt's cost per call
    (or, before any, the iterated arm's in the loop's run); None when the harness reports no cost."""
    per_1k = next((h["cost_per_1k"] for h in reversed(state.history) if isinstance(h.get("cost_per_1k"), (int, float))), None)
    if per_1k is None:
        try:
            summary = json.loads(exp.path(f"runs/run-{state.run:03d}/summary.json").read_text())
            per_1k = summary["arms"][state.arm].get("cost_per_1k")
        except (OSError, ValueError, KeyError):
            return None
    return float(per_1k) / 1000 * n_rows * trials if isinstance(per_1k, (int, float)) else None


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
    # the cost budget is the experiment's: pilot, runs, attempts and gates, as their trailers record it
    state = state.with_(spent_usd=spent_so_far(repo, exp.branch, exp.tag))
    state = resume(exp, frame, lock, state, out, use_cache)
    return frame, lock, state


def resume(exp: Experiment, frame: Frame, lock: Mapping[str, Any], state: LoopState, out: Output, use_cache: bool) -> LoopState:
    """Finish what a killed command left pending (a restore, a gate)."""
    if "restore" in state.pending:
        out.info("Resuming: restoring the target files to the best state after the last attempt.")
        state = restore(exp, frame, state, state.best, "resume after an interrupted attempt", None)
    if "gate" in state.pending:
        from gitera.domain.gating import run_gate

        out.info("Resuming: running the generalization gate an interrupted step left pending.")
        state = run_gate(exp, frame, lock, state, out, use_cache)
    return state


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


def run_attempt(repo: Repo, exp: Experiment, hypothesis: str, out: Output, use_cache: bool) -> int:
    frame, lock, state = prepare(repo, exp, out, use_cache)
    it = frame.iterate
    assert it is not None and state.best is not None
    if state.status != ACTIVE:
        raise RefusedError(closed_reason(state))
    run_level = frame.metric.level == "run"  # one score per run of a script (docs/run-level.md)
    rows = load_split(exp, "dev") if not run_level else [{"id": "run"}]
    expected = expected_attempt_cost(exp, state, len(rows), 1 if run_level else frame.metric.trials)
    stop = why_stop(state, it, expected)
    if stop:
        stopped = record_stop(exp, frame, lock, state, stop, out, use_cache)
        raise RefusedError(f"the loop has stopped: {stop.reason}; the verdict will use iteration {locked_iteration(stopped)} "
                           f"(the latest gate-passed state){RESUME_HINT if not stop.final else ''}.")
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
        raise SameContent(f"the target files ({', '.join(it.target)}) are unchanged from the current best; edit them to test your hypothesis first.")
    earlier = same_content(state, content_digest(candidate_blobs))
    if earlier is not None:  # by hand: said, then scored (the autonomous loop skips it instead)
        out.warn(f"the target files equal {earlier}, scored before; with the cache the result will be the same.")

    candidate = candidate_commit(exp, contents, hypothesis)
    out.info(f"iterate #{state.iteration + 1} (sprint {state.sprint}, attempt {state.in_sprint + 1}/{it.sprint}): scoring {it.arm} "
             + (f"run by run, 1 to {it.max_runs} runs" if run_level else f"on {len(rows)} dev rows × {frame.metric.trials} trials"))
    started = state.started_at or time.time()
    scoring_started = time.time()
    if run_level:
        from gitera.domain.runloop import score_run_attempt

        scored = score_run_attempt(exp, frame, lock, state, candidate, state.iteration + 1, out, use_cache)
    else:
        scored = score_attempt(exp, frame, state, Scorer(exp, frame, lock, out, use_cache=use_cache), candidate, rows, out)
    d = scored.decision
    number = state.iteration + 1
    rows_rel = relpath(exp, f"attempt-{number:03d}.jsonl")
    keep = d["status"] == "keep"
    point = Point(number, "", d["score"], rows_rel, candidate_blobs)  # its commit is this attempt's (see the trailers)
    history_entry = {"iteration": number, "sprint": state.sprint, "status": d["status"], "score": d["score"], "gain": d["gain"],
                     "hypothesis": hypothesis[:200], "cost_per_1k": d["cost_per_1k"], "spent_usd": sanitize(scored.spent_usd, 8),
                     "content": content_digest(candidate_blobs), "seconds": round(time.time() - scoring_started, 3)}
    new_state = state.with_(
        iteration=number, in_sprint=state.in_sprint + 1, started_at=started, stop_reason=None, stop_kind=None,
        spent_usd=state.spent_usd + scored.spent_usd,
        consecutive_crashes=state.consecutive_crashes + 1 if d["status"] in ("crash", "timeout") else 0,
        best=point if keep else state.best,
        pending=(() if keep else ("restore",)) + (("gate",) if state.in_sprint + 1 >= it.sprint else ()),
        history=(*state.history, history_entry),
    )
    result = attempt_result(frame, lock, state, number, len(rows), hypothesis, scored, rows_rel)
    files: dict[str, bytes | None] = {**contents, rows_rel: scored.rows}
    files[relpath(exp, STATE_FILE)] = state_bytes(new_state)
    message = build_message(f"gitera iterate: {exp.tag} #{number} {d['status']}: {hypothesis}"[:100],
                            [("Tag", exp.tag), ("Result", result)], body=f"Hypothesis: {hypothesis}\nDecision: {d['reason']}")
    commit = repo.commit_files(exp.branch, files, message)
    lines = [f"#{number} {d['status'].upper()}: {d['reason']}"]
    if scored.first_error:
        lines.append(f"  first error: {scored.first_error}")
    if not keep:
        new_state = restore(exp, frame, new_state, new_state.best, f"attempt {number} was not kept ({d['status']})", number)
        lines.append(f"  restored {', '.join(it.target)} to iteration {new_state.best.iteration if new_state.best else 0} (the attempt stays in history at {commit[:10]})")
    try:
        new_state = _close_step(exp, frame, lock, new_state, out, use_cache, lines, budget_cut=scored.budget_cut, n_rows=len(rows))
    except GiteraError:
        out.info("\n".join(lines))  # the attempt is recorded: say how it was decided before the follow-up's error
        raise
    out.result({"tag": exp.tag, "commit": commit, "result": result, "state": new_state.to_dict(), "first_error": scored.first_error},
               "\n".join(lines))
    if d["status"] in ("crash", "timeout"):
        return Exit.EVAL
    return Exit.OK


def attempt_result(frame: Frame, lock: Mapping[str, Any], state: LoopState, number: int, n: int, hypothesis: str,
                   scored: Scored, rows_rel: str) -> dict[str, Any]:
    """The attempt's Gitera-Result trailer (docs/schemas/log-jsonl.schema.json describes every field)."""
    it = frame.iterate
    assert it is not None and state.best is not None
    d = scored.decision
    return {
        "kind": "attempt", "iteration": number, "sprint": state.sprint, "arm": it.arm, "split": "dev", "n": n,
        "trials": d["trials"], "score": d["score"], "sd": d["sd"], "delta": d["gain"], "ci": d["ci"],
        "best_score": state.best.score, "threshold": d["threshold"], "status": d["status"],
        "reason": d["reason"], "outcome": d["outcome"], "hypothesis": hypothesis,
        "mode": it.mode, "gains": d["gains"], "weights": weight_fields(frame) if it.mode == "weighted" else None,
        "confirm": d.get("confirm"),
        "cost_per_1k": d["cost_per_1k"], "latency_ms": d["latency_ms"], "spent_usd": sanitize(scored.spent_usd, 8),
        "frame": frame_hash(dict(lock)), "rows": rows_rel, "noise_floor": state.noise_floor,
        # run level: the sequential rule's looks, and the secondary numbers' means (docs/run-level.md)
        **({"level": "run", "runs": d["runs"], "secondary": d["secondary"]} if d.get("level") == "run" else {}),
    }


def _close_step(exp: Experiment, frame: Frame, lock: Mapping[str, Any], state: LoopState, out: Output, use_cache: bool,
                lines: list[str], *, budget_cut: bool, n_rows: int) -> LoopState:
    """After an attempt: the sprint's gate if it is due, then a stop if one applies (each its own commit)."""
    it = frame.iterate
    assert it is not None
    if "gate" in state.pending:
        from gitera.domain.gating import run_gate

        state = run_gate(exp, frame, lock, state, out, use_cache)
        lines += _gate_lines(state)
    if state.status != ACTIVE:
        return state
    if budget_cut:
        after: Stop | None = Stop("cost", f"the cost budget of ${it.budget.max_cost_usd:g} ran out during attempt {state.iteration} "
                                          f"(${state.spent_usd:.4f} spent)")
    else:
        after = why_stop(state, it, expected_attempt_cost(exp, state, n_rows, frame.metric.trials))
    if after:
        before = len(state.history)
        state = record_stop(exp, frame, lock, state, after, out, use_cache)
        lines.append(f"  the loop stops: {after.reason}{RESUME_HINT if not after.final else ''}.")
        lines += _gate_lines(state) if len(state.history) > before else []
    return state


def _gate_lines(state: LoopState) -> list[str]:
    gate = state.history[-1] if state.history and state.history[-1].get("gate") else None
    return [f"  gate after sprint {gate['sprint']}: {gate['outcome'].upper()} — {'; '.join(gate['reasons'])}"] if gate else []


def record_stop(exp: Experiment, frame: Frame, lock: Mapping[str, Any], state: LoopState, stop: Stop, out: Output,
                use_cache: bool, **extra: Any) -> LoopState:
    """Commit the loop's stop (Gitera-Stop); then gate the sprint's kept work, so a stop never strands it.

    A budget stop is final; a plateau or crash stop can be resumed (`gitera iterate --resume`)."""
    gate = ("gate",) if ungated_work(state) and "gate" not in state.pending else ()
    stopped = state.with_(status=STOPPED, stop_reason=stop.reason, stop_kind=stop.kind, pending=state.pending + gate)
    new_state = _commit_stop(exp, stopped, resumable=not stop.final, kind=stop.kind, **extra)
    if "gate" in new_state.pending:
        from gitera.domain.gating import run_gate

        out.info(f"the loop stops with {new_state.in_sprint} attempt(s) of sprint {new_state.sprint} ungated: running the gate on the kept work")
        new_state = run_gate(exp, frame, lock, new_state, out, use_cache)
    return new_state


def record_session_stop(exp: Experiment, state: LoopState, reason: str, **extra: Any) -> LoopState:
    """A stop of an autonomous session, not of the experiment (a failing proposer): recorded, the loop stays active."""
    return _commit_stop(exp, state.with_(stop_reason=reason, stop_kind="session"), resumable=True, kind="session", **extra)


def _commit_stop(exp: Experiment, new_state: LoopState, **record: Any) -> LoopState:
    record = {"reason": new_state.stop_reason, "iteration": new_state.iteration, "locked_iteration": locked_iteration(new_state), **record}
    message = build_message(f"gitera stop: {exp.tag} after {new_state.iteration} iterations", [("Tag", exp.tag), ("Stop", record)])
    exp.repo.commit_files(exp.branch, {relpath(exp, STATE_FILE): state_bytes(new_state)}, message)
    return new_state



# --- resuming a stopped loop, and what an attempt's target content was (docs/iterate.md, "Loop control") ---
RESUME_HINT = " — `gitera iterate --resume` goes on from here"


class SameContent(RefusedError):
    """The target files equal the current best: there is nothing to score."""


def content_digest(blobs: Mapping[str, str]) -> str:
    """One id for a state of the target files (their git blob ids): equal contents, equal ids."""
    import hashlib

    return hashlib.sha256(json.dumps(sorted(blobs.items())).encode()).hexdigest()


def candidate_content(repo: Repo, targets: Sequence[str]) -> str:
    """The content id of the target files as they are in the working tree now."""
    blobs = {}
    for path in targets:
        p = repo.root / path
        if p.exists():
            blobs[path] = blob_id(p.read_bytes())
    return content_digest(blobs)


def same_content(state: LoopState, digest: str) -> str | None:
    """Which earlier state of the loop had this content, in words (None: new content).

    The current best, the starting point and every *scored* attempt count; a crashed or timed-out
    attempt does not (its content was never scored, so trying it again is a retry, not a duplicate)."""
    if state.best is not None and content_digest(state.best.blobs) == digest:
        return f"the current best (iteration {state.best.iteration})"
    if state.gate_passed is not None and content_digest(state.gate_passed.blobs) == digest:
        return f"the last gate-passed state (iteration {state.gate_passed.iteration})"
    for h in reversed(state.history):
        if h.get("content") == digest and h.get("status") in ("keep", "discard", "guard_fail"):
            return f"attempt #{h.get('iteration')} ({h.get('status')}: {str(h.get('hypothesis') or '')[:80]})"
    return None


def reopen(exp: Experiment, frame: Frame, lock: Mapping[str, Any], state: LoopState) -> LoopState:
    """`gitera iterate --resume`: reopen a loop stopped by its plateau or by crashes (one commit, Gitera-Resume).

    A stop for the frame's budget (iterations, cost, wall clock) stays final: the budget is checked
    again now, and resuming is refused while any part of it is spent, since the frame is locked.
    A gate's decision (killed, saturated) is final too. An active loop needs no reopening."""
    it = frame.iterate
    assert it is not None
    if state.status == ACTIVE:
        return state
    if state.status in (KILLED, SATURATED):
        raise RefusedError(f"{closed_reason(state)} A gate's decision is final: `--resume` goes on only after a plateau or crash stop.")
    kind = state.stop_kind or kind_of(state.stop_reason)
    rows, trials = (1, 1) if frame.metric.level == "run" else (len(load_split(exp, "dev")), frame.metric.trials)  # run level: one run
    budget = why_stop(state, it, expected_attempt_cost(exp, state, rows, trials), heuristics=False)
    if budget is not None:
        raise RefusedError(
            f"the loop stopped because {state.stop_reason} and cannot resume: {budget.reason}, and the frame's budget is locked, so "
            f"no resume can add to it; run `gitera verdict` (iteration {locked_iteration(state)} is the one it uses) — a larger budget needs a new experiment."
        )
    new_state = state.with_(status=ACTIVE, stop_reason=None, stop_kind=None, plateau_from=state.iteration, consecutive_crashes=0)
    record = {"after": state.stop_reason, "kind": kind, "iteration": state.iteration, "plateau_from": state.iteration}
    message = build_message(f"gitera resume: {exp.tag} after {state.iteration} iterations", [("Tag", exp.tag), ("Resume", record)],
                            body=f"Resumed after: {state.stop_reason}")
    exp.repo.commit_files(exp.branch, {relpath(exp, STATE_FILE): state_bytes(new_state)}, message)
    return new_state


def resume_loop(repo: Repo, exp: Experiment, out: Output, use_cache: bool) -> LoopState:
    """Prepare the loop and reopen it when it stopped for a reason that allows it (see ``reopen``)."""
    frame, lock, state = prepare(repo, exp, out, use_cache)
    if state.status == ACTIVE:
        out.info(f"the loop of {exp.tag} is active (iteration {state.iteration}): nothing to reopen, going on.")
        return state
    new_state = reopen(exp, frame, lock, state)
    out.info(f"resumed the loop of {exp.tag} after: {state.stop_reason} (iteration {state.iteration}; "
             f"the plateau window counts from here, the budget goes on as it was).")
    return new_state
