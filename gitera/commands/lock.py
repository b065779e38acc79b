"""gitera lock: validate the frame and freeze it with the locked files."""

from __future__ import annotations

import json

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.core.errors import RefusedError
from gitera.core.trailers import build_message
from gitera.domain.experiment import Experiment, build_lock, require_on_branch, resolve, sha256


def lock(tag: str | None, out: Output) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "lock"):
        return _lock(repo, exp, out)


def _lock(repo: Repo, exp: Experiment, out: Output) -> int:
    require_on_branch(exp)
    if exp.is_locked:
        locked_at = exp.read_lock().get("locked_at", "?")
        raise RefusedError(
            f"experiment {exp.tag} is already locked (since {locked_at}); "
            f"a new question needs a new experiment: `gitera init NEW_TAG`."
        )
    frame = exp.load_frame()
    record = build_lock(exp, frame)
    dirty = {path for _, path in repo.status_porcelain()}
    uncommitted = [p for p in frame.locked if p in dirty]
    if uncommitted:
        raise RefusedError(
            f"locked file {uncommitted[0]} has uncommitted changes; commit it first so the lock matches history."
        )
    lock_bytes = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    trailer = {
        "frame": record["frame"]["sha256"],
        "locked": {f["path"]: f["sha256"] for f in record["files"]},
        "tool_version": record["tool_version"],
        "at": record["locked_at"],
        **({"refs": record["refs"]} if record["refs"] else {}),  # each arm's ref, pinned (issue 12)
    }
    message = build_message(
        f"gitera lock: {exp.tag}",
        [("Tag", exp.tag), ("Lock", trailer)],
        body=f"Question: {frame.question}\nLocked: {', '.join([exp.frame_rel, *frame.locked])}",
    )
    commit = repo.commit_files(exp.branch, {exp.frame_rel: exp.frame_bytes(), exp.lock_rel: lock_bytes}, message)
    out.result(
        {"tag": exp.tag, "commit": commit, "frame_sha256": sha256(exp.frame_bytes()), "locked": [exp.frame_rel, *frame.locked]},
        f"Locked experiment {exp.tag} ({commit[:10]}): the frame and {len(frame.locked)} locked file(s) can no longer change.\n"
        "Next: `gitera split` to split the data and seal the test set.",
    )
    return 0
