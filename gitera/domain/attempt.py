"""Scoring one iterate attempt on dev and deciding it: keep, discard, crash, timeout or guard_fail.

The decision follows the frame's `iterate.mode` (gitera/core/decision.py); a marginal keep is
re-scored with fresh trial indices and kept only if the pooled gain still clears
(`iterate.confirm`, docs/iterate.md). Plain Python on purpose: numpy and scipy would add
~0.2 s to every attempt's start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitera.adapters.output import Output
from gitera.core import decision as rule
from gitera.core.errors import RefusedError
from gitera.core.frame import Frame
from gitera.core.loopstate import LoopState
from gitera.core.results import mean_of, read_results, sanitize
from gitera.domain.experiment import Experiment
from gitera.domain.scoring import Scorer, budget_for, results_jsonl

if TYPE_CHECKING:
    from gitera.adapters.evalrun import EvalRun


@dataclass(frozen=True)
class Scored:
    """An attempt scored on dev: its decision, result rows, spend, whether the budget cut it and its first error."""
    decision: dict[str, Any]  # the trailer's decision fields (status, reason, score, gains, confirm, ...)
    rows: bytes  # the per-row results file: every trial the decision used
    spent_usd: float  # what the harness calls cost now (the budget's view)
    budget_cut: bool  # the cost budget stopped the scoring before every row was scored
    first_error: str | None = None  # a crash's or timeout's first error text, dev rows' text redacted


def score_attempt(exp: Experiment, frame: Frame, state: LoopState, scorer: Scorer, candidate: str,
                  rows: Sequence[Mapping[str, Any]], out: Output) -> Scored:
    it = frame.iterate
    assert it is not None and state.best is not None
    ids = [str(r["id"]) for r in rows]
    trials = list(range(frame.metric.trials))
    run = scorer.score(it.arm, candidate, rows, "dev", trials, budget=budget_for(frame, state.spent_usd, exp), slot="iterate")
    if run.aggregate_only:
        raise RefusedError(
            "the harness reports only `SCORE:` aggregates, so no paired keep/discard decision is possible; "
            "write one result line per row to $GITERA_OUT (docs/eval-contract.md) and iterate again."
        )
    best = read_results((exp.repo.root / state.best.rows_file).read_text())
    base = baseline_records(exp, frame, state)
    records = [r.to_json() for r in run.results]
    first = decide(frame, state, run, records, best, base, ids)
    scored = Scored(first, results_jsonl(run), run.spent_usd, run.stop_reason == "budget", crash_text(frame, rows, records, first))
    if not (first.get("marginal") and it.confirm):
        return scored
    fresh = list(range(len(trials), 2 * len(trials)))
    out.info(f"the gain {first['gain']:+.4g} clears the threshold {first['threshold']:.4g} by less than one paired SE: "
             f"confirming with {len(fresh)} fresh trials")
    more = scorer.score(it.arm, candidate, rows, "dev", fresh, budget=budget_for(frame, state.spent_usd + run.spent_usd, exp), slot="iterate")
    spent = run.spent_usd + more.spent_usd
    if not more.complete:
        why = "the cost budget ran out" if more.stop_reason == "budget" else (more.problems[0] if more.problems else "rows were not scored")
        unconfirmed = {**first, "status": "discard", "outcome": "neutral",
                       "reason": f"not kept: {first['reason']}, by less than one paired SE, and the confirmation run is incomplete "
                                 f"({why}); a marginal gain is never kept unconfirmed",
                       "confirm": _confirm_record(first, fresh, complete=False, held=False)}
        return Scored(unconfirmed, scored.rows, spent, more.stop_reason == "budget")
    pooled = decide(frame, state, run, records + [r.to_json() for r in more.results], best, base, ids)
    held = pooled["status"] == "keep"
    pooled["reason"] = (f"{'confirmed' if held else 'not confirmed'} with {len(fresh)} fresh trials: {pooled['reason']} "
                        f"(the first {len(trials)} trials alone: gain {first['gain']:+.4g} over {first['threshold']:.4g})")
    pooled["confirm"] = _confirm_record(first, fresh, complete=True, held=held)
    return Scored(pooled, scored.rows + results_jsonl(more), spent, False)


def crash_text(frame: Frame, rows: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]],
               decision: Mapping[str, Any]) -> str | None:
    """'row ID, trial T: ERROR' for the first unscored result of a crashed or timed-out attempt,
    one line, with any dev row's text in it redacted (the loop must not be handed dev text)."""
    if decision.get("status") not in ("crash", "timeout"):
        return None  # the common case, without importing the row views
    from gitera.core import rowview
    from gitera.domain.diagnosis import dev_secrets

    found = rowview.first_error(records)
    if found is None:
        return None
    rid, trial, error = found
    return f"row {rid}, trial {trial}: {rowview.excerpt(rowview.redact(error, dev_secrets(frame, rows)))}"


