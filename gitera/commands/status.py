"""gitera status: where each experiment stands, read from the repo alone."""

from __future__ import annotations

import json
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.core.errors import GiteraError
from gitera.domain.experiment import Experiment, changed_locked_files, locked_changes, resolve, restore_commands


def experiment_status(exp: Experiment) -> dict[str, Any]:
    info: dict[str, Any] = {"tag": exp.tag, "branch": exp.branch, "stage": "framed"}
    try:
        frame = exp.peek_frame()
        info["question"] = frame.question
        info["frame_valid"] = True
    except GiteraError as exc:
        info["frame_valid"] = False
        info["frame_error"] = exc.message
    if exp.is_locked:
        try:
            lock = exp.read_lock()
            info["stage"] = "locked"
            info["locked_at"] = lock.get("locked_at")
            info["changed_locked_files"] = changed_locked_files(exp, lock)
            changes = locked_changes(exp, lock)
            if changes:
                info["changed_locked_files"] = info["changed_locked_files"] or [f"{c.path} ({c.where})" for c in changes]
                info["locked_changes"] = [{"path": c.path, "where": c.where, "deleted": c.deleted} for c in changes]
                info["restore"] = restore_commands(exp, changes)
        except GiteraError as exc:
            info["lock_error"] = exc.message
    for stage, name in (("split", "split/manifest.json"), ("piloted", "runs/pilot.json"), ("run", "runs/run-001/summary.json"),
                        ("iterating", "runs/iterate.json")):
        if exp.path(name).exists():
            info["stage"] = stage
    if info["stage"] != "framed" and exp.path("split/manifest.json").exists():
        from gitera.domain.audit import source_copy_warnings

        info["warnings"] = source_copy_warnings(exp)  # the source file back in the work tree holds the test rows
    state_path = exp.path("runs/iterate.json")
    if state_path.exists():
        try:
            st = json.loads(state_path.read_text())
            best, gp = st.get("best") or {}, st.get("gate_passed") or {}
            info["loop"] = {
                "arm": st.get("arm"), "status": st.get("status"), "iteration": st.get("iteration"), "sprint": st.get("sprint"),
                "attempts_in_sprint": st.get("in_sprint"), "best": {"iteration": best.get("iteration"), "score": best.get("score")},
                "locked_iteration": gp.get("iteration"), "noise_floor": st.get("noise_floor"), "spent_usd": st.get("spent_usd"),
                "pending": st.get("pending"), "stop_reason": st.get("stop_reason"),
            }
        except (ValueError, AttributeError):
            info["loop_error"] = "runs/iterate.json is unreadable; restore it with `git checkout`"
    if "loop" in info:  # the last `gitera iterate --loop` session (local state under .git/gitera/loop/)
        from gitera.domain.session import session_status

        session = session_status(exp.repo, exp)
        if session is not None:
            info["session"] = session
    imported = sorted(exp.path("imported").glob("*.tsv")) if exp.path("imported").is_dir() else []
    if imported:  # gitera import — history only, never evidence
        rows = sum(max(0, len([x for x in p.read_text(errors="replace").splitlines() if x.strip()]) - 1) for p in imported)
        info["imported"] = {"files": [exp.rel(f"imported/{p.name}") for p in imported], "rows": rows, "evidence": False}
    if exp.path("abandoned.json").exists():  # gitera abandon
        try:
            info["abandoned"] = json.loads(exp.path("abandoned.json").read_text())
        except ValueError:
            info["abandoned"] = {"reason": "abandoned.json is unreadable"}
        info["stage"] = "abandoned"
    v = exp.verdict_doc()
    if v is not None:
        info["stage"] = "concluded"
        try:
            info["verdict"] = {"decision": v["decision"]["decision"], "arm": v["decision"]["arm"], "conclusion": v.get("conclusion")}
        except (KeyError, TypeError):
            info["verdict"] = {"decision": "unreadable"}
    elif exp.path("verdict.json").exists() or exp.path("opening.json").exists():
        # a verdict.json without its tag: say what the commands will say (a missing tag, or a stray file)
        from gitera.domain.scoring import require_open

        try:
            require_open(exp)
        except GiteraError as exc:
            # an opening with no verdict.json: the verdict opened the test set and never concluded
            info["stage"], info["verdict_error"] = "concluded?" if exp.path("verdict.json").exists() else "opened", exc.message
    info["next"] = _next(info)
    return info


