"""An autonomous iterate session: an agent or script proposes, gitera decides, until a stop.

Before each attempt gitera writes a context file (frame, dashboard, recent attempts, the
last diagnosis, what was tried) and runs the proposer in the repository with
GITERA_CONTEXT=<context.json>, GITERA_CONTEXT_MD=<context.md> and
GITERA_HYPOTHESIS_FILE=<file it writes its one-line hypothesis to>. A failing proposal
is reported and counted, never silently skipped; three in a row stop the session.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import state_dir
from gitera.core.errors import Exit, GiteraError, RefusedError, UsageError
from gitera.core.frame import Frame
from gitera.core.loopstate import ACTIVE, LoopState
from gitera.domain.experiment import Experiment

MAX_PROPOSAL_FAILURES = 3


PROPOSE_TIMEOUT_S = 1800


def write_context(exp: Experiment, frame: Frame, state: LoopState, directory: Path, skipped: Sequence[str] = ()) -> tuple[Path, Path]:
    from gitera.domain.diagnosis import diagnose_data

    assert frame.iterate is not None
    diagnosis: dict[str, Any] | None
    try:
        diagnosis = diagnose_data(exp, frame, "best", "baseline")
    except GiteraError:
        diagnosis = None
    tried = [h for h in state.history if not h.get("gate")]
    context: dict[str, Any] = {
        "tag": exp.tag,
        "question": frame.question,
        "hypothesis": frame.hypothesis,
        "arm": frame.iterate.arm,
        "target_files": list(frame.iterate.target),
        "metric": {"name": frame.metric.primary, "direction": frame.metric.direction},
        "decision": {"mode": frame.iterate.mode, "directions": dict(frame.iterate.directions), "weights": dict(frame.iterate.weights),
                     "min_delta": frame.iterate.min_delta, "confirm": frame.iterate.confirm},
        "dashboard": {
            "iteration": state.iteration,
            "max_iterations": frame.iterate.budget.max_iterations,
            "sprint": state.sprint,
            "attempt_in_sprint": state.in_sprint + 1,
            "sprint_size": frame.iterate.sprint,
            "best": {"iteration": state.best.iteration, "score": state.best.score} if state.best else None,
            "noise_floor": state.noise_floor,
            "kept": sum(1 for h in tried if h["status"] == "keep"),
            "discarded": sum(1 for h in tried if h["status"] == "discard"),
            "crashed": sum(1 for h in tried if h["status"] in ("crash", "timeout")),
            "guard_failures": sum(1 for h in tried if h["status"] == "guard_fail"),
            "spent_usd": state.spent_usd,
        },
        "recent_attempts": list(state.history[-10:]),
        "tried": [h.get("hypothesis") for h in tried],
        "skipped": list(skipped),  # proposals skipped as duplicates of an earlier state (not scored, not counted)
        "diagnosis": diagnosis,
        "rules": [
            "Change only the target files, and only one thing per attempt.",
            "Never copy dev rows (text, ids or row->label pairs) into the target files: the gate kills the arm.",
            "Write a one-line hypothesis to $GITERA_HYPOTHESIS_FILE.",
        ],
    }
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "context.json", directory / "context.md"
    json_path.write_text(json.dumps(context, indent=1, sort_keys=True, default=str))
    d = context["dashboard"]
    md = [
        f"# Experiment {exp.tag}: {frame.question}",
        f"Edit only: {', '.join(frame.iterate.target)} (arm {frame.iterate.arm}). One change per attempt.",
        f"Attempt {d['iteration'] + 1}/{d['max_iterations']}, sprint {d['sprint']} ({d['attempt_in_sprint']}/{d['sprint_size']}); "
        f"best {d['best']}; noise floor {d['noise_floor']:.4g}.",
        "## Recent attempts",
        *[f"- #{h.get('iteration')} {h.get('status')}: {h.get('hypothesis')} (score {h.get('score')})" for h in tried[-10:]],
        *(["## Skipped as duplicates (try something new)", *[f"- {x}" for x in skipped[-10:]]] if skipped else []),
        "## Rules",
        *[f"- {r}" for r in context["rules"]],
    ]
    md_path.write_text("\n".join(md) + "\n")
    return json_path, md_path


def propose_change(repo: Repo, exp: Experiment, frame: Frame, state: LoopState, propose: str, out: Output,
                   timeout_s: float | None = None, skipped: Sequence[str] = ()) -> tuple[bool, str]:
    """Run the proposer once: (True, its one-line hypothesis) or (False, what went wrong).

    ``timeout_s``: at most this long (the wall clock left), else PROPOSE_TIMEOUT_S; ``skipped``: the
    session's duplicate proposals, shown to the proposer so it stops repeating them."""
    timeout = PROPOSE_TIMEOUT_S if timeout_s is None else max(0.001, min(timeout_s, PROPOSE_TIMEOUT_S))
    directory = state_dir(repo.common_dir) / "loop" / exp.tag
    ctx_json, ctx_md = write_context(exp, frame, state, directory, skipped)
    hyp_file = directory / "hypothesis.txt"
    hyp_file.unlink(missing_ok=True)
    # the proposer is the iterating agent: never hand it the test set's key (issue 12)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GITERA_SEAL")}, "GITERA_CONTEXT": str(ctx_json), "GITERA_CONTEXT_MD": str(ctx_md),
           "GITERA_HYPOTHESIS_FILE": str(hyp_file), "GITERA_TAG": exp.tag}
    out.info(f"loop: asking `{propose}` for attempt {state.iteration + 1}")
    from gitera.adapters.evalrun.procs import run_group

    # its own process group: at the timeout or an interrupt the whole group is killed, so no
    # child of an agent goes on editing the target files while gitera scores and commits
    code, stdout, stderr = run_group(["/bin/sh", "-c", propose], cwd=repo.root, env=env, timeout_s=timeout,
                                     output=(directory / "propose.stdout", directory / "propose.stderr"))
    if code is None:
        return False, f"timed out after {timeout:g} s"
    if code != 0:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        return False, f"exit {code}: {' | '.join(tail) or 'no output'}"
    hypothesis = hyp_file.read_text().strip() if hyp_file.exists() else ""
    if not hypothesis:
        last = [ln for ln in stdout.strip().splitlines() if ln.strip()]
        hypothesis = last[-1] if last else f"proposal {state.iteration + 1} from `{propose}`"
    return True, " ".join(hypothesis.split())[:300]


