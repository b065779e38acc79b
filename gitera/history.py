"""An experiment's history read from git trailers alone (one `git log` call, cached by commit id).

The cache (.git/gitera/history/<tag>.json) maps the tip it was built from to the parsed
records; when the branch has only grown, just the new commits are read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from gitera.git import Repo
from gitera.repolock import state_dir

KEYS = ("Result", "Gate", "Restore", "Stop", "Verdict", "Lock", "Split", "Pilot")
CACHE_VERSION = 3


@dataclass(frozen=True)
class Record:
    commit: str
    time: int
    subject: str
    kind: str  # the trailer name: Result, Gate, ...
    data: dict[str, Any] = field(default_factory=dict)
    raw: str = ""  # the trailer's JSON text as committed


_WANTED = frozenset(f"Gitera-{k}" for k in KEYS)


def _parse(out: str) -> list[Record]:
    records: list[Record] = []
    loads = json.loads
    for entry in out.split("\x1e"):
        entry = entry.strip("\n")
        if not entry:
            continue
        commit, stamp, subject, trailers = entry.split("\x00", 3)
        for line in trailers.split("\x1f"):
            key, sep, value = line.partition(":")
            if not sep or key not in _WANTED:
                continue
            value = value.strip()
            try:
                data = loads(value)
            except ValueError:
                data = {"invalid": value}
            if isinstance(data, dict):
                records.append(Record(commit, int(stamp), subject, key[7:], data, value))
    return records


def _log(repo: Repo, rev_range: list[str]) -> list[Record]:
    # one trailer block per commit (cheaper for git than one placeholder per key), in message order
    fmt = "%H%x00%ct%x00%s%x00%(trailers:only,unfold,separator=%x1f)%x1e"
    out = repo.git("log", "--reverse", f"--format={fmt}", *rev_range)
    return _parse(out)


def read(repo: Repo, branch: str, tag: str, use_cache: bool = True) -> list[Record]:
    """Every Gitera-* record on the branch, oldest first."""
    tip = repo.rev(f"refs/heads/{branch}")
    if tip is None:
        return []
    path = state_dir(repo.common_dir) / "history" / f"{tag}.json"
    cached: dict[str, Any] | None = None
    if use_cache:
        try:
            cached = json.loads(path.read_text())
            if cached.get("version") != CACHE_VERSION:
                cached = None
        except (OSError, ValueError):
            cached = None
    if cached and cached.get("tip") == tip:
        return [Record(**r) for r in cached["records"]]
    base = cached.get("tip") if cached else None
    if cached and base and _is_ancestor(repo, base, tip):
        records = [Record(**r) for r in cached["records"]] + _log(repo, [f"{base}..{tip}"])
    else:
        records = _log(repo, [tip])
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "tip": tip, "records": [r.__dict__ for r in records]}))
        os.replace(tmp, path)
    return records


def _is_ancestor(repo: Repo, base: str, tip: str) -> bool:
    from gitera.git import _run

    return _run(["merge-base", "--is-ancestor", base, tip], repo.root, check=False).returncode == 0


def attempts(records: list[Record]) -> list[Record]:
    return [r for r in records if r.kind == "Result" and r.data.get("kind") == "attempt"]
