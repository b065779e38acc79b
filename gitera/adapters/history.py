"""An experiment's history read from git trailers alone (one `git log` call, cached by commit id).

The cache (.git/gitera/history/<tag>.log) holds the tip it was read up to, then git's output
up to that tip; when the branch has only grown, just the new commits are read.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.repolock import state_dir
from gitera.core.results import depth_over

KEYS = ("Result", "Gate", "Restore", "Stop", "Verdict", "Lock", "Split", "Pilot",
        "Resume", "Abandon", "Import",
        "Opening")


@dataclass(frozen=True)
class Record:
    """One gitera commit read from history: its id, time, subject, kind and the data of its trailers."""
    commit: str
    time: int
    subject: str
    kind: str  # the trailer name: Result, Gate, ...
    data: dict[str, Any] = field(default_factory=dict)
    raw: str = ""  # the trailer's JSON text as committed


_WANTED = frozenset(f"Gitera-{k}" for k in KEYS)


def _parse(out: str, tag: str) -> list[Record]:
    """The records of commits whose `Gitera-Tag` is ``tag``: a branch started from another
    experiment's branch (or from a main that merged one) carries that experiment's commits too."""
    records: list[Record] = []
    loads = json.loads
    for entry in _entries(out):
        commit, stamp, subject, trailers = entry.split("\x00", 3)
        lines = trailers.split("\x1f")
        if not any(line.startswith("Gitera-Tag:") and line[11:].strip() == tag for line in lines):
            continue
        for line in lines:
            key, sep, value = line.partition(":")
            if not sep or key not in _WANTED:
                continue
            value = value.strip()
            try:
                data = loads(value)
            except (ValueError, RecursionError):  # a hand-written trailer: kept as text, never a crash
                data = {"invalid": value}
            if isinstance(data, dict) and (value.count("[") + value.count("{") > MAX_DEPTH and depth_over(data, MAX_DEPTH)):
                data = {"invalid": value[:200]}
            if isinstance(data, dict):
                records.append(Record(commit, int(stamp), subject, key[7:], data, value))
    return records


MAX_DEPTH = 20  # a record nested deeper is hand-written: read as invalid (rendering it could exhaust the stack)
_ENTRY_START = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?\x00[0-9]+\x00")


def _entries(out: str) -> list[str]:
    """git's output cut into one text per commit. A hand-written message may hold the separator
    characters (\x1e, \x1f) itself: a piece that does not start with "<commit>\0<time>\0" belongs
    to the commit before it (no message can hold the NUL byte)."""
    entries: list[str] = []
    for piece in out.split("\x1e"):
        text = piece.lstrip("\n")
        if _ENTRY_START.match(text):
            entries.append(text.rstrip("\n"))
        elif entries and piece:
            entries[-1] += "\x1e" + piece.rstrip("\n")
    return entries


LOG_FORMAT = "%H%x00%ct%x00%s%x00%(trailers:only,unfold,separator=%x1f)%x1e"


def _log_text(repo: Repo, rev_range: list[str]) -> str:
    # one trailer block per commit (cheaper for git than one placeholder per key), in message order
    return repo.git("log", "--reverse", f"--format={LOG_FORMAT}", *rev_range)


def read(repo: Repo, branch: str, tag: str, use_cache: bool = True, rev: str | None = None) -> list[Record]:
    """Every Gitera-* record of experiment ``tag`` on the branch, oldest first.

    The cache keeps git's own output for the branch up to a tip (writing it costs nothing;
    re-serializing parsed records cost as much as the git call), so a grown branch reads
    only its new commits from git. ``rev`` reads up to that commit instead of the branch's tip
    (`gitera verify` on what is checked out, a detached HEAD in CI).
    """
    tip = repo.rev(rev if rev is not None else f"refs/heads/{branch}")
    if tip is None:
        return []
    cache = state_dir(repo.common_dir) / "history" / f"{tag}.log"
    cached_tip, body, text = "", "", None
    if use_cache:
        try:
            cached_tip, _, body = cache.read_text(encoding="utf-8").partition("\n")
        except (OSError, UnicodeDecodeError):
            cached_tip = ""
        if cached_tip == tip:
            text = body
        elif _SHA.fullmatch(cached_tip) and _is_ancestor(repo, cached_tip, tip):
            text = body + _log_text(repo, [f"{cached_tip}..{tip}"])
    if text is None:
        text = _log_text(repo, [tip])
    if use_cache and cached_tip != tip:
        _store(cache, tip, text)
    return _parse(text, tag)


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _store(cache: Path, tip: str, text: str) -> None:
    """The tip and git's output up to it, in one file replaced at once: several gitera processes
    (a `gitera log` while `gitera iterate` commits) each write their own temporary file, and a
    reader sees one whole (tip, text) pair, never one process's tip with another's text."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(f"{tip}\n{text}", encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass  # a cache that cannot be written is read from git next time


def _is_ancestor(repo: Repo, base: str, tip: str) -> bool:
    from gitera.adapters.git import _run

    return _run(["merge-base", "--is-ancestor", base, tip], repo.root, check=False).returncode == 0


def attempts(records: list[Record]) -> list[Record]:
    return [r for r in records if r.kind == "Result" and r.data.get("kind") == "attempt"]
