"""gitera hook …: the checks behind the pre-commit / commit-msg / pre-push hooks.

They run on every commit, so they stay cheap: a few git plumbing calls, no yaml,
no numpy. Locks are read from the committed tree (HEAD for a commit, HEAD and the
merged commits for a merge, the pushed commit for a push), so deleting lock.json in
the same commit does not unlock.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gitera.adapters.git import ZERO, Repo
from gitera.adapters.output import Output
from gitera.core.errors import Exit, UsageError
from gitera.core.trailers import check_message
from gitera.domain.experiment import GITERA_DIR, concluded, missing_tag_advice, verdict_ran_untagged

_LOCK_RE = re.compile(rf"^{re.escape(GITERA_DIR)}/([^/]+)/lock\.json$")


@dataclass(frozen=True)
class Protected:
    """A file the hook protects: its path, the blob the lock recorded, the experiment that locked it and its mode."""
    path: str
    blob: str
    tag: str
    untagged_verdict: bool = False  # the tree holds the experiment's verdict.json, but its tag is not here
    mode: str = ""  # the git mode lock.json records ("" in locks written before modes were recorded)


def protected_at(repo: Repo, rev: str) -> dict[str, Protected]:
    """Every path protected by an unconcluded lock in the tree of ``rev``."""
    tree = repo.ls_tree(rev, [GITERA_DIR])
    locks = {m.group(1): path for path in tree if (m := _LOCK_RE.match(path))}
    closed = concluded(repo, locks)
    open_locks = {tag: p for tag, p in locks.items() if tag not in closed}
    protected: dict[str, Protected] = {}
    contents = repo.cat_blobs([tree[p] for p in open_locks.values()])
    for (tag, lock_path), raw in zip(open_locks.items(), contents):
        untagged = f"{GITERA_DIR}/{tag}/verdict.json" in tree
        protected[lock_path] = Protected(lock_path, tree[lock_path], tag, untagged)
        try:
            lock = json.loads(raw or b"")
            records = [lock["frame"], *lock["files"]]
        except (ValueError, KeyError, TypeError):
            continue  # a corrupt lock is reported by `gitera verify`; the lock file itself stays protected
        for rec in records:
            if isinstance(rec, dict) and "path" in rec and "blob" in rec:
                protected[rec["path"]] = Protected(rec["path"], rec["blob"], tag, untagged, str(rec.get("mode") or ""))
    return protected


def _untagged(repo: Repo, p: Protected, rev: str, seen: dict[str, str | None]) -> str | None:
    """The advice for a lock held only because the experiment's verdict tag is missing here, if it is."""
    if not p.untagged_verdict:
        return None
    if p.tag not in seen:
        ran = verdict_ran_untagged(repo, p.tag, rev)
        seen[p.tag] = missing_tag_advice(p.tag, ran) if ran else None
    return seen[p.tag]


def _advice(path: str) -> str:
    return (
        f"restore it with `git restore --staged --worktree -- {path}`; "
        "a new question needs a new experiment (`gitera init NEW_TAG`)"
    )


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def merge_heads(repo: Repo) -> list[str]:
    """The commits a merge brings in: MERGE_HEAD once git waits for the merge's commit (after a
    conflict, or `git merge --no-commit`), else the GITHEAD_<id> variables `git merge` sets
    while its pre-merge-commit hook runs (MERGE_HEAD is not written yet then)."""
    try:
        heads = (repo.git_dir / "MERGE_HEAD").read_text().split()
    except OSError:
        heads = [name[len("GITHEAD_"):] for name in os.environ if name.startswith("GITHEAD_")]
    return [h for h in heads if _SHA.fullmatch(h) and repo.rev(h) is not None]


def check_staged(repo: Repo) -> list[str]:
    """Locked-file changes in the index: against the locks of HEAD and of any commit being merged
    in (a merge may bring a lock from the other side while this side changed the file)."""
    if repo.head_commit() is None:
        return []
    protected = protected_at(repo, "HEAD")
    for head in merge_heads(repo):
        for path, p in protected_at(repo, head).items():
            protected.setdefault(path, p)
    if not protected:
        return []
    staged = repo.ls_index_entries(list(protected))
    problems = []
    renamed: dict[str, str] | None = None
    untagged: dict[str, str | None] = {}
    for path, p in sorted(protected.items()):
        mode, blob = staged.get(path, ("", ""))
        if blob == p.blob and (not p.mode or mode == p.mode):
            continue
        if blob == p.blob:  # the blob id does not change with the mode: an executable bit, a symlink
            what = f"changed to mode {mode} (locked as {p.mode})"
        elif path in staged:
            what = "modified"
        else:
            if renamed is None:
                renamed = {old: new for s, old, new in repo.staged_changes() if s == "R" and new}
            what = f"renamed to {renamed[path]}" if path in renamed else "deleted"
        problems.append(f"{path} is locked by experiment {p.tag} and this commit has it {what}; "
                        f"{_untagged(repo, p, 'HEAD', untagged) or _advice(path)}.")
    return problems


