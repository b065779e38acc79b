"""The gates re-derived from git: what `gitera verify` and the verdict check of every Gitera-Gate.

A gate record is ordinary text in a commit message, so three things are checked, each from
what git holds and none from the loop's state file:

* **authentic** — the record carries the MAC of the experiment's gate-record key (gitera.core.recordmac),
  sits on the commit it names as ``to_commit`` (a gate replayed elsewhere, or a history rewritten
  under it, moves it), and its ``gate-NNN.json`` says the same;
* **the hardcode scan** — re-run on the recorded diff (``from_commit``..``to_commit``, the
  locked target files) against the split's rows as the split commit holds them;
* **the decision** — re-made from the recorded numbers and the attempts' trailers: the sprint's
  dev gain, the reusable holdout's query and budget chain, the replication rule, saturation, the
  outcome, and the iteration it locks for the verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.history import Record
from gitera.core.frame import Frame
from gitera.domain.experiment import Experiment
from gitera.domain.records import before_opening, commit_of, show

TOL = 1e-9
SPLIT_FILES = ("train", "dev", "gate")


@dataclass(frozen=True)
class GateReview:
    """verify's re-derivation of the gates: the gates, forged passes, the hardcode scans and the re-made decisions."""
    gates: int
    forged: list[str]  # authenticity: MAC, position, gate file
    scans: list[str]  # the hardcode scan re-run disagrees
    decisions: list[str]  # the re-made decision disagrees
    authenticated: bool  # the MACs were checked (a gate-record key was at hand)


def review_gates(repo: Repo, exp: Experiment, frame: Frame, records: Sequence[Record], key: bytes | None) -> GateReview:
    before = before_opening(records)
    gates = [r for r in before if r.kind == "Gate"]
    if not gates or frame.iterate is None:
        return GateReview(len(gates), [], [], [], key is not None)
    return GateReview(len(gates), _authentic(repo, exp, gates, key), _rescan(repo, exp, frame, before, gates),
                      _redecide(frame, before), key is not None)


def _name(g: Record) -> str:
    return f"{g.commit[:10]} (gate after sprint {g.data.get('sprint')})"


def _authentic(repo: Repo, exp: Experiment, gates: Sequence[Record], key: bytes | None) -> list[str]:
    from gitera.core.recordmac import mac_holds

    parents = {line.split()[0]: (line.split()[1:] or [""])[0]
               for line in repo.git("rev-list", "--no-walk", "--parents", *[g.commit for g in gates]).splitlines() if line}
    bad = []
    for number, g in enumerate(gates, 1):
        if key is not None and not mac_holds(key, exp.tag, "Gate", g.data):
            bad.append(f"{_name(g)}: its MAC does not match the gate-record key — the record was edited or written by hand")
        if g.data.get("to_commit") != parents.get(g.commit):
            bad.append(f"{_name(g)}: it records to_commit {str(g.data.get('to_commit'))[:10]} but sits on {parents.get(g.commit, '')[:10]} "
                       "— moved or replayed, or the history under it was rewritten")
        raw = show(repo, g.commit, exp.rel(f"runs/gate-{number:03d}.json"))
        try:
            same = raw is not None and json.loads(raw) == g.data
        except ValueError:
            same = False
        if not same:
            bad.append(f"{_name(g)}: its trailer and {exp.rel(f'runs/gate-{number:03d}.json')} differ")
    return bad


def split_rows(repo: Repo, exp: Experiment, records: Sequence[Record]) -> tuple[list[dict[str, Any]], bool]:
    """The train, dev and gate rows as the split commit holds them, and whether all three were there
    (gate rows sealed away cannot be scanned before they are released)."""
    split = commit_of(records, "Split")
    rows: list[dict[str, Any]] = []
    found = 0
    for name in SPLIT_FILES:
        raw = show(repo, split, exp.rel(f"split/{name}.jsonl")) if split else None
        if raw is None:
            continue
        found += 1
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                row = None
            if isinstance(row, dict):
                rows.append(row)
    return rows, found == len(SPLIT_FILES)


