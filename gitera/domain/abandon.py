"""Abandoning an experiment: why is recorded, nothing is released, and the tag is free again.

One commit on `autoexp/<tag>` writes `.gitera/<tag>/abandoned.json` with a `Gitera-Abandon`
trailer; then the branch is renamed `autoexp-abandoned/<tag>-<date>` (its history, reflog and
the sealed test set kept as they are, for a reviewer to read), and the experiment's seal key and
holdout seed under `.git/gitera/keys/` are renamed aside (kept, never released, never deleted),
so `gitera init <tag>` can start afresh. A kill between the commit and the rename is finished by
running `gitera abandon` again.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from gitera.adapters import keys
from gitera.adapters.git import Repo
from gitera.adapters.repolock import state_dir
from gitera.core.errors import RefusedError, UsageError
from gitera.core.trailers import build_message
from gitera.domain.experiment import ABANDON_FILE, ABANDONED_PREFIX, VERDICT_FILE, Experiment, abandon_record


def _new_branch(repo: Repo, tag: str, day: str) -> str:
    name, n = f"{ABANDONED_PREFIX}{tag}-{day}", 1
    while repo.branch_exists(name):
        n += 1
        name = f"{ABANDONED_PREFIX}{tag}-{day}-{n}"
    return name


def _custody(exp: Experiment) -> str | None:
    """Where the sealed test set's key is, in words (None before the split)."""
    try:
        manifest = json.loads(exp.path("split/manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if (manifest.get("seal") or {}).get("custody") == "recipient":
        return "wrapped to the custodian's public key; never on this machine"
    return "kept outside git under .git/gitera/keys/, renamed aside; never committed"


def abandon(repo: Repo, exp: Experiment, reason: str) -> dict[str, Any]:
    """Record the abandonment and free the tag; returns the record (with ``kept_keys``)."""
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError('say why the experiment is abandoned: gitera abandon -m "REASON".')
    current = repo.current_branch()
    if current != exp.branch:
        raise RefusedError(f"experiment {exp.tag} is abandoned on its branch; run `git switch {exp.branch}` first "
                           f"(you are on {current or 'a detached HEAD'}).")
    if exp.is_concluded or exp.path(VERDICT_FILE).exists():
        raise RefusedError(f"experiment {exp.tag} reached its verdict: the test set was opened and the experiment is concluded, "
                           "not abandoned; a new question needs a new tag (`gitera init NEW_TAG`).")
    record = abandon_record(exp)
    if record is None:
        record = _record(repo, exp, reason)
        message = build_message(f"gitera abandon: {exp.tag}", [("Tag", exp.tag), ("Abandon", record)], body=f"Reason: {reason}")
        repo.commit_files(exp.branch, {exp.rel(ABANDON_FILE): (json.dumps(record, indent=1, sort_keys=True) + "\n").encode()}, message)
    elif exp.abandoned_branch is not None:
        raise RefusedError(f"experiment {exp.tag} is already abandoned: its history is on {exp.branch}.")
    # the commit is made: the key and the branch name follow (a kill here is finished by running abandon again)
    suffix = str(record["branch"])[len(ABANDONED_PREFIX) + len(exp.tag) + 1:]
    kept = [str(p) for p in keys.retire(repo.common_dir, exp.tag, suffix)]
    (state_dir(repo.common_dir) / "loop" / exp.tag / "session.json").unlink(missing_ok=True)  # no session resumes into a new experiment
    repo.rename_branch(exp.branch, str(record["branch"]))
    return {**record, "kept_keys": kept}


def _record(repo: Repo, exp: Experiment, reason: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    branch = _new_branch(repo, exp.tag, now.strftime("%Y-%m-%d"))
    iteration = None
    try:
        iteration = int(json.loads(exp.path("runs/iterate.json").read_text())["iteration"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {
        "tag": exp.tag,
        "reason": reason,
        "at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "from": exp.branch,
        "branch": branch,
        "locked": exp.is_locked,
        "split": exp.path("split/manifest.json").exists(),
        "iteration": iteration,
        "released": False,  # the sealed test set was never opened and its key is not in git
        "key": _custody(exp),
    }