def _next(info: dict[str, Any]) -> str | None:
    """The one next step: never `iterate` once the loop stopped or while the lock is broken."""
    if info.get("abandoned"):
        return None  # abandoned on purpose: nothing follows
    if info.get("changed_locked_files"):
        return "restore the locked files (the commands above); nothing else runs while the lock is broken"
    stage, loop = info["stage"], info.get("loop") or {}
    if stage == "framed":
        return "fill the frame, then `gitera lock`"
    if stage == "iterating" and loop.get("status") not in (None, "active"):
        return f"`gitera verdict` (the loop is {loop['status']}: no further attempt will start)"
    following = {"locked": "`gitera split`", "split": "`gitera pilot`", "piloted": "`gitera run`",
                 "run": "`gitera iterate -m HYPOTHESIS` or `gitera verdict`",
                 "iterating": "`gitera iterate -m HYPOTHESIS`, or `gitera verdict` when the loop is done"}
    return following.get(stage)


def _text(info: dict[str, Any]) -> str:
    lines = [f"experiment {info['tag']}  (branch {info['branch']})  stage: {info['stage']}"]
    if "question" in info:
        lines.append(f"  question: {info['question']}")
    if not info.get("frame_valid", True):
        lines.append(f"  frame: INVALID — {info['frame_error']}")
    if info.get("locked_at"):
        lines.append(f"  locked at {info['locked_at']}")
    changed = info.get("changed_locked_files")
    if changed:
        lines.append(f"  LOCK BROKEN — changed since the lock: {', '.join(changed)}; restore with:")
        lines += [f"    {cmd}" for cmd in info.get("restore") or []]
        if any(c["where"] == "committed" for c in info.get("locked_changes") or []):
            lines.append("  (the commit that changed a locked file stays in history: `gitera verify` names it)")
    elif changed is not None:
        lines.append("  locked files intact")
    loop = info.get("loop")
    if loop:
        lines.append(
            f"  loop: {loop['status']} — iteration {loop['iteration']}, sprint {loop['sprint']} ({loop['attempts_in_sprint']} attempt(s) since the gate), "
            f"best #{loop['best']['iteration']} = {loop['best']['score']}, locked for the verdict: #{loop['locked_iteration']}"
        )
        if loop.get("pending"):
            lines.append(f"  interrupted step pending: {', '.join(loop['pending'])} — the next `gitera iterate` or `gitera gate` finishes it")
        if loop.get("stop_reason") and loop["status"] == "active":
            lines.append(f"  the last autonomous run stopped: {loop['stop_reason']}")
        elif loop.get("stop_reason"):
            lines.append(f"  stopped: {loop['stop_reason']}")
    session = info.get("session")
    if session and session["state"] != "ended":
        lines.append(f"  autonomous session of `{session['propose']}`: {session['state']} after {session['attempts']} attempt(s)"
                     + (f", until {session['deadline']}" if session["deadline"] else "")
                     + (" — `gitera iterate --loop` resumes it" if session["state"] == "interrupted" else ""))
    if info.get("imported"):
        lines.append(f"  imported history: {info['imported']['rows']} rows (unscored, never evidence; `gitera log` shows them)")
    if info.get("abandoned"):
        ab = info["abandoned"]
        lines.append(f"  ABANDONED {ab.get('at', '')}: {ab.get('reason')} — nothing was released; history kept on {ab.get('branch')}; "
                     f"start again with `gitera init {info['tag']}` from your main branch")
    for warning in info.get("warnings") or []:
        lines.append(f"  WARNING: {warning}")
    if info.get("verdict"):
        lines.append(f"  verdict: {info['verdict']['decision']} ({info['verdict'].get('arm') or '—'}); see {info['verdict'].get('conclusion')}")
    if info.get("verdict_error"):
        lines.append(f"  verdict: {info['verdict_error']}")
    if info.get("next"):
        lines.append(f"  next: {info['next']}")
    return "\n".join(lines)


def status(tag: str | None, all_experiments: bool, out: Output) -> int:
    repo = Repo.find()
    if all_experiments:
        # every experiment in the repository, from its branch or verdict tag (issue 14)
        from gitera.domain.overview import overview, table

        rows = overview(repo)
        out.result({"experiments": [r.to_dict() for r in rows]}, table(rows))
        return 0
    info = experiment_status(resolve(repo, tag))
    out.result(info, _text(info))
    return 0
