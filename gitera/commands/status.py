"""gitera status: where each experiment stands, read from the repo alone."""

from __future__ import annotations

from typing import Any

from gitera.errors import GiteraError
from gitera.experiment import Experiment, all_tags, changed_locked_files, resolve
from gitera.git import Repo
from gitera.output import Output


def experiment_status(exp: Experiment) -> dict[str, Any]:
    info: dict[str, Any] = {"tag": exp.tag, "branch": exp.branch, "stage": "framed"}
    try:
        frame = exp.load_frame()
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
        except GiteraError as exc:
            info["lock_error"] = exc.message
    for stage, name in (("split", "split/manifest.json"), ("concluded", "verdict.json")):
        if exp.path(name).exists():
            info["stage"] = stage
    return info


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
        lines.append(f"  LOCK BROKEN — changed since the lock: {', '.join(changed)} (restore them with `git checkout -- <file>`)")
    elif changed is not None:
        lines.append("  locked files intact")
    if info["stage"] == "framed":
        lines.append("  next: fill the frame, then `gitera lock`")
    elif info["stage"] == "locked":
        lines.append("  next: `gitera split`")
    return "\n".join(lines)


def status(tag: str | None, all_experiments: bool, out: Output) -> int:
    repo = Repo.find()
    if all_experiments:
        exps = [Experiment(repo, t) for t in all_tags(repo)]
    else:
        exps = [resolve(repo, tag)]
    infos = [experiment_status(e) for e in exps]
    out.result(
        {"experiments": infos} if all_experiments else infos[0],
        "\n\n".join(_text(i) for i in infos) or "no experiments in this checkout; start one with `gitera init TAG`",
    )
    return 0