def _rescan(repo: Repo, exp: Experiment, frame: Frame, before: Sequence[Record], gates: Sequence[Record]) -> list[str]:
    from gitera.domain.gating import hardcode_hits, sprint_diff

    rows, complete = split_rows(repo, exp, before)
    present = set(repo.git("cat-file", "--batch-check=%(objectname)", input="".join(
        f"{g.data.get(k)}\n" for g in gates for k in ("from_commit", "to_commit")).encode()).split())
    bad = []
    for g in gates:
        start, end = str(g.data.get("from_commit") or ""), str(g.data.get("to_commit") or "")
        if start not in present or end not in present:
            bad.append(f"{_name(g)}: its diff cannot be re-read (from_commit {start[:10]} or to_commit {end[:10]} is not in this repository)")
            continue
        hits = hardcode_hits(frame, sprint_diff(repo, frame, start, end), rows)
        recorded = g.data.get("hardcode_hits")
        recorded = recorded if isinstance(recorded, int) and not isinstance(recorded, bool) else -1
        if len(hits) > recorded or (complete and len(hits) != recorded):
            where = ", ".join(f"{h.file}:{h.line_no} ({h.kind})" for h in hits[:3])
            bad.append(f"{_name(g)}: it records {recorded} hardcode hit(s) but the scan of its diff finds {len(hits)}" + (f" ({where})" if where else ""))
    return bad


def _number(value: Any) -> float | None:
    """A finite number from a record, else None (a hand-written trailer may hold 10**400: no crash)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def _int(value: Any) -> int:
    """An integer field of a record (an iteration, a count), 0 when it is not one."""
    x = _number(value)
    return int(x) if x is not None else 0


def _close(a: Any, b: Any) -> bool:
    x, y = _number(a), _number(b)
    return x is not None and y is not None and abs(x - y) <= TOL


def _start_score(frame: Frame, before: Sequence[Record]) -> float | None:
    assert frame.iterate is not None
    first = next((i for i, r in enumerate(before) if r.kind == "Result" and r.data.get("kind") == "attempt"), len(before))
    runs = [r.data for r in before[:first] if r.kind == "Result" and r.data.get("kind") == "run"
            and r.data.get("arm") == frame.iterate.arm and r.data.get("status") != "incomplete"]
    return _number(runs[-1].get("score")) if runs else None


def _redecide(frame: Frame, before: Sequence[Record]) -> list[str]:
    """Walk the attempts and gates as the loop did, re-making each gate's decision from the record."""
    from gitera.core import gate
    from gitera.core.loopstate import LoopState
    from gitera.domain.gating import loop_saturation

    assert frame.iterate is not None
    sign = 1.0 if frame.metric.direction == "higher" else -1.0
    start = _start_score(frame, before)
    best_it, best_score, gp_it, gp_score = 0, start, 0, start
    history: list[dict[str, Any]] = []
    plateau_from = 0
    noise = 0.0
    chain = {"query": 0, "budget_left": gate.DEFAULT_BUDGET, "gamma_from": 0}
    bad: list[str] = []
    for r in before:
        d = r.data
        if r.kind == "Resume":  # a resumed loop's plateau window counts the attempts after it (gitera.domain.gating.loop_saturation)
            plateau_from = _int(d.get("plateau_from"))
            continue
        if r.kind == "Result" and d.get("kind") == "attempt":
            history.append({"iteration": _int(d.get("iteration")), "score": _number(d.get("score")), "status": str(d.get("status"))})
            noise = _number(d.get("noise_floor")) or 0.0
            if d.get("status") == "keep":
                best_it, best_score = _int(d.get("iteration")), _number(d.get("score"))
            continue
        if r.kind != "Gate":
            continue
        dev_gain = (best_score or 0.0) - (gp_score or 0.0)
        problems, passed, exhausted = _replication(d, dev_gain, sign, noise, chain)
        sat = loop_saturation(frame, LoopState(arm=frame.iterate.arm, noise_floor=noise, plateau_from=plateau_from, history=tuple(history)))
        raw_sat = d.get("saturation")
        recorded_sat: Mapping[str, Any] = raw_sat if isinstance(raw_sat, dict) else {}
        if bool(recorded_sat.get("saturated")) != sat.saturated:
            problems.append(f"it records saturated={bool(recorded_sat.get('saturated'))} but the attempts give {sat.saturated}")
        outcome = gate.outcome_of(_int(d.get("hardcode_hits")), passed, sat.saturated, exhausted)
        if d.get("outcome") != outcome:
            problems.append(f"it records outcome {d.get('outcome')!r} but its checks give {outcome!r}")
        if outcome in ("pass", "saturated"):
            gp_it, gp_score = best_it, best_score
        else:
            best_it, best_score = gp_it, gp_score
        if d.get("locked_iteration") != gp_it:
            problems.append(f"it locks iteration {d.get('locked_iteration')} but its outcome locks {gp_it}")
        bad += [f"{_name(r)}: {p}" for p in problems]
    return bad


