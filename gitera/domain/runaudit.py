"""`gitera verify` for a run-level experiment: each attempt's sequential decision and the verdict,
re-derived from what git holds (docs/run-level.md, "What verify re-derives").

Also the verdict's own decision function (``decide_runs``), so the verdict and its re-check run
the same code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gitera.adapters.git import Repo
from gitera.core import runstats
from gitera.core.frame import Frame
from gitera.domain.experiment import Experiment
from gitera.domain.records import records_file, show

Check = tuple[str, bool, str]
RUN_ID = "run"


def ok_scores(records: Sequence[Mapping[str, Any]]) -> list[float]:
    """The ok run scores of a per-run file, in trial order."""
    rows = sorted((r for r in records if r.get("status") == "ok" and isinstance(r.get("score"), (int, float))), key=lambda r: int(r["trial"]))
    return [float(r["score"]) for r in rows]


def recheck_attempt(result: Mapping[str, Any], records: Sequence[Mapping[str, Any]], best: Sequence[Mapping[str, Any]],
                    baseline: Sequence[Mapping[str, Any]], frame: Mapping[str, Any]) -> str | None:
    """What is wrong with a run-level attempt's recorded decision, replayed look by look from its runs, or None."""
    where = f"#{result.get('iteration')}"
    it = frame.get("iterate") or {}
    primary = (frame.get("metric") or {}).get("primary") or {}
    alpha = float((frame.get("threshold") or {}).get("alpha", 0.05))
    cap = int(it.get("max_runs", 5))
    runs = result.get("runs") or {}
    if runs.get("cap") != cap or not math.isclose(float(runs.get("alpha") or 0), alpha):
        return f"{where}: recorded cap {runs.get('cap')} / alpha {runs.get('alpha')} but the locked frame says {cap} / {alpha}"
    status = result.get("status")
    if status in ("crash", "timeout"):
        return None
    cand, prev, noise = ok_scores(records), ok_scores(best), ok_scores(baseline)
    if not cand or not prev or len(noise) < 2:
        return f"{where}: the runs give nothing to replay"
    looks = []
    for j in range(1, len(cand) + 1):
        looks.append(runstats.sequential_look(prev, cand[:j], [noise], noise_floor=float(result.get("noise_floor") or 0.0),
                                              min_delta=float(it.get("min_delta", 0.0)), alpha=alpha, max_runs=cap,
                                              direction=str(primary.get("direction", "higher"))))
    if any(lk.action != runstats.MORE for lk in looks[:-1]):
        return f"{where}: the rule had decided after {next(i for i, lk in enumerate(looks, 1) if lk.action != runstats.MORE)} run(s), but {len(cand)} were scored"
    last = looks[-1].action
    cut = str(result.get("reason") or "").startswith("not scored in full")
    want = {"keep": (runstats.KEEP,), "guard_fail": (runstats.KEEP,), "discard": (runstats.DISCARD,) + ((runstats.MORE,) if cut else ())}
    if last not in want.get(str(status), ()):
        return f"{where} recorded {status} after {len(cand)} run(s), but the sequential rule on those runs says {last}"
    return None


def decide_runs(frame: Frame, runs: Mapping[str, Sequence[float]]) -> Any:
    """The registered rules on the test runs: Welch per candidate against the baseline, then ``rules.decide``."""
    from gitera.core import rules
    from gitera.core.verdict import registered_threshold

    base = frame.baseline.arm
    inputs = []
    for arm in frame.arms:
        if arm != base:
            c = runstats.welch(runs[base], runs[arm], frame.threshold.alpha)
            inputs.append(rules.ArmInput(arm, c.effect, c.ci_low, c.ci_high, c.p_value, n=c.n_arm, sd_diff=c.sd_diff))
    return rules.decide(inputs, registered_threshold(frame))


def test_runs(records: Sequence[Mapping[str, Any]], trials: Sequence[int]) -> list[float]:
    """One arm's test scores in trial order; every trial must be there and ok (else a ValueError)."""
    by = {int(r["trial"]): r for r in records if r.get("id") == RUN_ID}
    if sorted(by) != sorted(trials) or any(by[t].get("status") != "ok" or not isinstance(by[t].get("score"), (int, float)) for t in trials):
        raise ValueError("the per-run test file does not hold one scored run per trial")
    return [float(by[t]["score"]) for t in trials]


def recompute_verdict(repo: Repo, exp: Experiment, commit: str, doc: Mapping[str, Any], frame: Frame, key: Any,
                      salt: bytes) -> list[Check]:
    """The sealed files open with the released key (and its commitment), and the test runs give the recorded decision."""
    import json

    from gitera.domain.runseal import open_files
    from gitera.domain.scoring import relpath

    manifest = json.loads(show(repo, commit, exp.rel("split/manifest.json")) or b"{}")
    try:
        opened = open_files(repo, exp, manifest, "seal", key, frame.data.seal, commitment=(salt, doc["opening"]["commitment"]),
                            sealed=show(repo, commit, doc["seal"]["path"]) or b"")
    except Exception as exc:  # noqa: BLE001 - any seal error is a failed check, reported in words
        return [("the sealed test files open with the released key", False, str(exc))]
    checks: list[Check] = [("the sealed test files open with the released key", sorted(opened) == sorted(frame.data.seal), "")]
    trials = list(range(frame.metric.trials))
    try:
        runs = {arm: test_runs(records_file(repo, commit, relpath(exp, f"test/{arm}.jsonl")) or [], trials) for arm in frame.arms}
    except ValueError as exc:
        return [*checks, ("the verdict recomputed from the test runs is the same", False, str(exc))]
    again = decide_runs(frame, runs).to_dict()
    dec = doc["decision"]
    same = again["decision"] == dec["decision"] and again["arm"] == dec["arm"]
    checks.append(("the verdict recomputed from the test runs is the same", same,
                   "" if same else f"recorded {dec['decision']} {dec['arm']}, recomputed {again['decision']} {again['arm']} with the locked frame's rules"))
    recorded = {a["name"]: a["effect"] for a in dec["arms"]}
    ok = all(a["name"] in recorded and recorded[a["name"]] is not None and math.isclose(a["effect"], recorded[a["name"]], abs_tol=1e-9)
             for a in again["arms"])
    checks.append(("the recorded test effects match the per-run files", ok, ""))
    return checks