def stop_session(exp: Experiment, state: LoopState, propose: str, failed: list[str], out: Output) -> int:
    """Three failing or unusable proposals in a row end the session: recorded (Gitera-Stop), resumable."""
    from gitera.domain.loop import record_session_stop

    reason = (f"the proposer `{propose}` failed {len(failed)} times in a row; fix it and run `gitera iterate --loop` again "
              "(or iterate by hand): the loop is not over")
    record_session_stop(exp, state, reason, proposals=failed[-MAX_PROPOSAL_FAILURES:], proposer=propose)
    out.error(f"error: {reason}. The branch is at its last complete commit; the stop is recorded (see `gitera log`).")
    return Exit.EVAL


def discard_edits(repo: Repo, frame: Frame) -> None:
    """Put the target files back to the committed best after an unusable proposal."""
    assert frame.iterate is not None
    repo.git("checkout", "HEAD", "--", *[t for t in frame.iterate.target if t in repo.tracked(list(frame.iterate.target))])


# --- a session that survives a kill, its wall clock, never-stop mode, duplicate proposals ---
SESSION_FILE = "session.json"
MAX_PAUSE_S = 300.0  # never-stop mode: the longest pause after a failing proposal


@dataclass
class Session:
    """One `gitera iterate --loop` session, kept in .git/gitera/loop/<tag>/session.json (outside git:
    everything that counts — iterations, money, the frame's wall clock — is in the committed loop state)."""

    propose: str
    started_at: float
    max_hours: float | None = None
    deadline: float | None = None  # the session's own wall-clock limit (absolute time), from --max-hours
    never_stop: bool = False
    status: str = "running"  # "running" until it ends; a killed session stays "running" and `--loop` resumes it
    attempts: int = 0
    skipped: list[str] = field(default_factory=list)  # duplicate proposals, reported, not scored, not counted
    failed: int = 0  # failing or unusable proposals in the session
    ended: str | None = None
    pid: int | None = None  # the gitera process running it (a running session whose process is gone was interrupted)

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def session_path(repo: Repo, exp: Experiment) -> Path:
    return state_dir(repo.common_dir) / "loop" / exp.tag / SESSION_FILE


