"""The experiment's records as git holds them: trailers, committed files, and what they say.

Everything here reads git itself (never the history cache, the loop's state file or the
working tree), so the verdict, the conclusion and `gitera verify` agree on one reading.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.history import Record, read
from gitera.core.results import jsonl_lines
from gitera.domain.experiment import Experiment


def show(repo: Repo, commit: str, path: str) -> bytes | None:
    return repo.show(commit, path)


def records_file(repo: Repo, commit: str, path: str) -> list[dict[str, Any]] | None:
    return parse_records(show(repo, commit, path))


def parse_records(raw: bytes | None) -> list[dict[str, Any]] | None:
    """A committed JSON-lines file (per-row results, a split file) as records; None when absent or not JSON lines."""
    if raw is None:
        return None
    out = []
    for line in jsonl_lines(raw.decode("utf-8", errors="replace")):
        try:
            out.append(json.loads(line))
        except (ValueError, RecursionError):
            return None
    return out


def commit_of(records: Sequence[Record], kind: str) -> str | None:
    for r in records:
        if r.kind == kind:
            return r.commit
    return None


def trailers(repo: Repo, exp: Experiment, rev: str | None = None) -> list[Record]:
    """The experiment's records read from git itself, never from the history cache (up to ``rev``,
    default the experiment branch's tip)."""
    return read(repo, exp.branch, exp.tag, use_cache=False, rev=rev)


def frame_at(repo: Repo, exp: Experiment, commit: str) -> dict[str, Any]:
    """The frame as committed at ``commit``, as plain data; {} where it does not parse."""
    from gitera.adapters.yamlio import load_with_lines
    from gitera.core.errors import ConfigError

    try:
        data, _ = load_with_lines((show(repo, commit, exp.frame_rel) or b"").decode("utf-8", errors="replace"), exp.frame_rel)
    except ConfigError:
        return {}
    return data if isinstance(data, dict) else {}


def gate_locked_iteration(records: Sequence[Record]) -> int | None:
    """The iteration the verdict must score, from the Gitera-Gate trailers alone (before any verdict).

    None when the loop never made an attempt; 0 when it did but no gate passed one.
    """
    locked: int | None = None
    for r in records:
        if r.kind == "Verdict":
            break
        if r.kind == "Result" and r.data.get("kind") == "attempt" and locked is None:
            locked = 0
        elif r.kind == "Gate" and r.data.get("locked_iteration") is not None:
            locked = int(r.data["locked_iteration"])
    return locked


def attempt_commit(records: Sequence[Record], iteration: int) -> str | None:
    """The commit of iterate attempt ``iteration`` (its Gitera-Result trailer), if any."""
    for r in records:
        if r.kind == "Result" and r.data.get("kind") == "attempt" and r.data.get("iteration") == iteration:
            return r.commit
    return None


def verdict_doc(repo: Repo, exp: Experiment, records: Sequence[Record]) -> dict[str, Any] | None:
    """verdict.json as the (first) verdict commit recorded it: git's copy, never the working tree's."""
    verdict = next((r for r in records if r.kind == "Verdict"), None)
    raw = show(repo, verdict.commit, exp.rel("verdict.json")) if verdict else None
    try:
        doc = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
