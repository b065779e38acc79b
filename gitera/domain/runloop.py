"""The iterate loop of a run-level experiment: the sequential keep rule and the gate's checks.

An attempt scores the candidate one run at a time (seed 0, 1, …, the best's seeds) and asks the
sequential rule (gitera.core.runstats.sequential_look) after each run: keep, discard, or one more
run, up to ``iterate.max_runs``. A candidate clearly worse than the noise allows costs one run.
The gate replicates the sprint's gain on the sealed gate shard (``data.gate_seal``), read through
the reusable holdout, or — when no shard is declared — on fresh seeds of the dev eval, and says
so; its hardcode scan looks for the eval's data copied into, or read by, the target files.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from gitera.adapters.output import Output
from gitera.adapters.runscript import RunResult
from gitera.core import runstats
from gitera.core.errors import RefusedError
from gitera.core.frame import Frame
from gitera.core.loopstate import LoopState
from gitera.core.results import read_results, sanitize
from gitera.domain.attempt import Scored, guard_failures
from gitera.domain.experiment import Experiment
from gitera.domain.loopstore import point_commit
from gitera.domain.runlevel import RunScorer, read_runs, records_jsonl, scores, spent
from gitera.domain.scoring import require_split

FRESH_SEEDS = 1_000_000  # the gate's fresh seeds start here: no attempt or run ever used them


def baseline_runs(exp: Experiment, frame: Frame, state: LoopState) -> tuple[list[float], list[dict[str, Any]]]:
    """The baseline's run scores and records in the dev run the loop started from (the noise runs)."""
    summary = json.loads(exp.path(f"runs/run-{state.run:03d}/summary.json").read_text())
    text = (exp.repo.root / summary["arms"][frame.baseline.arm]["rows_file"]).read_text()
    return read_runs(text), read_results(text)


def score_run_attempt(exp: Experiment, frame: Frame, lock: Mapping[str, Any], state: LoopState, candidate: str,
                      number: int, out: Output, use_cache: bool) -> Scored:
    """Score a candidate with the sequential keep rule; the decision fields of the attempt's trailer."""
    it = frame.iterate
    assert it is not None and state.best is not None
    best = read_runs((exp.repo.root / state.best.rows_file).read_text())
    noise, base_records = baseline_runs(exp, frame, state)
    scorer = RunScorer(exp, frame, lock, out, use_cache)
    cap = it.budget.max_cost_usd
    results: list[RunResult] = []
    looks: list[runstats.Look] = []
    cut = False
    for seed in range(it.max_runs):
        # one more run would cost about what the last one did: never start a run the budget cannot pay
        if cap is not None and results and state.spent_usd + spent(results) + spent(results[-1:]) > cap:
            cut = True
            break
        r = scorer.score(it.arm, candidate, "dev", [seed], slot="iterate", label=f"#{number} {it.arm}", of=it.max_runs)[0]
        results.append(r)
        if r.status != "ok":
            break
        looks.append(runstats.sequential_look(best, scores(results), [noise], noise_floor=state.noise_floor, min_delta=it.min_delta,
                                              alpha=frame.threshold.alpha, max_runs=it.max_runs, direction=frame.metric.direction))
        out.info(f"    {looks[-1].reason}")
        if looks[-1].action != runstats.MORE:
            break
    records = [r.record() for r in results]
    decision = _decision(frame, results, looks, cut, records, base_records)
    decision["runs"] = {"n": len(results), "cap": it.max_runs, "alpha": frame.threshold.alpha, "best_runs": len(best),
                        "looks": [lk.to_dict() for lk in looks]}
    decision["secondary"] = {n: sanitize(runstats.mean(vs)) if (vs := [float(r.numbers[n]) for r in results if n in r.numbers]) else None
                             for n in frame.metric.secondary}
    return Scored(decision, records_jsonl(results), spent(results), cut)


