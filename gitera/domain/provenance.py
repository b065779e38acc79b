"""Where the records came from: the lock as committed, the history they sit in, the opening of
the test set and what the verdict scored — the checks of `gitera verify` that read git's own
structure rather than the numbers (those are gitera.domain.audit and gitera.domain.rederive).

Each check returns (name, ok, detail), from git alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.history import Record
from gitera.core.errors import SealError
from gitera.core.trailers import parse_trailers
from gitera.domain.experiment import Experiment
from gitera.domain.records import frame_at, gated_content, openings, show

Check = tuple[str, bool, str]

LOCK_MATCHES = "lock.json matches its Gitera-Lock trailer, the lock commit's tree and the split"
MODES = "locked files keep their file modes in every commit since the lock"
REWRITTEN = "no gitera commit of the experiment was rewritten away (the branch's reflog)"
NAMED = "every commit a gate or the verdict names is on the branch"
OPENED = "the test set's opening has its conclusion"
SCORED = "the verdict scored the iterated arm's gated content"
ROW_FILES = "the per-row test files are the ones the verdict recorded"


def _sha256(data: bytes | None) -> str:
    return hashlib.sha256(data or b"").hexdigest()


def lock_matches(repo: Repo, exp: Experiment, records: Sequence[Record], lock_commit: str) -> Check:
    """lock.json as the lock commit holds it, against that commit's trailer, tree and frame, and
    against the frame hash the split, its manifest and the seal's header were bound to: a
    `rebase -i` that rewrites the lock commit (or edits one of the three) leaves them apart."""
    lock_record = next(r for r in records if r.kind == "Lock")
    try:
        lock = json.loads(show(repo, lock_commit, exp.lock_rel) or b"")
        frame, files = lock["frame"], list(lock["files"])
        paths = {str(f["path"]): f for f in files}
    except (ValueError, KeyError, TypeError):
        return (LOCK_MATCHES, False, f"{exp.lock_rel} in {lock_commit[:10]} is not a gitera lock")
    bad: list[str] = []
    trailer = lock_record.data
    tree = repo.ls_tree(lock_commit, [exp.frame_rel, *paths])
    contents = dict(zip([exp.frame_rel, *paths], repo.cat_blobs([f"{lock_commit}:{p}" for p in [exp.frame_rel, *paths]])))
    if frame.get("path") != exp.frame_rel or frame.get("sha256") != _sha256(contents[exp.frame_rel]) or frame.get("blob") != tree.get(exp.frame_rel):
        bad.append(f"its frame record is not {exp.frame_rel} as the lock commit holds it")
    if trailer.get("frame") != frame.get("sha256"):
        bad.append(f"the Gitera-Lock trailer's frame hash {str(trailer.get('frame'))[:12]} is not lock.json's {str(frame.get('sha256'))[:12]}")
    locked: dict[str, Any] = trailer["locked"] if isinstance(trailer.get("locked"), dict) else {}
    if set(locked) != set(paths):
        bad.append(f"the trailer locks {sorted(locked)} but lock.json locks {sorted(paths)}")
    modes = repo.ls_modes(lock_commit, list(paths)) if paths else {}
    for path, rec in paths.items():
        if locked.get(path, rec.get("sha256")) != rec.get("sha256") or rec.get("sha256") != _sha256(contents[path]) or rec.get("blob") != tree.get(path):
            bad.append(f"{path}: lock.json, its trailer and the lock commit's tree disagree")
        elif rec.get("mode") not in (None, modes.get(path)):
            bad.append(f"{path}: lock.json records mode {rec.get('mode')} but the lock commit holds {modes.get(path)}")
    registered = frame_at(repo, exp, lock_commit).get("locked")
    if isinstance(registered, list) and set(map(str, registered)) != set(paths):
        bad.append(f"the frame registers locked files {sorted(map(str, registered))} but lock.json locks {sorted(paths)}")
    bad += _split_binding(repo, exp, records, str(frame.get("sha256")))
    return (LOCK_MATCHES, not bad, "; ".join(bad[:5]))


def _split_binding(repo: Repo, exp: Experiment, records: Sequence[Record], fhash: str) -> list[str]:
    """The frame hash the split recorded, in its trailer, its manifest and the seal's header (read keylessly)."""
    from gitera.adapters import seal

    split = next((r for r in records if r.kind == "Split"), None)
    if split is None:
        return []
    bad = [] if split.data.get("frame") in (None, fhash) else [f"the Gitera-Split trailer names frame {str(split.data.get('frame'))[:12]}"]
    try:
        manifest = json.loads(show(repo, split.commit, exp.rel("split/manifest.json")) or b"{}")
        seal_rel = str(manifest["seal"]["path"])
    except (ValueError, KeyError, TypeError):
        return [*bad, "the split's manifest is unreadable"]
    if manifest.get("frame_hash") != fhash:
        bad.append(f"the split's manifest names frame {str(manifest.get('frame_hash'))[:12]}")
    blob = show(repo, split.commit, seal_rel)
    try:
        header = seal.header_of(blob or b"", seal_rel)
        if header.binding.frame_hash != fhash:
            bad.append(f"the seal is bound to frame {header.binding.frame_hash[:12]}, not the locked {fhash[:12]}")
    except SealError as exc:
        bad.append(f"the split's seal header is unreadable ({exc.message})")
    return bad