def load_session(repo: Repo, exp: Experiment) -> Session | None:
    try:
        data = json.loads(session_path(repo, exp).read_text())
        return Session(**data)
    except (OSError, ValueError, TypeError):
        return None


def save_session(repo: Repo, exp: Experiment, session: Session) -> None:
    path = session_path(repo, exp)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(session.summary(), indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def open_session(repo: Repo, exp: Experiment, propose: str | None, max_hours: float | None, never_stop: bool, out: Output) -> Session:
    """`--propose CMD` starts a session; `--loop` alone resumes the last one: a killed session goes on
    to the same deadline, an ended one starts again with the same proposer and settings."""
    now = time.time()
    if max_hours is not None and not max_hours > 0:
        raise UsageError(f"--max-hours must be a positive number of hours; got {max_hours:g}.")
    if propose is not None:
        return Session(propose, now, max_hours, now + max_hours * 3600 if max_hours else None, never_stop)
    last = load_session(repo, exp)
    if last is None:
        raise UsageError(f"there is no session of experiment {exp.tag} to resume; start one with "
                         "`gitera iterate --loop --propose CMD` (the command that makes each change).")
    if last.status == "running" and max_hours is None:
        last.never_stop = last.never_stop or never_stop
        out.info(f"resuming the interrupted session of `{last.propose}` ({last.attempts} attempt(s) so far"
                 + (f", until {_clock(last.deadline)}" if last.deadline else "") + ")")
        return last
    hours = max_hours if max_hours is not None else last.max_hours
    out.info(f"a new session of `{last.propose}`" + (f" (the last one ended: {last.ended})" if last.ended else ""))
    return Session(last.propose, now, hours, now + hours * 3600 if hours else None, never_stop or last.never_stop)


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _time_left(session: Session, frame: Frame, state: LoopState, now: float) -> float | None:
    """Seconds until the first wall-clock limit: the session's deadline or the frame's budget."""
    limits = [session.deadline] if session.deadline is not None else []
    hours = frame.iterate.budget.max_wall_clock_hours if frame.iterate else None
    if hours is not None:
        limits.append((state.started_at or now) + hours * 3600)
    return min(limits) - now if limits else None


def run_session(repo: Repo, exp: Experiment, session: Session, resume: bool, out: Output, use_cache: bool = True) -> int:
    """Propose, decide, commit, until the loop stops, the session's wall clock runs out, or (unless
    never-stop) three proposals in a row fail. Iterations, cost and the frame's wall clock are the
    committed loop state's, so a killed session resumed goes on counting where it was."""
    from gitera.domain.loop import SameContent, candidate_content, prepare, record_session_stop, record_stop, resume_loop, run_attempt, same_content, why_stop

    failed: list[str] = []  # the last lines of the proposals that failed (or were unusable) in a row
    paused = False
    session.pid = os.getpid()
    save_session(repo, exp, session)
    if resume:
        resume_loop(repo, exp, out, use_cache)
    frame, _, state = prepare(repo, exp, out, use_cache)
    assert frame.iterate is not None
    if session.never_stop and frame.iterate.budget.max_wall_clock_hours is None and session.deadline is None:
        raise UsageError("--never-stop needs a wall-clock bound: give --max-hours H (this session's limit), or set "
                         "iterate.budget.max_wall_clock_hours in the frame of a new experiment.")
    while True:
        frame, lock, state = prepare(repo, exp, out, use_cache)
        assert frame.iterate is not None
        if state.status != ACTIVE:
            return _end(repo, exp, session, state, f"the loop is {state.status}: {state.stop_reason or 'see `gitera status`'}", out)
        budget = why_stop(state, frame.iterate, heuristics=False)
        if budget is not None:  # spent while a proposer ran (its wall clock): the same final stop an attempt would record
            out.info(f"the loop stops: {budget.reason}")
            state = record_stop(exp, frame, lock, state, budget, out, use_cache)
            return _end(repo, exp, session, state, f"the loop is {state.status}: {state.stop_reason}", out)
        now = time.time()
        if session.deadline is not None and now >= session.deadline:
            reason = (f"the session's wall-clock limit of {session.max_hours:g} h is reached; the loop is not over: "
                      "`gitera iterate --loop` starts another session of the same proposer")
            state = record_session_stop(exp, state, reason, proposer=session.propose, attempts=session.attempts, skipped=len(session.skipped))
            return _end(repo, exp, session, state, reason, out)
        if len(failed) >= MAX_PROPOSAL_FAILURES and not session.never_stop:
            session.status, session.ended = "ended", f"{len(failed)} proposals in a row failed"
            save_session(repo, exp, session)
            return stop_session(exp, state, session.propose, failed, out)
        left = _time_left(session, frame, state, now)
        if failed and session.never_stop and not paused:
            pause = min(2.0 ** (len(failed) - 1), MAX_PAUSE_S, max(0.0, left if left is not None else MAX_PAUSE_S))
            out.info(f"never-stop: {len(failed)} proposal(s) in a row failed; asking again in {pause:g} s")
            time.sleep(pause)
            paused = True
            continue  # the limits are checked again after the pause
        paused = False
        ok, hypothesis = propose_change(repo, exp, frame, state, session.propose, out, timeout_s=left, skipped=session.skipped)
        if not ok and left is not None and time.time() - now >= left:
            discard_edits(repo, frame)  # cut off by a wall-clock limit, not the proposer's failure: the limits decide next
            out.warn(f"proposal stopped: {hypothesis}, when the wall clock ran out.")
            continue
        if not ok:
            failed.append(hypothesis)
            session.failed += 1
            out.warn(f"proposal failed: {hypothesis} — {len(failed)}{'' if session.never_stop else f'/{MAX_PROPOSAL_FAILURES}'} in a row.")
            continue
        earlier = same_content(state, candidate_content(repo, frame.iterate.target))
        if earlier is not None:
            # reported, not scored, not counted as an attempt; it counts toward the failures in a row,
            # so a proposer stuck on one idea still ends the session
            session.skipped.append(f"{hypothesis} (same target content as {earlier})")
            failed.append(f"duplicate of {earlier}")
            out.warn(f"proposal skipped: its target files equal {earlier}; not scored, not counted as an attempt "
                     f"— {len(failed)}{'' if session.never_stop else f'/{MAX_PROPOSAL_FAILURES}'} unusable in a row.")
            discard_edits(repo, frame)
            save_session(repo, exp, session)
            continue
        try:
            run_attempt(repo, exp, hypothesis, out, use_cache)
        except SameContent as exc:  # the best itself: the same as a duplicate
            failed.append(f"unusable: {exc.message}")
            session.skipped.append(f"{hypothesis} (unchanged from the current best)")
            out.warn(f"proposal not usable: {exc.message} — {len(failed)}/{MAX_PROPOSAL_FAILURES} in a row.")
            discard_edits(repo, frame)
            continue
        except RefusedError as exc:
            if "files other than the target files" in exc.message:
                failed.append(f"unusable: {exc.message}")
                session.failed += 1
                out.warn(f"proposal not usable: {exc.message} — {len(failed)}/{MAX_PROPOSAL_FAILURES} in a row.")
                discard_edits(repo, frame)
                continue
            if "the loop has stopped" in exc.message:
                out.info(exc.message)
                _, _, state = prepare(repo, exp, out, use_cache)
                return _end(repo, exp, session, state, exc.message, out)
            raise
        failed = []
        session.attempts += 1
        save_session(repo, exp, session)


def session_status(repo: Repo, exp: Experiment) -> dict[str, Any] | None:
    """The last `--loop` session, for `gitera status`: running, interrupted (resume with `gitera iterate --loop`) or ended."""
    session = load_session(repo, exp)
    if session is None:
        return None
    state = session.status
    if state == "running" and not (session.pid and _alive(session.pid)):
        state = "interrupted"
    return {"state": state, "propose": session.propose, "attempts": session.attempts, "skipped": len(session.skipped),
            "deadline": _clock(session.deadline) if session.deadline else None, "never_stop": session.never_stop, "ended": session.ended}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _end(repo: Repo, exp: Experiment, session: Session, state: LoopState, why: str, out: Output) -> int:
    session.status, session.ended = "ended", why
    save_session(repo, exp, session)
    skipped = f", {len(session.skipped)} duplicate proposal(s) skipped" if session.skipped else ""
    out.result({"tag": exp.tag, "session": session.summary(), "loop": {"status": state.status, "iteration": state.iteration,
                                                                         "stop_reason": state.stop_reason, "stop_kind": state.stop_kind}},
               f"loop session ended after {session.attempts} attempt(s){skipped}: {why}.")
    return Exit.OK