def _decision(frame: Frame, results: Sequence[Any], looks: Sequence[runstats.Look], cut: bool,
              records: Sequence[Mapping[str, Any]], base_records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ok = scores(results)
    cost = runstats.mean([float(r.numbers["cost_usd"]) for r in results if "cost_usd" in r.numbers]) if any(
        "cost_usd" in r.numbers for r in results) else None
    d: dict[str, Any] = {"level": "run", "score": sanitize(runstats.mean(ok)) if ok else None, "sd": sanitize(runstats.sd(ok)) if len(ok) > 1 else None,
                         "gain": None, "ci": None, "threshold": None, "gains": None, "trials": len(results), "marginal": False,
                         "cost_per_1k": sanitize(cost * 1000, 6) if cost is not None else None, "latency_ms": None}
    bad = next((r for r in results if r.status != "ok"), None)
    if bad is not None:
        status = "timeout" if bad.status == "timeout" else "crash"
        first = (bad.error or "no score").splitlines()[0]
        return {**d, "score": None, "sd": None, "status": status, "outcome": "neutral",
                "reason": f"{status}: run {len(results)} (seed {bad.trial}) {bad.status}: {first}"}
    last = looks[-1]
    half = runstats.t_ppf(1 - frame.threshold.alpha / 2, last.df) * last.se if last.se > 0 else 0.0
    d.update(gain=sanitize(last.gain, 10), ci=[sanitize(last.gain - half, 10), sanitize(last.gain + half, 10)], threshold=sanitize(last.threshold, 10))
    if cut:
        return {**d, "status": "discard", "outcome": "neutral",
                "reason": f"not scored in full: the cost budget ran out after {len(results)} run(s) of a still-open decision; no decision on partial data"}
    if last.action == runstats.KEEP:
        guards = guard_failures(frame, records, base_records)
        if guards:
            return {**d, "status": "guard_fail", "outcome": "neutral", "reason": "; ".join(guards)}
        return {**d, "status": "keep", "outcome": "supported", "reason": last.reason}
    return {**d, "status": "discard", "outcome": "falsified" if last.gain < -last.threshold else "neutral", "reason": last.reason}


# --- the gate ------------------------------------------------------------------------------------


def eval_data_rows(frame: Frame, contents: Mapping[str, bytes]) -> list[dict[str, str]]:
    """The lines of the eval's data files as rows for the hardcode scan (text files only)."""
    from gitera.domain.runseal import _text_lines

    return [{"id": f"{path}:{i}", "text": line} for path, content in contents.items() for i, line in enumerate(_text_lines(content), 1)]


def reads_eval_data(diff: str, paths: Sequence[str]) -> list[Any]:
    """Added lines of the sprint's diff that name an eval data file (dev or sealed), by path or file
    name: a target that opens the eval's data trains on it."""
    from gitera.core.gate import HardcodeHit, added_lines

    names = {p: (p, PurePosixPath(p).name) for p in paths}
    hits = []
    for line in added_lines(diff):
        found = [p for p, forms in names.items() if any(re.search(rf"(?<![\w.-]){re.escape(f)}(?![\w-])", line.text) for f in forms)]
        if found:
            hits.append(HardcodeHit(line.file, line.line_no, "reads_eval_data", tuple(found), line.text.strip()[:120]))
    return hits


def split_seal(exp: Experiment, path: str) -> bytes:
    """A seal's bytes as the split committed them: the gate opens that, never a file someone put in its place."""
    from gitera.adapters.history import read

    split = next((r.commit for r in read(exp.repo, exp.branch, exp.tag) if r.kind == "Split"), None)
    sealed = exp.repo.show(split, path) if split else None
    if sealed is None:
        raise RefusedError(f"no split commit of experiment {exp.tag} holds {path}; the gate opens only the seal the split made.")
    return sealed


def gate_checks(exp: Experiment, frame: Frame, lock: Mapping[str, Any], state: LoopState, out: Output) -> tuple[Any, ...]:
    """(tip, hardcode hits, replication, holdout queries, holdout, spend, holdout exhausted) for the gate's record."""
    from gitera.adapters import keys
    from gitera.adapters.keys import holdout_seed
    from gitera.core import gate
    from gitera.domain.runseal import open_files

    it, d = frame.iterate, frame.data
    assert it is not None and state.best is not None and state.gate_passed is not None
    repo = exp.repo
    manifest = require_split(exp)
    tip = repo.rev(f"refs/heads/{exp.branch}")
    assert tip is not None
    where = "the sealed gate shard" if d.gate_seal else "fresh seeds of the dev eval"
    out.info(f"gate: sprint {state.sprint} — scan of the diff for the eval's data, replication on {where}, saturation")
    diff = repo.git("diff", "-U0", state.sprint_start or tip, tip, "--", *it.target)
    shard = open_files(repo, exp, manifest, "gate_seal", keys.read_gate_key(repo.common_dir, exp.tag), d.gate_seal,
                       sealed=split_seal(exp, manifest["gate_seal"]["path"])) if d.gate_seal else {}
    dev = {p: (repo.root / p).read_bytes() for p in d.dev if (repo.root / p).is_file()}
    rows = eval_data_rows(frame, {**dev, **shard})
    hits = [*reads_eval_data(diff, [*d.dev, *d.seal, *d.gate_seal]),
            *gate.scan_diff(diff, rows, text_columns=["text"], id_column="id", label_column=None)]
    scorer = RunScorer(exp, frame, lock, out, use_cache=False)
    k = frame.metric.trials
    if d.gate_seal:
        seeds, split = list(range(k)), "gate"
    else:
        seeds, split = [FRESH_SEEDS + (state.sprint - 1) * k + i for i in range(k)], "dev"
    runs = {}
    for name, point, slot in (("best", state.best, "gate-best"), ("start", state.gate_passed, "gate-start")):
        commit = point_commit(exp, it.target, point, f"gate check of iteration {point.iteration}")
        runs[name] = scorer.score(it.arm, commit, split, seeds, slot=slot, read_cache=False, store=False, files=shard,
                                  label=f"gate: iteration {point.iteration}")
        if any(r.status != "ok" for r in runs[name]):
            bad = next(r for r in runs[name] if r.status != "ok")
            raise RefusedError(f"the gate could not score iteration {point.iteration} ({bad.status}: {(bad.error or '').splitlines()[0] if bad.error else ''}); "
                               "fix the script and run `gitera gate`.")
    used = spent([*runs["best"], *runs["start"]])
    sign = 1.0 if frame.metric.direction == "higher" else -1.0
    c = runstats.welch(scores(runs["start"]), scores(runs["best"]), frame.threshold.alpha)
    gate_gain, se = c.effect, c.se  # best − start on the gate's runs, in metric units
    dev_gain = float(state.best.score or 0.0) - float(state.gate_passed.score or 0.0)
    seed = holdout_seed(repo.common_dir, exp.tag)
    holdout = gate.Thresholdout.from_dict({**state.holdout, "seed": seed}) if state.holdout else gate.Thresholdout.create(seed=seed)
    queries: list[dict[str, Any]] = []
    if d.gate_seal:  # the shard is reused every sprint: read it only through the reusable holdout
        answer, holdout = gate.thresholdout_query(holdout, dev_gain, gate_gain)
        queries = [answer.to_dict()]
        if answer.value is None:
            return tip, hits, None, queries, holdout, used, True
        value = answer.value
    else:
        value = gate_gain
    rep = gate.replication(sign * dev_gain, sign * value, 0.0, state.noise_floor, se if math.isfinite(se) else 0.0)
    if not d.gate_seal:
        from dataclasses import replace

        rep = replace(rep, reason=f"on {k} fresh seeds of the dev eval (no data.gate_seal declared: this tells a gain from seed luck, "
                                  f"not from fitting the dev data): {rep.reason}")
    return tip, hits, rep, queries, holdout, used, False