def _replication(d: Mapping[str, Any], dev_gain: float, sign: float, noise: float, chain: dict[str, int]) -> tuple[list[str], bool | None, bool]:
    """The reusable holdout's query (its place in the budget chain) and the replication rule re-applied;
    returns (problems, replication passed or None, the budget exhausted)."""
    from gitera.core import gate

    problems: list[str] = []
    queries = d.get("holdout_queries") or []
    rep = d.get("replication")
    if not queries:
        if rep is not None:
            problems.append("it records a replication without the holdout query it needs")
        return problems, None, False
    q = queries[0] if isinstance(queries[0], dict) else {}
    chain["query"] += 1
    exhausted = chain["budget_left"] <= 0
    used = bool(q.get("holdout_used"))
    want_left = 0 if exhausted else chain["budget_left"] - (1 if used else 0)
    want_gamma = chain["query"] if used and not exhausted else chain["gamma_from"]
    got = (q.get("query"), bool(q.get("exhausted")), q.get("budget_left"), q.get("gamma_from"))
    if len(queries) != 1 or got != (chain["query"], exhausted, want_left, want_gamma):
        problems.append(f"its holdout query {got} breaks the reusable holdout's chain (want query {chain['query']}, "
                        f"exhausted {exhausted}, budget left {want_left}, gamma from {want_gamma})")
    chain["budget_left"], chain["gamma_from"] = want_left, want_gamma
    value = _number(q.get("value"))
    if exhausted or value is None:
        if rep is not None:
            problems.append("it records a replication although the holdout answered nothing")
        return problems, None, exhausted
    if not used and not _close(value, dev_gain):
        problems.append(f"its holdout answer {value:+.6f} came from the climbing rows, so it must be the sprint's dev gain {dev_gain:+.6f}")
    if not isinstance(rep, dict):
        problems.append("it records no replication for the holdout's answer")
        return problems, None, exhausted
    if not _close(rep.get("dev_gain"), sign * dev_gain):
        problems.append(f"it records a dev gain {rep.get('dev_gain')} but the attempts give {sign * dev_gain:+.6f}")
    se = _number(d.get("se_gain"))
    if se is None:  # a gate from before se_gain was recorded: only the recorded pass/fail against its own numbers
        passed = _number(rep.get("gate_gain")) is not None and float(rep["gate_gain"]) >= float(_number(rep.get("required")) or 0.0) - TOL
        if passed != bool(rep.get("passed")):
            problems.append(f"it records replication passed={rep.get('passed')} but gate gain {rep.get('gate_gain')} vs required {rep.get('required')}")
        return problems, bool(rep.get("passed")), exhausted
    again = gate.replication(sign * dev_gain, sign * value, 0.0, noise, se)
    if again.passed != rep.get("passed") or not _close(again.required, rep.get("required")) or not _close(again.gate_gain, rep.get("gate_gain")):
        problems.append(f"it records replication passed={rep.get('passed')} (required {rep.get('required')}) but the rule gives "
                        f"passed={again.passed} (required {again.required:+.6f}, gate gain {again.gate_gain:+.6f})")
    return problems, again.passed, exhausted
