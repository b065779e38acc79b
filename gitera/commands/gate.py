"""gitera gate: the generalization gate at the end of a sprint (automatic, or on demand).

(a) a hardcode scan of the sprint's net diff against train/dev/gate rows; (b) replication
of the sprint's gain on the reserved gate rows, read only through the reusable holdout;
(c) saturation. pass → a new sprint; saturated → locked for the verdict; fail → the arm
returns to its last gate-passed state and is killed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitera.errors import RefusedError
from gitera.experiment import Experiment, resolve
from gitera.frame import Frame
from gitera.git import Repo
from gitera.loopstate import ACTIVE, KILLED, SATURATED, STOPPED, LoopState, Point
from gitera.output import Output
from gitera.repolock import exclusive
from gitera.scoring import Scorer, load_split, matrix, relpath, sanitize
from gitera.trailers import build_message

MAX_HITS_RECORDED = 20


def gate_command(tag: str | None, out: Output, use_cache: bool = True) -> int:
    from gitera.commands.iterate import load_state, prepare, ungated_work

    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "gate"):
        before = load_state(exp)
        frame, lock, state = prepare(repo, exp, out, use_cache)
        resumed = before is not None and "gate" in before.pending
        if resumed:
            pass  # prepare() just ran the pending gate: report it below
        elif state.status == STOPPED and ungated_work(state):
            state = run_gate(exp, frame, lock, state, out, use_cache)  # a stop in mid-sprint: the kept work may still pass
        elif state.status != ACTIVE:
            from gitera.commands.iterate import _closed_reason

            raise RefusedError(_closed_reason(state))
        elif state.in_sprint == 0:
            raise RefusedError(f"sprint {state.sprint} has no attempt yet, so there is nothing to gate; run `gitera iterate -m HYPOTHESIS` first.")
        else:
            state = run_gate(exp, frame, lock, state, out, use_cache)
    gate = state.history[-1]
    out.result({"tag": exp.tag, "gate": gate, "state": state.to_dict()},
               f"gate after sprint {gate['sprint']}: {gate['outcome'].upper()} — {'; '.join(gate['reasons'])}")
    return 0


def _gate_scores(exp: Experiment, frame: Frame, lock: Mapping[str, Any], out: Output,
                 point: Point, rows: list[dict[str, Any]], slot: str) -> tuple[Any, float]:
    """Per-row scores (trials averaged) of the iterated arm, at this loop state, on the gate rows; and the spend.

    No cost cap: a gate is never left half-done (docs/gate.md, "Cost"); the caller charges it."""
    from gitera.commands.iterate import point_commit

    assert frame.iterate is not None
    commit = point_commit(exp, frame.iterate.target, point, f"gate check of iteration {point.iteration}")
    trials = list(range(frame.metric.trials))
    # never cached: a per-row cache of the gate rows would let anyone read the holdout around the
    # reusable-holdout mechanism
    run = Scorer(exp, frame, lock, out, use_cache=False).score(frame.iterate.arm, commit, rows, "gate", trials, slot=slot)
    if not run.complete:
        raise RefusedError(f"the gate could not score the arm on the gate rows ({run.problems[0] if run.problems else 'incomplete'}); fix the harness and run `gitera gate`.")
    return matrix([r.to_json() for r in run.results], [str(r["id"]) for r in rows], trials).mean(axis=1), run.spent_usd


def paired_gain(best: Any, start: Any) -> tuple[float, float]:
    """Mean and standard error of the per-row gain best − start on the same gate rows (paired)."""
    d = best - start
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(d.mean()), se


def run_gate(exp: Experiment, frame: Frame, lock: Mapping[str, Any], state: LoopState, out: Output, use_cache: bool) -> LoopState:
    from gitera import gate, leak

    assert frame.iterate is not None and state.best is not None and state.gate_passed is not None
    repo = exp.repo
    out.info(f"gate: sprint {state.sprint} — hardcode scan, replication on the gate rows, saturation")
    tip = repo.rev(f"refs/heads/{exp.branch}")
    assert tip is not None
    diff = repo.git("diff", "-U0", state.sprint_start or tip, tip, "--", *frame.iterate.target)
    open_rows = [*load_split(exp, "train"), *load_split(exp, "dev")]
    gate_rows = load_split(exp, "gate")
    exclude = ["id", *(frame.data.slices), *([frame.data.label] if frame.data.label else []), *frame.data.stratify]
    columns = leak.text_columns(open_rows + gate_rows, exclude)
    hits = gate.scan_diff(diff, open_rows + gate_rows, text_columns=columns, id_column="id", label_column=frame.data.label)

    sign = 1.0 if frame.metric.direction == "higher" else -1.0
    # the seed is a secret of the key store, never part of the committed state (see holdout_seed)
    seed = holdout_seed(exp)
    holdout = (gate.Thresholdout.from_dict({**state.holdout, "seed": seed}) if state.holdout
               else gate.Thresholdout.create(seed=seed))
    queries = []
    spent = 0.0
    if gate_rows:
        best_gate, spent_best = _gate_scores(exp, frame, lock, out, state.best, gate_rows, "gate-best")
        start_gate, spent_start = _gate_scores(exp, frame, lock, out, state.gate_passed, gate_rows, "gate-start")
        spent = spent_best + spent_start
        _warn_past_cap(frame, state.spent_usd, spent, out)
        gate_gain, se_gain = paired_gain(best_gate, start_gate)
        dev_gain = float(state.best.score or 0.0) - float(state.gate_passed.score or 0.0)
        # ONE query on the sprint's gain: the climbing rows' gain and the same paired gain on the
        # gate rows. (Asking for the two levels separately could answer one from the climbing rows
        # and the other from the gate rows, and their difference would then mean nothing.)
        answer, holdout = gate.thresholdout_query(holdout, dev_gain, gate_gain)
        queries = [answer.to_dict()]
        if answer.value is None:
            replication = None
        else:
            replication = gate.replication(sign * dev_gain, sign * answer.value, 0.0, state.noise_floor, se_gain)
        exhausted = answer.value is None
    else:
        replication, exhausted = None, False
    scores = [h.get("score") for h in state.history if not h.get("gate")]
    statuses = [str(h.get("status")) for h in state.history if not h.get("gate")]
    saturation = gate.saturation(scores, statuses, state.noise_floor, sprint=frame.iterate.sprint,
                                 higher_is_better=frame.metric.direction == "higher")
    outcome = gate.gate_outcome(hits, replication, saturation, exhausted)

    record: dict[str, Any] = {
        "gate": True,
        "sprint": state.sprint,
        "after_iteration": state.iteration,
        "outcome": outcome.outcome,
        "reasons": list(outcome.reasons),
    }
    trailer = {
        **{k: v for k, v in record.items() if k != "gate"},
        "hardcode": [_hit(h) for h in hits[:MAX_HITS_RECORDED]],
        "hardcode_hits": len(hits),
        "replication": replication.to_dict() if replication is not None else None,
        "holdout_queries": queries,
        "saturation": saturation.to_dict(),
        "from_commit": state.sprint_start,
        "to_commit": tip,
        "spent_usd": sanitize(spent, 8),
    }
    files: dict[str, bytes | None] = {}
    pending = tuple(p for p in state.pending if p != "gate")
    if outcome.outcome == "pass":
        new_state = state.with_(sprint=state.sprint + 1, in_sprint=0, gate_passed=state.best, sprint_start=tip, pending=pending)
    elif outcome.outcome == "saturated":
        new_state = state.with_(status=SATURATED, gate_passed=state.best, pending=pending, in_sprint=0)
    else:
        back = state.gate_passed
        from gitera.commands.iterate import target_files

        files.update(target_files(repo, frame.iterate.target, back))
        new_state = state.with_(status=KILLED, best=back, pending=pending, in_sprint=0)
    trailer["locked_iteration"] = new_state.gate_passed.iteration if new_state.gate_passed else 0
    record["locked_iteration"] = trailer["locked_iteration"]
    new_state = new_state.with_(history=(*new_state.history, record), holdout=public_holdout(holdout),
                                spent_usd=state.spent_usd + spent)
    number = sum(1 for h in state.history if h.get("gate")) + 1
    files[relpath(exp, f"gate-{number:03d}.json")] = (json.dumps(trailer, indent=1, sort_keys=True) + "\n").encode()
    from gitera.commands.iterate import STATE_FILE, state_bytes

    files[relpath(exp, STATE_FILE)] = state_bytes(new_state)
    trailers: list[tuple[str, str | dict[str, Any]]] = [("Tag", exp.tag), ("Gate", trailer)]
    if outcome.outcome == "fail":
        trailers.append(("Restore", {"restored_to": state.gate_passed.iteration, "files": list(frame.iterate.target), "reason": "gate failed: arm killed"}))
    message = build_message(f"gitera gate: {exp.tag} sprint {state.sprint} {outcome.outcome}", trailers, body="\n".join(outcome.reasons))
    repo.commit_files(exp.branch, files, message)
    return new_state


def _warn_past_cap(frame: Frame, before: float, spent: float, out: Output) -> None:
    cap = frame.iterate.budget.max_cost_usd if frame.iterate else None
    if cap is not None and before + spent > cap:
        out.warn(f"the gate's scoring cost ${spent:.4f} and took the experiment to ${before + spent:.4f}, past its ${cap:g} cost budget; "
                 "a gate is never left half-done, so it finished; no further attempt will start.")


def public_holdout(holdout: Any) -> dict[str, Any]:
    """The holdout state as committed and printed: everything but the secret seed."""
    return {k: v for k, v in holdout.to_dict().items() if k != "seed"}


def holdout_seed_path(common_dir: Path, tag: str) -> Path:
    """Where the holdout seed lives: beside the seal key, outside git."""
    from gitera.keys import key_path

    return key_path(common_dir, tag).with_suffix(".holdout")


def holdout_seed(exp: Experiment) -> int:
    """The reusable holdout's noise seed: a secret kept outside git until the verdict records it.

    A public seed would let anyone subtract the noise and read the gate rows' scores.
    """
    import os
    import secrets

    path = holdout_seed_path(exp.repo.common_dir, exp.tag)
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        seed = secrets.randbits(62)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{seed}\n")
        return seed


def _hit(h: Any) -> dict[str, Any]:
    # file:line and row ids only: the matched line may hold a dev row's text, which must not spread further
    return {"file": h.file, "line": h.line_no, "kind": h.kind, "rows": list(h.row_ids)}
