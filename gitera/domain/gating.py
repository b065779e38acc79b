"""Running the generalization gate on an experiment at the end of a sprint.

(a) a hardcode scan of the sprint's net diff against train/dev/gate rows; (b) replication
of the sprint's gain on the reserved gate rows, read only through the reusable holdout;
(c) saturation (the pure checks: gitera.core.gate). pass → a new sprint; saturated → locked
for the verdict; fail → the arm returns to its last gate-passed state and is killed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gitera.adapters.keys import holdout_seed
from gitera.adapters.output import Output
from gitera.core.errors import RefusedError
from gitera.core.frame import Frame
from gitera.core.loopstate import KILLED, SATURATED, LoopState, Point

if TYPE_CHECKING:
    from gitera.core.gate import Saturation
from gitera.core.results import matrix, sanitize
from gitera.core.trailers import build_message
from gitera.domain import splitfiles
from gitera.domain.experiment import Experiment, frame_hash
from gitera.domain.loopstore import STATE_FILE, point_commit, state_bytes, target_files
from gitera.domain.scoring import Scorer, load_split, relpath

MAX_HITS_RECORDED = 20


def _gate_scores(exp: Experiment, frame: Frame, lock: Mapping[str, Any], out: Output,
                 point: Point, rows: list[dict[str, Any]], slot: str) -> tuple[Any, float]:
    """Per-row scores (trials averaged) of the iterated arm, at this loop state, on the gate rows; and the spend.

    No cost cap: a gate is never left half-done (docs/gate.md, "Cost"); the caller charges it."""
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
    from gitera.core import gate

    assert frame.iterate is not None and state.best is not None and state.gate_passed is not None
    repo = exp.repo
    if frame.metric.level == "run":  # one score per run (docs/run-level.md): its own checks, the same record
        from gitera.domain.runloop import gate_checks

        return record_gate(exp, frame, state, *gate_checks(exp, frame, lock, state, out))
    out.info(f"gate: sprint {state.sprint} — hardcode scan, replication on the gate rows, saturation")
    tip = repo.rev(f"refs/heads/{exp.branch}")
    assert tip is not None
    diff = sprint_diff(repo, frame, state.sprint_start or tip, tip)
    open_rows = [*load_split(exp, "train"), *load_split(exp, "dev")]
    gate_rows = splitfiles.gate_rows(exp, frame_hash(dict(lock)))  # sealed: opened here, for the gate only
    hits = hardcode_hits(frame, diff, [*open_rows, *gate_rows])

    sign = 1.0 if frame.metric.direction == "higher" else -1.0
    # the seed is a secret of the key store, never part of the committed state (see holdout_seed)
    seed = holdout_seed(exp.repo.common_dir, exp.tag)
    holdout = (gate.Thresholdout.from_dict({**state.holdout, "seed": seed}) if state.holdout
               else gate.Thresholdout.create(seed=seed))
    queries = []
    spent = 0.0
    se_gain: float | None = None
    if gate_rows:
        best_gate, spent_best = _gate_scores(exp, frame, lock, out, state.best, gate_rows, "gate-best")
        start_gate, spent_start = _gate_scores(exp, frame, lock, out, state.gate_passed, gate_rows, "gate-start")
        spent = spent_best + spent_start
        _warn_past_cap(frame, state.spent_usd, spent, out)
        gate_gain, se = paired_gain(best_gate, start_gate)
        se_gain = se
        dev_gain = float(state.best.score or 0.0) - float(state.gate_passed.score or 0.0)
        # ONE query on the sprint's gain: the climbing rows' gain and the same paired gain on the
        # gate rows. (Asking for the two levels separately could answer one from the climbing rows
        # and the other from the gate rows, and their difference would then mean nothing.)
        answer, holdout = gate.thresholdout_query(holdout, dev_gain, gate_gain)
        queries = [answer.to_dict()]
        if answer.value is None:
            replication = None
        else:
            replication = gate.replication(sign * dev_gain, sign * answer.value, 0.0, state.noise_floor, se_gain,
                                           holdout_used=answer.used_holdout)
        exhausted = answer.value is None
    else:
        replication, exhausted = None, False
    return record_gate(exp, frame, state, tip, hits, replication, queries, holdout, spent, exhausted, se_gain=se_gain)


def record_gate(exp: Experiment, frame: Frame, state: LoopState, tip: str, hits: Any, replication: Any, queries: list[Any],
                holdout: Any, spent: float, exhausted: bool, se_gain: float | None = None) -> LoopState:
    """Saturation, the outcome, and the gate's one commit (Gitera-Gate trailer, gate-NNN.json, the loop state)."""
    from gitera.core import gate

    assert frame.iterate is not None and state.gate_passed is not None
    repo = exp.repo
    saturation = loop_saturation(frame, state)
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
        # the gate gain's standard error, unrounded: `gitera verify` re-decides the replication with it
        "se_gain": se_gain if se_gain is not None and math.isfinite(se_gain) else None,
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
        files.update(target_files(repo, frame.iterate.target, back))
        new_state = state.with_(status=KILLED, best=back, pending=pending, in_sprint=0)
    trailer["locked_iteration"] = new_state.gate_passed.iteration if new_state.gate_passed else 0
    record["locked_iteration"] = trailer["locked_iteration"]
    files.update(_authenticate(exp, trailer))
    new_state = new_state.with_(history=(*new_state.history, record), holdout=public_holdout(holdout),
                                spent_usd=state.spent_usd + spent)
    number = sum(1 for h in state.history if h.get("gate")) + 1
    files[relpath(exp, f"gate-{number:03d}.json")] = (json.dumps(trailer, indent=1, sort_keys=True) + "\n").encode()
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


