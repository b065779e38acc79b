"""The scoring checkouts under .git/gitera/worktrees/<slot>: a commit's tree written out by gitera.

Every blob is written with the bytes git stores, by this module, never by `git checkout`: no
.gitattributes filter (a smudge command, `eol`, `ident`), no `core.*` setting and no hook of
the repository runs, so a filter configured by whoever can edit .git/config or
.git/info/attributes cannot change what the harness reads (issue 12). The slot is then exactly
the tree: files the tree does not hold (a harness's leftovers, a planted module) are removed.

A slot is reused across runs: files whose (mode, blob) and stat are unchanged since gitera wrote
them are kept; ``verify=True`` (the gate and the verdict) re-reads every file and compares its
content with its blob instead of trusting the stat.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from gitera.adapters.git import Entry, Repo, blob_id
from gitera.core.errors import RefusedError

SYMLINK, GITLINK, EXECUTABLE = "120000", "160000", "100755"


def slot_path(repo: Repo, slot: str) -> Path:
    return repo.common_dir / "gitera" / "worktrees" / slot


def materialize(repo: Repo, commit: str, slot: str, *, verify: bool = False) -> tuple[Path, dict[str, Entry]]:
    """The tree of ``commit`` written under .git/gitera/worktrees/<slot>, and its entries (path -> (mode, object id))."""
    path = slot_path(repo, slot)
    entries = repo.tree_entries(commit)
    unsafe = next((p for p in entries if any(part in ("", ".", "..") or part.lower() == ".git" for part in p.split("/"))), None)
    if unsafe is not None:  # git refuses such names; a crafted object (hash-object --literally) could hold one
        raise RefusedError(f"commit {commit[:10]} holds the path {unsafe!r}, which would be written outside its checkout; "
                           "it cannot be scored — fix the arm's ref or the history.")
    manifest_path = path.with_name(slot + ".manifest")
    if (path / ".git").exists():  # a slot of gitera < 0.2 was a `git worktree`: start it afresh
        shutil.rmtree(path)
        repo.git("worktree", "prune")
    known = _load(manifest_path)
    path.mkdir(parents=True, exist_ok=True)
    _prune(path, entries)
    stale = [p for p, e in entries.items() if not _fresh(path / p, e, known.get(p), verify)]
    contents = repo.cat_blobs([entries[p][1] for p in stale if entries[p][0] != GITLINK])
    blobs = iter(contents)
    written: dict[str, list[object]] = {p: v for p, v in known.items() if p in entries and p not in stale}
    for rel in stale:
        mode, oid = entries[rel]
        target = path / rel
        _clear_parents(path, rel)
        if mode == GITLINK:  # a submodule: an empty folder, as `git checkout` leaves an uninitialised one
            target.mkdir(exist_ok=True)
            continue
        _write(target, mode, next(blobs) or b"")
        written[rel] = [mode, oid, *_stamp(target)]
    _save(manifest_path, written)
    _links_stay_inside(path, entries)
    return path, entries


def _links_stay_inside(root: Path, entries: Mapping[str, Entry]) -> None:
    """Refuse a tree holding a symbolic link that resolves outside it (an absolute path, or ``../..``
    up into the work tree): through it the harness would read a file git does not hold, which
    anyone can change after the lock or after the gate (issue 12). Resolved on the written tree,
    so a chain of links that each look inside is judged by where it really ends."""
    top = os.path.realpath(root)
    for rel, (mode, _oid) in entries.items():
        if mode != SYMLINK:
            continue
        resolved = os.path.realpath(root / rel)
        if resolved != top and not resolved.startswith(top + os.sep):
            raise RefusedError(
                f"the scored tree holds the symbolic link {rel!r} -> {os.readlink(root / rel)!r}, which points outside it: the harness "
                "would read a file git does not hold, which can change after the lock. Commit the file itself instead of a link; a "
                "path outside the repository reaches the harness through a variable listed in eval.env.")


def _fresh(target: Path, entry: Entry, known: list[object] | None, verify: bool) -> bool:
    """Whether the file on disk is still exactly the entry gitera wrote there."""
    mode, oid = entry
    if mode == GITLINK:
        return target.is_dir() and not target.is_symlink()
    try:
        st = target.lstat()
    except OSError:
        return False
    if mode == SYMLINK:
        return stat.S_ISLNK(st.st_mode) and blob_id(os.readlink(target).encode()) == oid if len(oid) == 40 else False
    if not stat.S_ISREG(st.st_mode) or bool(st.st_mode & stat.S_IXUSR) != (mode == EXECUTABLE):
        return False
    if verify or len(oid) != 40:
        return len(oid) == 40 and blob_id(target.read_bytes()) == oid
    return known is not None and known[:2] == [mode, oid] and known[2:] == list(_stamp(target))


def _stamp(target: Path) -> tuple[int, int, int]:
    st = target.lstat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def _prune(root: Path, entries: Mapping[str, Entry]) -> None:
    """Remove every file, link and folder under ``root`` that the tree does not hold."""
    folders = {p.rsplit("/", i)[0] for p in entries for i in range(1, p.count("/") + 1)}
    folders |= {p for p, e in entries.items() if e[0] == GITLINK}
    for here, dirs, files in os.walk(root):
        rel = os.path.relpath(here, root)
        prefix = "" if rel == "." else rel + "/"
        if prefix and prefix[:-1] in entries and entries[prefix[:-1]][0] == GITLINK:
            dirs[:] = []
            continue
        for name in list(dirs):
            full = Path(here) / name
            if full.is_symlink():  # a link to a folder: never followed, removed unless the tree holds it
                if prefix + name not in entries:
                    full.unlink()
                dirs.remove(name)
            elif prefix + name not in folders:
                shutil.rmtree(full)
                dirs.remove(name)
        for name in files:
            if prefix + name not in entries:
                (Path(here) / name).unlink()


def _clear_parents(root: Path, rel: str) -> None:
    """Make every folder on the way to ``rel`` a real folder (not a file or a link left there)."""
    here = root
    for part in rel.split("/")[:-1]:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            here.unlink()
        here.mkdir(exist_ok=True)


def _write(target: Path, mode: str, content: bytes) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if mode == SYMLINK:
        os.symlink(content.decode("utf-8", "surrogateescape"), target)
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755 if mode == EXECUTABLE else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)


def _load(path: Path) -> dict[str, list[object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path, written: Mapping[str, list[object]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(written, separators=(",", ":")))
    os.replace(tmp, path)
