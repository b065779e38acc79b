"""Judge mode (discipline rule 15): a model or command scores each arm's output, blind.

The judge never sees arm names: each (row, arm) gets a per-row shuffled label such as
``response-C``, GITERA_ARM is ``judge``, GITERA_ARM_PARAMS is ``{}``, and every call runs in
one neutral checkout (the lock commit's tree) with work dirs that carry no arm name. It is
given the arm's full output (up to 64 KiB), is cached, and is charged to the arm's budget. With a ``cross_judge`` of another family, at
least 5 dev rows are re-judged and the agreement recorded: ≥ 4/5 agreeing is fine; ≥ 2/5
disagreeing flags the run and the verdict refuses.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitera.adapters.evalrun import EvalRun, EvalSpec
    from gitera.core.frame import Judge

CROSS_ROWS = 5
JUDGE_ARM = "judge"


def blind_label(seed: str, row_id: str, arms: Sequence[str], arm: str) -> str:
    """The arm's label for this row: a per-row shuffle of the arms, seeded (pure)."""
    order = sorted(arms, key=lambda a: hashlib.sha256(f"{seed}|{row_id}|{a}".encode()).hexdigest())
    return "response-" + string.ascii_uppercase[order.index(arm) % 26]


def judge_spec(judge: Judge, harness_hash: str, env: tuple[str, ...] = ()) -> EvalSpec:
    from gitera.adapters.evalrun import EvalSpec

    return EvalSpec(command=judge.command, python=judge.python, harness_hash="judge:" + harness_hash, env=env)


def judge_rows(rows: Sequence[Mapping[str, Any]], run: EvalRun, trial: int, seed: str, arms: Sequence[str], arm: str) -> list[dict[str, Any]]:
    """The rows the arm scored ok in this trial, each with the arm's full output and its blind label."""
    outputs = {str(r.id): r.output_full or r.output for r in run.results if r.trial == trial and r.status == "ok"}
    return [{**row, "output": outputs[str(row["id"])], "candidate": blind_label(seed, str(row["id"]), arms, arm)}
            for row in rows if str(row["id"]) in outputs]


def agree(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return False
    return abs(a - b) <= 0.1 if not ({a, b} <= {0.0, 1.0}) else a == b


def apply_judge(run: EvalRun, judged: Mapping[int, EvalRun]) -> EvalRun:
    """The arm's run with each row's score replaced by the judge's (unscored if the judge failed)."""
    scores = {(str(r.id), t): r for t, jr in judged.items() for r in jr.results}
    results = []
    for r in run.results:
        j = scores.get((str(r.id), r.trial))
        if r.status != "ok":
            results.append(r)
        elif j is None or j.status != "ok":
            results.append(replace(r, score=None, status=j.status if j else "missing", error=f"judge: {j.error if j else 'no score'}"))
        else:
            results.append(replace(r, score=j.score, cost_usd=(r.cost_usd or 0.0) + (j.cost_usd or 0.0) if (r.cost_usd is not None or j.cost_usd is not None) else None))
    complete = run.complete and all(j.complete for j in judged.values())
    problems = (*run.problems, *(p for j in judged.values() for p in j.problems))
    stop = run.stop_reason or next((j.stop_reason for j in judged.values() if j.stop_reason), None)
    return replace(run, results=tuple(results), complete=complete, problems=problems, stop_reason=stop,
                   cost_usd=sum(r.cost_usd or 0.0 for r in results), spent_usd=run.spent_usd + sum(j.spent_usd for j in judged.values()))


def cross_check(primary: Mapping[str, float | None], cross: Mapping[str, float | None]) -> dict[str, Any]:
    ids = sorted(primary)
    agreed = sum(1 for i in ids if agree(primary[i], cross.get(i)))
    disagreed = len(ids) - agreed
    return {"rows": len(ids), "agree": agreed, "disagree": disagreed,
            "flagged": disagreed * CROSS_ROWS >= 2 * max(1, len(ids)),  # ≥ 2 of every 5 disagree
            "fine": agreed * CROSS_ROWS >= 4 * max(1, len(ids))}