def _hit(h: Any) -> dict[str, Any]:
    # file:line and row ids only: the matched line may hold a dev row's text, which must not spread further
    return {"file": h.file, "line": h.line_no, "kind": h.kind, "rows": list(h.row_ids)}


# --- saturation follows the frame's `iterate.plateau` and restarts after a resume (docs/iterate.md) ---
def loop_saturation(frame: Frame, state: LoopState) -> Saturation:
    """The gate's saturation check over the attempts since the last resume, with the frame's plateau window.

    The default plateau (6) keeps the gate's rule as it was (docs/gate.md); `plateau: N` makes N the
    plateau window and max(2 × sprint, N) the stale-best window; `plateau: off` never saturates."""
    from gitera.core import gate
    from gitera.core.frame import PLATEAU_DEFAULT

    it = frame.iterate
    assert it is not None
    recent = [h for h in state.history if not h.get("gate") and int(h.get("iteration") or 0) > state.plateau_from]
    if it.plateau is None:
        return gate.Saturation(False, "not checked: iterate.plateau is off, so the loop runs until its budget", len(recent))
    stale = None if it.plateau == PLATEAU_DEFAULT else max(2 * it.sprint, it.plateau)
    return gate.saturation([h.get("score") for h in recent], [str(h.get("status")) for h in recent], state.noise_floor,
                           window=it.plateau, sprint=it.sprint, higher_is_better=frame.metric.direction == "higher", stale_window=stale)


def sprint_diff(repo: Any, frame: Frame, start: str, end: str) -> str:
    """The sprint's net change of the target files: what the hardcode scan reads (and `gitera verify` re-reads)."""
    assert frame.iterate is not None
    # --text --no-textconv --no-ext-diff: attributes (a `-diff` or a textconv driver in .gitattributes
    # or .git/info/attributes) must not turn the scanned lines into "Binary files differ" or hide them
    return str(repo.git("diff", "--text", "--no-textconv", "--no-ext-diff", "-U0", start, end, "--", *frame.iterate.target))


def hardcode_hits(frame: Frame, diff: str, rows: list[dict[str, Any]]) -> list[Any]:
    """The hardcode scan of a sprint's diff against ``rows`` (train, dev and gate), text columns
    chosen as the gate chooses them; `gitera verify` re-runs it on the recorded diff."""
    from gitera.core import gate, leak

    exclude = ["id", *(frame.data.slices), *([frame.data.label] if frame.data.label else []), *frame.data.stratify]
    columns = leak.text_columns(rows, exclude)
    return gate.scan_diff(diff, rows, text_columns=columns, id_column="id", label_column=frame.data.label)


RECORD_KEY_WRAPPED = "record-key.wrapped"


def _authenticate(exp: Experiment, trailer: dict[str, Any]) -> dict[str, bytes | None]:
    """Add the record's MAC under the experiment's gate-record key (made by the first gate, outside git).

    In recipient mode the first gate also commits the key wrapped to the seal's recipient, so
    the custodian can check the gates where the verdict runs. Returns the files to commit."""
    from gitera.adapters.keys import record_key, wrap_record_key
    from gitera.core.recordmac import MAC_FIELD, record_mac

    key = record_key(exp.repo.common_dir, exp.tag, create=True)
    assert key is not None
    trailer[MAC_FIELD] = record_mac(key, exp.tag, "Gate", trailer)
    wrapped_seal = exp.path("split/key.wrapped")
    if wrapped_seal.exists() and not exp.path(f"runs/{RECORD_KEY_WRAPPED}").exists():
        return {relpath(exp, RECORD_KEY_WRAPPED): wrap_record_key(key, wrapped_seal.read_bytes(), exp.tag)}
    return {}