def check_range(repo: Repo, old: str, new: str) -> list[str]:
    """Locked-file changes in the commits a push would send (old..new)."""
    if new == ZERO:
        return []  # deleting a branch sends no commit
    protected = protected_at(repo, new)
    if not protected:
        return []
    rev_range = [new, "--not", "--remotes"] if old == ZERO else [f"{old}..{new}"]
    # --full-history: by default git follows one parent of a merge that leaves a path as it was,
    # so a change made and reverted on a merged side branch would be pushed unseen
    commits = repo.git("rev-list", "--full-history", *rev_range, "--", *protected).split()
    problems = []
    untagged: dict[str, str | None] = {}
    moded = [p.path for p in protected.values() if p.mode]
    for commit in commits:
        here = repo.ls_tree(commit, list(protected))
        modes = repo.ls_modes(commit, moded) if moded else {}
        locks_here = {p.tag for p in protected.values() if p.path in here and p.path.endswith("lock.json")}
        for path, p in sorted(protected.items()):
            if p.tag not in locks_here:
                continue  # the commit predates this lock
            if path not in here:
                what = "deleted or renamed"
            elif here[path] != p.blob:
                what = "modified"
            elif p.mode and modes.get(path, p.mode) != p.mode:
                what = f"changed to mode {modes[path]} (locked as {p.mode})"
            else:
                continue
            problems.append(
                f"commit {commit[:10]} has {path} {what}, but it is locked by experiment {p.tag}; "
                + f"{_untagged(repo, p, new, untagged) or 'rewrite that commit before pushing — a new question needs a new experiment'}."
            )
    return problems


def locked(stage: str, out: Output, stdin: TextIO | None = None, from_ref: str | None = None, to_ref: str | None = None) -> int:
    repo = Repo.find()
    if stage in ("pre-commit", "pre-merge-commit"):
        problems = check_staged(repo)
    elif stage == "pre-push":
        ranges: list[tuple[str, str]] = []
        if from_ref or to_ref:
            ranges.append((repo.rev(from_ref) or ZERO if from_ref else ZERO, repo.rev(to_ref or "HEAD") or ZERO))
        elif stdin is not None:
            for line in stdin:
                parts = line.split()
                if len(parts) == 4:
                    ranges.append((parts[3], parts[1]))
        else:
            ranges.append((ZERO, repo.head_commit() or ZERO))
        problems = [p for old, new in ranges for p in check_range(repo, old, new)]
    else:
        raise UsageError(f"unknown hook stage {stage!r}; use pre-commit, pre-merge-commit or pre-push.")
    for problem in problems:
        out.error(problem)
    return Exit.REFUSED if problems else Exit.OK


def trailers(message_file: Path, out: Output) -> int:
    try:
        message = message_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"commit message file {message_file} does not exist.") from None
    except IsADirectoryError:
        raise UsageError(f"{message_file} is a directory; give the commit message file (git passes it to the commit-msg hook).") from None
    except UnicodeDecodeError:
        out.error(f"{message_file}: the commit message is not UTF-8; gitera trailers must be UTF-8.")
        return Exit.USAGE
    problems = check_message(message)
    for p in problems:
        out.error(f"commit message line {p.line}: {p.message}; fix the trailer (see docs/trailers.md).")
    return Exit.USAGE if problems else Exit.OK


def staged_files(repo: Repo, files: Sequence[str]) -> Iterable[str]:
    if files:
        return files
    out = repo.git("diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z")
    return [f for f in out.split("\0") if f]


def test_leak(files: Sequence[str], out: Output) -> int:
    from gitera.domain.leakcheck import scan_staged

    repo = Repo.find()
    warnings: list[str] = []
    problems = scan_staged(repo, list(staged_files(repo, files)), warnings)
    for warning in warnings:
        out.warn(warning)
    for problem in problems:
        out.error(problem)
    return Exit.REFUSED if problems else Exit.OK
