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
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import state_dir
from gitera.core.errors import Exit, GiteraError
from gitera.core.frame import Frame
from gitera.core.loopstate import LoopState
from gitera.domain.experiment import Experiment

MAX_PROPOSAL_FAILURES = 3


PROPOSE_TIMEOUT_S = 1800


def write_context(exp: Experiment, frame: Frame, state: LoopState, directory: Path) -> tuple[Path, Path]:
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
        "## Rules",
        *[f"- {r}" for r in context["rules"]],
    ]
    md_path.write_text("\n".join(md) + "\n")
    return json_path, md_path


def propose_change(repo: Repo, exp: Experiment, frame: Frame, state: LoopState, propose: str, out: Output) -> tuple[bool, str]:
    """Run the proposer once: (True, its one-line hypothesis) or (False, what went wrong)."""
    directory = state_dir(repo.common_dir) / "loop" / exp.tag
    ctx_json, ctx_md = write_context(exp, frame, state, directory)
    hyp_file = directory / "hypothesis.txt"
    hyp_file.unlink(missing_ok=True)
    env = {**os.environ, "GITERA_CONTEXT": str(ctx_json), "GITERA_CONTEXT_MD": str(ctx_md),
           "GITERA_HYPOTHESIS_FILE": str(hyp_file), "GITERA_TAG": exp.tag}
    out.info(f"loop: asking `{propose}` for attempt {state.iteration + 1}")
    from gitera.adapters.evalrun.procs import run_group

    # its own process group: at the timeout or an interrupt the whole group is killed, so no
    # child of an agent goes on editing the target files while gitera scores and commits
    code, stdout, stderr = run_group(["/bin/sh", "-c", propose], cwd=repo.root, env=env, timeout_s=PROPOSE_TIMEOUT_S,
                                     output=(directory / "propose.stdout", directory / "propose.stderr"))
    if code is None:
        return False, f"timed out after {PROPOSE_TIMEOUT_S} s"
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
    record_session_stop(exp, state, reason, proposals=failed[-MAX_PROPOSAL_FAILURES:])
    out.error(f"error: {reason}. The branch is at its last complete commit; the stop is recorded (see `gitera log`).")
    return Exit.EVAL


def discard_edits(repo: Repo, frame: Frame) -> None:
    """Put the target files back to the committed best after an unusable proposal."""
    assert frame.iterate is not None
    repo.git("checkout", "HEAD", "--", *[t for t in frame.iterate.target if t in repo.tracked(list(frame.iterate.target))])
