"""The experiment's records as git holds them: trailers, committed files, and what they say.

Everything here reads git itself (never the history cache, the loop's state file or the
working tree), so the verdict, the conclusion and `gitera verify` agree on one reading.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
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
        if r.kind in ("Verdict", "Opening"):
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


# --- the opening of the test set, and what it scores ---------------------------------------


def before_opening(records: Sequence[Record]) -> list[Record]:
    """The records made before the test set was opened (the first Gitera-Opening or Gitera-Verdict)."""
    end = next((i for i, r in enumerate(records) if r.kind in ("Opening", "Verdict")), len(records))
    return list(records[:end])


def openings(records: Sequence[Record]) -> list[Record]:
    """Every Gitera-Opening that opened the test set (not the records of an aborted verdict)."""
    return [r for r in records if r.kind == "Opening" and r.data.get("status") == "opened"]


@dataclass(frozen=True)
class Gated:
    """The iterated arm's content the verdict scores, read from git alone: the target files of
    its latest gate-passed attempt, or — when no gate passed one — as the dev run measured them."""

    iteration: int
    commit: str  # the commit holding that content: the attempt's, or the run's
    targets: dict[str, str | None]  # target path -> blob id (None: the file does not exist there)


def gated_content(repo: Repo, records: Sequence[Record], arm: str, targets: Sequence[str]) -> Gated | None:
    """What the verdict must score for the iterated ``arm``; None when no dev run measured it."""
    before = before_opening(records)
    locked = gate_locked_iteration(before) or 0
    commit = attempt_commit(before, locked) if locked > 0 else None
    if commit is None:
        first = next((i for i, r in enumerate(before) if r.kind == "Result" and r.data.get("kind") == "attempt"), len(before))
        runs = [r for r in before[:first] if r.kind == "Result" and r.data.get("kind") == "run" and r.data.get("arm") == arm
                and r.data.get("status") != "incomplete"]
        if not runs:
            return None
        locked, commit = 0, runs[-1].commit
    blobs = repo.ls_tree(commit, list(targets))
    return Gated(locked, commit, {t: blobs.get(t) for t in targets})


def kept_attempts(records: Sequence[Record]) -> list[Record]:
    """The iterate attempts that were kept, oldest first (before the opening)."""
    return [r for r in before_opening(records) if r.kind == "Result" and r.data.get("kind") == "attempt" and r.data.get("status") == "keep"]


@dataclass(frozen=True)
class OpeningState:
    """Whether experiment's test set was opened, read from git with one call (no history cache)."""

    opened: str | None = None  # the commit of the (first) Gitera-Opening
    aborted: str | None = None  # why that verdict stopped, when it recorded it
    concluded: str | None = None  # the commit of the (first) Gitera-Verdict


_OPENING_FORMAT = "%H%x00%(trailers:key=Gitera-Tag,valueonly,separator=%x1f)%x00%(trailers:key=Gitera-Opening,valueonly,separator=%x1f)%x00%(trailers:key=Gitera-Verdict,valueonly,separator=%x1f)%x1e"


def opening_state(repo: Repo, exp: Experiment) -> OpeningState:
    """Robust to a deleted tag or file and to an edited history cache: git's own log of the branch."""
    out = repo.git("log", "--reverse", f"--format={_OPENING_FORMAT}", "--grep=^Gitera-Opening: ", "--grep=^Gitera-Verdict: ",
                   f"refs/heads/{exp.branch}", check=False)
    opened = aborted = concluded = None
    for entry in out.split("\x1e"):
        parts = entry.strip("\n").split("\x00")
        if len(parts) != 4 or exp.tag not in parts[1].split("\x1f"):
            continue
        commit, _, opening, verdict = parts
        for value in filter(None, opening.split("\x1f")):
            try:
                data = json.loads(value)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("status") == "opened" and opened is None:
                opened = commit
            elif isinstance(data, dict) and data.get("status") == "aborted" and aborted is None:
                aborted = str(data.get("reason") or "no reason recorded")
        if verdict and concluded is None:
            concluded = commit
    return OpeningState(opened, aborted, concluded)