def _confirm_record(first: Mapping[str, Any], fresh: Sequence[int], *, complete: bool, held: bool) -> dict[str, Any]:
    return {"first_gain": first["gain"], "first_threshold": first["threshold"], "fresh_trials": list(fresh),
            "complete": complete, "held": held}


def baseline_records(exp: Experiment, frame: Frame, state: LoopState) -> list[dict[str, Any]]:
    """The baseline arm's per-row results in the run the loop started from (guards and noise read them)."""
    path = exp.path(f"runs/run-{state.run:03d}/summary.json")
    if not path.exists():
        return []
    summary = json.loads(path.read_text())
    return read_results((exp.repo.root / summary["arms"][frame.baseline.arm]["rows_file"]).read_text())


def guard_failures(frame: Frame, attempt: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]]) -> list[str]:
    failures = []
    for g in frame.metric.guards:
        field = "score" if g.name == frame.metric.primary else g.name
        new, base = mean_of(attempt, field), mean_of(baseline, field)
        if new is None:
            failures.append(f"guard {g.name}: the harness reported no {g.name}")
            continue
        if g.kind == "max" and new > g.limit:
            failures.append(f"guard {g.name}: {new:.4g} is above the maximum {g.limit:g}")
        elif g.kind == "min" and new < g.limit:
            failures.append(f"guard {g.name}: {new:.4g} is below the minimum {g.limit:g}")
        elif g.kind in ("max_increase", "max_decrease") and base is not None:
            change = (new - base) / abs(base) if base else (0.0 if new == base else float("inf") * (1 if new > base else -1))
            if g.kind == "max_increase" and change > g.limit:
                failures.append(f"guard {g.name}: +{change:.0%} vs the baseline exceeds the allowed +{g.limit:.0%}")
            if g.kind == "max_decrease" and -change > g.limit:
                failures.append(f"guard {g.name}: {change:.0%} vs the baseline exceeds the allowed -{g.limit:.0%}")
    return failures


