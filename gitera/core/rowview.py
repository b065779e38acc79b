"""One row as two sides see it: each side's score, output and error, whether it got the row
wrong, and how the second side compares with the first (fixed, broken, better, worse, crash).

Pure: the per-row result records (one per row x trial, as the eval engine writes them) in,
plain values out. Shared by `gitera diagnose`, `gitera diff` and the output browser
(docs/review.md says what each shows to whom).

A row x trial is *wrong* when the harness gave it a ``finding`` (the contract's failure
category: ``null`` means correct), or when every score the harness reported is 0 or 1 and
this one is the bad end (0 when higher is better, 1 when lower is). A row is wrong for a side
when it is wrong in more than half of its scored trials. A row any of whose trials was not
scored (crash, timeout, missing, invalid) is a *crash* for that side: it is never a tie.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

EPS = 1e-12
ERROR_LIMIT = 400  # characters of an error text shown in a terminal line
REDACTED = "[dev row text]"
MIN_REDACT = 12  # shorter strings ("yes", "card lost") are ordinary words, not a row's text (as the leak guard)

Outcome = Literal["win", "loss", "tie", "crash"]
OUTCOMES: tuple[Outcome, ...] = ("win", "loss", "tie", "crash")


@dataclass(frozen=True)
class Side:
    """One row as one arm or attempt scored it, its trials pooled."""

    score: float | None  # mean over the scored trials; None when no trial was scored
    scored: int  # trials with status ok
    failed: int  # trials not scored: crash, timeout, missing, invalid
    wrong: bool | None  # None when the row has no scored trial
    output: str | None  # the first scored trial's output (an excerpt, as committed)
    finding: str | None
    error: str | None  # the first failed trial's error text
    status: str  # "ok", or the first failed trial's status

    @property
    def crashed(self) -> bool:
        return self.failed > 0 or self.scored == 0


def is_binary(records: Iterable[Mapping[str, Any]]) -> bool:
    """Whether every scored value is 0 or 1 (booleans included): then a 0 (or a 1) is a wrong answer."""
    seen = False
    for r in records:
        s = r.get("score")
        if r.get("status") == "ok" and isinstance(s, (int, float)):
            seen = True
            if float(s) not in (0.0, 1.0):
                return False
    return seen


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def sides(records: Iterable[Mapping[str, Any]], binary: bool, direction: str) -> dict[str, Side]:
    """Every row's side, keyed by row id (as a string), from one arm's or attempt's records.

    One pass with a small list per row (a page pools about a million records: no dict per record)."""
    bad = 0.0 if direction == "higher" else 1.0
    # per row: [score sum, scored, wrong, failed, first scored trial, its output, finding, first error, its status]
    acc: dict[str, list[Any]] = {}
    for r in records:
        rid = r.get("id")
        key = rid if isinstance(rid, str) else str(rid)
        a = acc.get(key)
        if a is None:
            a = acc[key] = [0.0, 0, 0, 0, None, None, None, None, "ok"]
        score = r.get("score")
        if r.get("status") == "ok" and isinstance(score, (int, float)):
            a[0] += score
            a[1] += 1
            finding = r.get("finding")
            if finding or (binary and score == bad):
                a[2] += 1
            trial = r.get("trial")
            trial = trial if isinstance(trial, int) else 0
            if a[4] is None or trial < a[4]:
                a[4], a[5] = trial, _text(r.get("output"))
            if finding and a[6] is None:
                a[6] = _text(finding)
        else:
            a[3] += 1
            if a[7] is None:
                a[7] = _text(r.get("error")) or f"status {r.get('status')}"
                a[8] = str(r.get("status") or "crash")
    return {key: Side(score=total / n if n else None, scored=n, failed=failed, wrong=(2 * wrong > n) if n else None, output=output,
                      finding=finding, error=error, status=status)
            for key, (total, n, wrong, failed, _, output, finding, error, status) in acc.items()}


def outcome(a: Side | None, b: Side | None, direction: str) -> Outcome:
    """How side b did on a row against side a: a row either side could not score is a crash, never a tie."""
    if a is None or b is None or a.crashed or b.crashed:
        return "crash"
    assert a.score is not None and b.score is not None
    d = (b.score - a.score) * (1.0 if direction == "higher" else -1.0)
    return "win" if d > EPS else "loss" if d < -EPS else "tie"


def change(a: Side | None, b: Side | None) -> str | None:
    """'fixed' (wrong for a, right for b), 'broken' (right for a, wrong for b), 'wrong_both', or None."""
    if a is None or b is None or a.wrong is None or b.wrong is None:
        return None
    if a.wrong and not b.wrong:
        return "fixed"
    if b.wrong and not a.wrong:
        return "broken"
    return "wrong_both" if a.wrong else None


@dataclass(frozen=True)
class RowPair:
    """One row seen in two runs (a and b): its id, both results, the outcome and the change."""
    id: str
    a: Side | None
    b: Side | None
    outcome: Outcome
    change: str | None


def pair_rows(ids: Sequence[str], a: Mapping[str, Side], b: Mapping[str, Side], direction: str) -> list[RowPair]:
    return [RowPair(i, a.get(i), b.get(i), outcome(a.get(i), b.get(i), direction), change(a.get(i), b.get(i))) for i in ids]


def first_error(records: Iterable[Mapping[str, Any]]) -> tuple[str, int, str] | None:
    """(row id, trial, error text) of the first record that was not scored, in file order."""
    for r in records:
        if r.get("status") != "ok":
            return str(r.get("id")), int(r.get("trial") or 0), _text(r.get("error")) or f"status {r.get('status')}"
    return None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret (a dev row's text, at least MIN_REDACT
    characters) replaced by REDACTED, longest first, ignoring case and runs of whitespace."""
    for secret in sorted({s for s in secrets if len(s.strip()) >= MIN_REDACT}, key=len, reverse=True):
        words = secret.split()
        pattern = r"\s+".join(re.escape(w) for w in words)
        text = re.sub(pattern, REDACTED, text, flags=re.IGNORECASE)
    return text


def excerpt(text: str, limit: int = ERROR_LIMIT) -> str:
    """One line: runs of whitespace folded, cut at ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- naming what to compare -------------------------------------------------------------------

ATTEMPT_RE = re.compile(r"^#?([0-9]{1,9})$")
ARM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")  # as the frame allows (core/frame.py)


@dataclass(frozen=True)
class Subject:
    """What a user names on the command line: ``baseline``, ``best``, an arm name or an
    attempt number (``3`` or ``#3``)."""

    kind: Literal["baseline", "best", "attempt", "arm"]
    value: str

    def __str__(self) -> str:
        return f"#{self.value}" if self.kind == "attempt" else self.value


def parse_subject(spec: str, arms: Iterable[str] = ()) -> Subject | None:
    """The subject ``spec`` names, or None when it names nothing. An arm of the frame wins over
    the words and numbers (an arm may be called ``best`` or ``3``); ``#3`` is always attempt 3."""
    spec = spec.strip()
    if spec in set(arms) and not spec.startswith("#"):
        return Subject("arm", spec)
    m = ATTEMPT_RE.match(spec)
    if m is not None:
        n = int(m.group(1))
        return Subject("attempt", str(n)) if n > 0 else None
    if spec in ("baseline", "best"):
        return Subject("baseline" if spec == "baseline" else "best", spec)
    return Subject("arm", spec) if ARM_RE.match(spec) else None
