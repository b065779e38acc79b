"""Every experiment in the repository at a glance (`gitera status --all`), read from git refs alone.

An experiment is any `autoexp/<tag>` branch or `gitera/<tag>/verdict` tag — a concluded
experiment whose branch was deleted after its merge still shows, through its tag. Nothing
here reads the working tree, so the table is the same on any branch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.history import Record, read
from gitera.domain.experiment import ABANDONED_PREFIX, BRANCH_PREFIX, GITERA_DIR, concluded

_TAG_PREFIX, _TAG_SUFFIX = "refs/tags/gitera/", "/verdict"


@dataclass(frozen=True)
class Row:
    """One experiment in `gitera status --all`: tag, question, state, best dev score, verdict and branch."""
    tag: str
    question: str | None
    state: str
    best_dev: float | None
    best_of: str | None  # which arm (and attempt) holds the best dev score
    verdict: str | None
    verdict_arm: str | None
    branch: str | None
    commit: str  # the commit the row was read at: the branch's tip, else the verdict's commit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ABANDONED = re.compile(r"^(?P<tag>.+)-\d{4}-\d{2}-\d{2}(?:-\d+)?$")  # autoexp-abandoned/<tag>-<date>[-n] (gitera abandon)


def experiments(repo: Repo) -> list[tuple[str, str | None, str]]:
    """(tag, branch or None, the commit to read it at) for every experiment branch, abandoned
    experiment's branch and verdict tag."""
    out = repo.git("for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)", f"refs/heads/{BRANCH_PREFIX}",
                   f"refs/heads/{ABANDONED_PREFIX}", _TAG_PREFIX)
    found: list[tuple[str, str | None, str]] = []
    tagged: dict[str, str] = {}
    for line in out.splitlines():
        ref, obj, peeled = (line.split("\0") + ["", ""])[:3]
        branch = ref.removeprefix("refs/heads/")
        if branch.startswith(BRANCH_PREFIX):
            found.append((branch[len(BRANCH_PREFIX):], branch, obj))
        elif branch.startswith(ABANDONED_PREFIX) and (m := _ABANDONED.match(branch[len(ABANDONED_PREFIX):])):
            found.append((m.group("tag"), branch, obj))
        elif ref.endswith(_TAG_SUFFIX) and ref.count("/") == 4:
            tagged[ref[len(_TAG_PREFIX):-len(_TAG_SUFFIX)]] = peeled or obj
    live = {tag for tag, branch, _ in found if branch and branch.startswith(BRANCH_PREFIX)}
    found += [(tag, None, commit) for tag, commit in tagged.items() if tag not in live]
    # by tag; a live branch first, then its verdict tag, then abandoned ones
    return sorted(found, key=lambda e: (e[0], 0 if e[1] and e[1].startswith(BRANCH_PREFIX) else 1 if e[1] is None else 2, e[1] or ""))


def _state(records: Sequence[Record], loop: Mapping[str, Any] | None, verdict: str | None) -> str:
    if verdict is not None:
        return "concluded"
    kinds = {r.kind for r in records}
    if "Abandon" in kinds:
        return "abandoned"
    if "Verdict" in kinds:
        return "concluded (tag missing)"
    if loop and loop.get("status") not in (None, "active"):
        return f"iterating: {loop['status']}"
    if any(r.kind == "Result" and r.data.get("kind") == "attempt" for r in records):
        return "iterating"
    for kind, name in (("Result", "run"), ("Pilot", "piloted"), ("Split", "split"), ("Lock", "locked")):
        if kind in kinds:
            return name
    return "framed"


def _best(records: Sequence[Record], higher: bool) -> tuple[float | None, str | None]:
    """The best dev score of any arm's latest run or kept attempt, before the verdict."""
    latest: dict[str, tuple[float, str]] = {}
    for r in records:
        d = r.data
        score = d.get("score")
        if r.kind != "Result" or not isinstance(score, (int, float)) or isinstance(score, bool):
            continue
        if d.get("kind") == "run" and d.get("split", "dev") == "dev":
            latest[str(d.get("arm"))] = (float(score), str(d.get("arm")))
        elif d.get("kind") == "attempt" and d.get("status") == "keep":
            latest[str(d.get("arm"))] = (float(score), f"{d.get('arm')} #{d.get('iteration')}")
    if not latest:
        return None, None
    return (max if higher else min)(latest.values(), key=lambda v: v[0])


def overview(repo: Repo) -> list[Row]:
    from gitera.adapters.yamlio import load_with_lines
    from gitera.core.errors import ConfigError

    found = experiments(repo)
    blobs = repo.cat_blobs([f"{commit}:{GITERA_DIR}/{tag}/{name}" for tag, _, commit in found
                            for name in ("frame.yaml", "runs/iterate.json")])
    closed = concluded(repo, {tag for tag, _, _ in found})
    rows = []
    for i, (tag, branch, commit) in enumerate(found):
        records = read(repo, branch or f"{BRANCH_PREFIX}{tag}", tag, rev=commit)
        try:
            frame, _ = load_with_lines((blobs[2 * i] or b"").decode("utf-8", errors="replace"), "frame.yaml")
        except ConfigError:
            frame = None
        frame = frame if isinstance(frame, dict) else {}
        primary = (frame.get("metric") or {}).get("primary") if isinstance(frame.get("metric"), dict) else None
        higher = not (isinstance(primary, dict) and primary.get("direction") == "lower")
        state_blob = blobs[2 * i + 1]
        try:
            loop = json.loads(state_blob) if state_blob else None
        except ValueError:
            loop = None
        verdict = next((r.data for r in records if r.kind == "Verdict"), None)
        decision = str(verdict.get("decision")) if verdict and closed.get(tag) == verdict_commit(records) else None
        state = _state(records, loop if isinstance(loop, dict) else None, decision)
        score, of = _best([r for r in records if r.kind != "Verdict"], higher)
        question = frame.get("question")
        rows.append(Row(tag, str(question) if question else None, state, score, of, decision,
                        str(verdict.get("arm")) if decision and verdict and verdict.get("arm") else None, branch, commit))
    return rows


def verdict_commit(records: Sequence[Record]) -> str | None:
    return next((r.commit for r in records if r.kind == "Verdict"), None)


def table(rows: Sequence[Row]) -> str:
    """One line per experiment: tag, state, best dev score, verdict, question."""
    if not rows:
        return "no experiments in this repository (no autoexp/ branch, no verdict tag); start one with `gitera init TAG`"
    cells = [("experiment", "state", "best dev", "verdict", "question")]
    for r in rows:
        best = f"{r.best_dev:.4f} ({r.best_of})" if r.best_dev is not None else "—"
        verdict = f"{r.verdict.replace('_', ' ')}{' ' + r.verdict_arm if r.verdict_arm else ''}" if r.verdict else "—"
        tag = f"{r.tag} (tag only)" if not r.branch else f"{r.tag} ({r.branch})" if not r.branch.startswith(BRANCH_PREFIX) else r.tag
        cells.append((tag, r.state, best, verdict, r.question or "—"))
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  " + c[4] for c in cells)