def locked_modes(repo: Repo, lock_commit: str, tip: str, paths: Sequence[str]) -> Check:
    """A locked file's mode (executable bit, symlink, submodule) as in the lock commit, in every later
    commit: its blob id, which the lock records, does not change with its mode."""
    want = repo.ls_modes(lock_commit, paths)
    commits = repo.git("rev-list", "--reverse", "--full-history", f"{lock_commit}..{tip}", "--", *paths).split()
    commits += [c for c in repo.git("rev-list", "--reverse", "--merges", f"{lock_commit}..{tip}").split() if c not in commits]
    bad = []
    for commit in commits:
        have = repo.ls_modes(commit, paths)
        bad += [f"{p} is {have[p]} in {commit[:10]} (locked as {m})" for p, m in want.items() if p in have and have[p] != m]
    return (MODES, not bad, "; ".join(bad[:5]))


def _message_records(repo: Repo, commits: Sequence[str], tag: str) -> list[tuple[str, str, str]]:
    """(commit, trailer key, subject) for each Gitera-* record of experiment ``tag`` in ``commits``."""
    if not commits:
        return []
    out = repo.git("log", "--no-walk=unsorted", "--stdin", "--format=%H%x00%s%x00%B%x1e", input="".join(c + "\n" for c in commits).encode())
    found = []
    for entry in out.split("\x1e"):
        parts = entry.strip("\n").split("\x00", 2)
        if len(parts) != 3:
            continue
        keys = parse_trailers(parts[2])
        if ("Tag", tag) in keys:
            found += [(parts[0], key, parts[1]) for key, _ in keys if key != "Tag"]
    return found


def lost_records(repo: Repo, exp: Experiment, tip: str) -> list[tuple[str, str, str]] | None:
    """(commit, trailer key, subject) of the gitera records in commits the branch's reflog reached
    and the branch no longer does; None when the reflog holds no earlier tip (a fresh clone)."""
    tips = [t for t in repo.git("reflog", "show", "--format=%H", f"refs/heads/{exp.branch}", "--", check=False).split() if t != tip]
    if not tips:
        return None
    lost = repo.git("rev-list", "--stdin", input=("".join(t + "\n" for t in dict.fromkeys(tips)) + f"^{tip}\n").encode()).split()
    return _message_records(repo, lost, exp.tag)


def rewritten(repo: Repo, exp: Experiment, tip: str) -> Check:
    """Commits the branch pointed at (its reflog) that are no longer on it and held gitera records:
    an amended verdict, a lock commit rewritten by `rebase -i`, a dropped attempt. A fresh clone
    has no such reflog: there this check cannot see a rewrite, and says so."""
    gone = lost_records(repo, exp, tip)
    if gone is None:
        return (REWRITTEN, True, "the reflog holds no earlier tip in this clone: not checked")
    detail = "; ".join(f"{c[:10]} ({subject[:60]})" for c, _, subject in list({c: (c, k, s) for c, k, s in gone}.values())[:5])
    return (REWRITTEN, not gone, f"no longer on {exp.branch}: {detail}" if gone else "")


def named_commits(repo: Repo, records: Sequence[Record], tip: str) -> Check:
    """Gates name their sprint's commits, the verdict its opening: each must be on the branch (a
    rebase leaves them behind)."""
    named: dict[str, str] = {}
    for r in records:
        fields = ("from_commit", "to_commit") if r.kind == "Gate" else ("opening",) if r.kind in ("Verdict", "Opening") else ()
        for f in fields:
            value = r.data.get(f)
            if isinstance(value, str) and value:
                named.setdefault(value, f"{r.kind} {r.commit[:10]} {f}")
    from gitera.adapters.git import _run

    bad = [f"{what} {c[:10]}" for c, what in named.items()
           if _run(["merge-base", "--is-ancestor", c, tip], repo.root, check=False).returncode != 0]
    return (NAMED, not bad, ("not on the branch: " + "; ".join(bad[:5])) if bad else "")