def criteria(frame: Frame, state: LoopState, records: Sequence[Mapping[str, Any]], best: Sequence[Mapping[str, Any]],
             baseline: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> list[rule.Criterion] | str:
    """The quantities the frame's mode compares, primary first; or the name of one the rows lack."""
    it, metric = frame.iterate, frame.metric
    assert it is not None
    specs: list[tuple[str, str, str, dict[str, float] | None, float, float]] = [
        (metric.primary, "score", metric.direction, None, state.noise_floor, it.min_delta)]
    if it.mode == "pareto":
        specs += [(name, name, d, None, rule.trial_noise(baseline, name), 0.0) for name, d in it.directions.items()]
    if it.mode == "weighted":
        weights = weight_fields(frame)
        specs += [(name, name, "higher" if w > 0 else "lower", None, rule.trial_noise(baseline, name), 0.0)
                  for name, w in it.weights.items() if name != metric.primary]
        specs.append((rule.WEIGHTED, rule.WEIGHTED, "higher", weights, rule.trial_noise(baseline, "", weights), it.min_delta))
    out = []
    for name, field, direction, weights_, noise, min_delta in specs:
        cand, prev = rule.row_means(records, ids, field, weights_), rule.row_means(best, ids, field, weights_)
        if cand is None or prev is None:
            return name
        out.append(rule.criterion(name, field, direction, cand, prev, noise, min_delta))
    return out


def weight_fields(frame: Frame) -> dict[str, float]:
    """The weighted mode's weights keyed by per-row result field (the primary metric is `score`)."""
    assert frame.iterate is not None
    return {"score" if k == frame.metric.primary else k: v for k, v in frame.iterate.weights.items()}


def decide(frame: Frame, state: LoopState, run: EvalRun, records: Sequence[Mapping[str, Any]], best: Sequence[Mapping[str, Any]],
           baseline: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> dict[str, Any]:
    """The keep / discard / crash / timeout / guard_fail decision on ``records``, with its reason in words."""
    from statistics import NormalDist, stdev

    it = frame.iterate
    assert it is not None
    cost = mean_of(records, "cost_usd")
    trial_means = _trial_means(records)
    base: dict[str, Any] = {"score": None, "sd": None, "gain": None, "ci": None, "threshold": None, "gains": None,
                            "trials": len(trial_means) or frame.metric.trials, "marginal": False,
                            "cost_per_1k": sanitize(cost * 1000, 6) if cost is not None else None,
                            "latency_ms": sanitize(mean_of(records, "latency_ms"), 3)}
    if not run.complete:
        return {**base, **_incomplete(run), "trials": frame.metric.trials}
    base["score"] = sanitize(sum(trial_means) / len(trial_means))
    base["sd"] = sanitize(stdev(trial_means)) if len(trial_means) > 1 else None
    found = criteria(frame, state, records, best, baseline, ids)
    if isinstance(found, str):
        return {**base, "status": "discard", "outcome": "neutral",
                "reason": f"no decision: some rows have no {found}, which the {it.mode} mode compares; report it for every row"}
    primary = found[0]
    half = NormalDist().inv_cdf(1 - frame.threshold.alpha / 2) * primary.se
    base.update(gain=sanitize(primary.gain), ci=[sanitize(primary.gain - half), sanitize(primary.gain + half)],
                threshold=sanitize(primary.threshold), gains={c.name: c.to_dict() for c in found})
    guards = guard_failures(frame, records, baseline)
    if guards:
        return {**base, "status": "guard_fail", "outcome": "neutral", "reason": "; ".join(guards)}
    d = rule.decide(it.mode, found)
    if d.keep:
        return {**base, "status": "keep", "outcome": "supported", "reason": d.reason, "marginal": d.marginal}
    reason = d.reason
    if it.mode == "primary" and abs(primary.gain) <= 2 * state.noise_floor:
        reason += " (within the noise floor)"
    return {**base, "status": "discard", "outcome": "falsified" if d.falsified else "neutral", "reason": reason}


def _trial_means(records: Sequence[Mapping[str, Any]]) -> list[float]:
    per: dict[int, list[float]] = {}
    for r in records:
        if r.get("status") == "ok" and isinstance(r.get("score"), (int, float)):
            per.setdefault(int(r["trial"]), []).append(float(r["score"]))
    return [sum(v) / len(v) for _, v in sorted(per.items())]


def _incomplete(run: EvalRun) -> dict[str, Any]:
    counts = run.status_counts()
    unscored = sum(v for k, v in counts.items() if k != "ok")
    if run.stop_reason == "budget":
        # the money ran out, the harness did not fail: an honest discard, not a crash (rule 13)
        return {"status": "discard", "outcome": "neutral",
                "reason": f"not scored in full: the cost budget ran out after {len(run.results) - unscored} of {len(run.results)} "
                          "row×trial results; no decision on partial data"}
    status = "timeout" if counts.get("timeout", 0) >= max(1, unscored) / 2 else "crash"
    first = run.problems[0] if run.problems else "rows were not scored"
    return {"status": status, "outcome": "neutral", "reason": f"{status}: {unscored} row×trial results unscored ({first})"}
