"""gitera lock: validate the frame and freeze it with the locked files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.core.errors import EvalError, RefusedError
from gitera.core.frame import Frame
from gitera.core.results import sanitize
from gitera.core.trailers import build_message
from gitera.domain.experiment import Experiment, build_lock, require_on_branch, resolve, sha256

if TYPE_CHECKING:
    from gitera.domain.harnesscheck import HarnessCheck


def lock(tag: str | None, out: Output, check: bool = False, dry_run: bool = False, data: Path | None = None) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "lock"):
        return _lock(repo, exp, out, check or dry_run, dry_run, data)


def _lock(repo: Repo, exp: Experiment, out: Output, check: bool = False, dry_run: bool = False, data: Path | None = None) -> int:
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
    checked = _check(exp, frame, record, data, dry_run, out) if check else None
    if checked is None and dry_run:
        return 0
    lock_bytes = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    trailer: dict[str, Any] = {
        "frame": record["frame"]["sha256"],
        "locked": {f["path"]: f["sha256"] for f in record["files"]},
        "tool_version": record["tool_version"],
        "at": record["locked_at"],
        **({"refs": record["refs"]} if record["refs"] else {}),  # each arm's ref, pinned (issue 12)
    }
    if checked is not None:  # what `--check` ran, and its cost (charged to the experiment's budget)
        trailer["check"] = {"row": checked.row, "split": checked.split, "arms": {a.arm: a.score for a in checked.arms}}
        trailer["spent_usd"] = sanitize(checked.spent_usd, 8)
    message = build_message(
        f"gitera lock: {exp.tag}",
        [("Tag", exp.tag), ("Lock", trailer)],
        body=f"Question: {frame.question}\nLocked: {', '.join([exp.frame_rel, *frame.locked])}",
    )
    commit = repo.commit_files(exp.branch, {exp.frame_rel: exp.frame_bytes(), exp.lock_rel: lock_bytes}, message)
    out.result(
        {"tag": exp.tag, "commit": commit, "frame_sha256": sha256(exp.frame_bytes()), "locked": [exp.frame_rel, *frame.locked],
         **({"check": checked.to_dict()} if checked is not None else {})},
        f"Locked experiment {exp.tag} ({commit[:10]}): the frame and {len(frame.locked)} locked file(s) can no longer change.\n"
        "Next: `gitera split` to split the data and seal the test set.",
    )
    return 0


# --- `gitera lock --check` (gitera.domain.harnesscheck) -------------------------------------
def _check(exp: Experiment, frame: Frame, record: dict[str, Any], data: Path | None, dry_run: bool, out: Output) -> HarnessCheck | None:
    """Run the harness once per arm; refuse to lock when an arm gives no score. None after a dry run that passed."""
    from gitera.domain.harnesscheck import check_harness

    checked = check_harness(exp, frame, record, data, out)
    run_level = frame.metric.level == "run"  # runlevel: one run of the script per arm (docs/run-level.md)
    lines = ["Harness check: one run of the script per arm (seed 0, dev, not cached):" if run_level else
             f"Harness check on {checked.split} row {checked.row} (one call per arm, not cached):"]
    for a in checked.arms:
        lines.append(f"  {a.arm:<16} {'score ' + format(a.score, '.4g') if a.problem is None and a.score is not None else 'NO SCORE'}"
                     + (f" — {a.problem}" if a.problem else ""))
        lines += [f"      note (the pilot will refuse it): {n}" for n in a.notes]
    if not checked.ok:
        out.info("\n".join(lines))
        bad = [a.arm for a in checked.arms if a.problem]
        raise EvalError(
            f"refusing to lock experiment {exp.tag}: the harness produced no score for arm{'s' if len(bad) > 1 else ''} {', '.join(bad)} "
            + ("(above); make the script print its score (the frame's pattern, a `SCORE: <number>` or `<metric>: <number>` line, or a JSON "
               "object in $GITERA_OUT; docs/run-level.md)" if run_level else
               "(above); make eval.command write one JSON line per row with its `id` and a numeric `score` to $GITERA_OUT "
               "(docs/eval-contract.md)")
            + ", commit the fix, and run `gitera lock --check` again — nothing was locked."
        )
    if dry_run:
        out.result({"tag": exp.tag, "locked": False, "check": checked.to_dict()},
                   "\n".join([*lines, "Every arm produced a score; nothing was locked (dry run). Lock with `gitera lock --check`."]))
        return None
    out.info("\n".join(lines))
    return checked