def opening_checks(repo: Repo, exp: Experiment, records: Sequence[Record], pending_verdict: bool) -> list[Check]:
    """One opening, followed directly by its conclusion: an opening that never concluded (a killed or
    failed verdict) and a verdict that recorded no opening before using the key both fail."""
    opened = openings(records)
    verdicts = [r for r in records if r.kind == "Verdict"]
    if not opened and not verdicts:
        return []
    if opened and not verdicts:
        if pending_verdict:
            return []
        aborted = next((str(r.data.get("reason")) for r in records if r.kind == "Opening" and r.data.get("status") == "aborted"), None)
        why = f"the verdict failed: {aborted}" if aborted else "the verdict was stopped before its conclusion"
        return [(OPENED, False, f"the test set was opened in {opened[0].commit[:10]} and never concluded ({why}): no decision can ship")]
    verdict = verdicts[0]
    if not opened:
        return [(OPENED, False, f"the verdict in {verdict.commit[:10]} recorded no opening before it used the key")]
    parent = repo.git("rev-parse", f"{verdict.commit}^", check=False).strip()
    ok = verdict.data.get("opening") == opened[0].commit == parent
    return [(OPENED, ok, "" if ok else f"the verdict {verdict.commit[:10]} does not directly follow its opening {opened[0].commit[:10]}")]


def scored_content(repo: Repo, exp: Experiment, records: Sequence[Record], locked: Mapping[str, Any], doc: Mapping[str, Any]) -> list[Check]:
    """Re-derive from the trailers and the attempt commits which target content the verdict had to
    score, and compare it with what the opening, the verdict trailer and verdict.json recorded."""
    iterate = locked.get("iterate") if isinstance(locked.get("iterate"), dict) else None
    verdict = next(r for r in records if r.kind == "Verdict")
    checks: list[Check] = []
    if verdict.data.get("level") == "run" and "rows" not in verdict.data:  # a run-level verdict of gitera before it recorded these
        return [(SCORED, True, "not checked: this run-level verdict records no scored content (older gitera)"),
                (ROW_FILES, True, "not checked here: this run-level verdict records no digests of its test runs (older gitera)")]
    if iterate and isinstance(iterate.get("arm"), str) and isinstance(iterate.get("target"), list):
        arm, targets = iterate["arm"], [str(t) for t in iterate["target"]]
        gated = gated_content(repo, records, arm, targets)
        opening = next(iter(openings(records)), None)
        recorded = {
            "verdict.json": (doc.get("arms") or {}).get(arm, {}),
            "the Gitera-Verdict trailer": (verdict.data.get("scored") or {}).get(arm, {}),
            "the Gitera-Opening trailer": ((opening.data.get("arms") or {}).get(arm, {})) if opening else {},
        }
        want = {"iteration": gated.iteration, "targets": gated.targets} if gated else None
        bad = [f"{where} records {dict((k, got.get(k)) for k in ('iteration', 'targets'))}" for where, got in recorded.items()
               if (want is None and got.get("targets")) or (want is not None and
                                                           (got.get("iteration"), got.get("targets")) != (want["iteration"], want["targets"]))]
        detail = "; ".join(bad) + (f" — git gives iteration {want['iteration']} {want['targets']}" if want and bad else "")
        checks.append((SCORED, not bad, detail))
    rows = verdict.data.get("rows")
    if isinstance(rows, dict):
        files = {a: str((doc.get("arms") or {}).get(a, {}).get("rows_file")) for a in rows}
        bad_rows = [a for a, sha in rows.items() if _sha256(show(repo, verdict.commit, files[a])) != sha
                    or (doc.get("arms") or {}).get(a, {}).get("rows_sha256") != sha]
        checks.append((ROW_FILES, not bad_rows, f"arm(s) {', '.join(bad_rows)}: the file differs from its recorded sha256" if bad_rows else ""))
    else:
        checks.append((ROW_FILES, False, f"the Gitera-Verdict trailer of {verdict.commit[:10]} records no per-row file digests"))
    return checks
