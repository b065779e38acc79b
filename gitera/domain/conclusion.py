"""The one-page conclusion written by the verdict: conclusion.md, data.json and the charts."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.history import Record, attempts
from gitera.core.frame import Frame
from gitera.domain.experiment import Experiment

if TYPE_CHECKING:
    from gitera.core.rules import DevTestGap


def _f(v: Any, spec: str = ".4f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else "—"


def _ci(low: Any, high: Any) -> str:
    return f"[{_f(low, '+.4f')}, {_f(high, '+.4f')}]"


def _slice_floor(floor: float, verdict: Mapping[str, Any]) -> str:
    columns = verdict.get("slice_columns") or ([verdict["slice_column"]] if verdict.get("slice_column") else [])
    if not columns:
        return f"- Slice loss floor: {floor:g}, unused: the frame registers no slice column (data.slices), so no slice was checked."
    return f"- Slice loss floor: {floor:g} (one-sided lower bound per slice of {', '.join(f'`{c}`' for c in columns)})."


def _dev_summary(exp: Experiment) -> dict[str, Any] | None:
    from gitera.domain.runs import latest_run

    return latest_run(exp)


def chart_files(frame: Frame, verdict: Mapping[str, Any], doc_dir: str, records: Sequence[Record],
                split_label: str = "sealed test set") -> dict[str, bytes | None]:
    from gitera.adapters import charts
    from gitera.domain.progression import progression_of

    d = verdict["decision"]
    base = frame.baseline.arm
    arms = verdict["arms"]
    def bar(a: str) -> Any:
        score, sd = float(arms[a]["score"]), arms[a]["sd"]
        return charts.ArmBar(name=a, score=score, err_low=score - sd if sd is not None else None, err_high=score + sd if sd is not None else None,
                             is_baseline=a == base, decision_label=("shipped" if d["arm"] == a else None))

    bars = tuple(bar(a) for a in arms)
    sign = 1 if frame.metric.direction == "higher" else -1

    def oriented(effect: float | None, low: float | None, high: float | None) -> tuple[float, float | None, float | None]:
        """The charts draw positive as better; the rules' numbers are arm minus baseline."""
        e = float(effect) if effect is not None else float("nan")
        if sign > 0:
            return e, low, high
        return -e, (-high if high is not None else None), (-low if low is not None else None)

    forest: list[Any] = []
    for av in d["arms"]:
        e, lo, hi = oriented(av["effect"], av["ci_low"], av["ci_high"])
        forest.append(charts.ForestRow(label=av["name"], arm=av["name"], slice=None, effect=e, ci_low=lo, ci_high=hi, state=av["aggregate"]))
        for s in av["slices"]:
            e, lo, hi = oriented(s["mean"], s["lower"], s["upper"])
            forest.append(charts.ForestRow(label=f"{s['name']}", arm=av["name"], slice=s["name"], effect=e, ci_low=lo, ci_high=hi, state=s["state"]))
    costs = tuple(charts.CostPoint(name=a, cost_per_1k=arms[a]["cost_per_1k"], score=float(arms[a]["score"]), is_baseline=a == base) for a in arms)
    loop = progression_of(records, verdict.get("locked_iteration") or 0)
    data = charts.ChartData(
        metric=frame.metric.primary, arms=bars, threshold_score=float(arms[base]["score"]) + sign * frame.threshold.effect,
        forest=tuple(forest), threshold=frame.threshold.effect, loss_floor=frame.threshold.slice_loss_floor, costs=costs,
        attempts=loop.points, gates=loop.gates, baseline_dev_score=loop.start, noise_floor=loop.noise_floor,
        higher_is_better=frame.metric.direction == "higher", split_label=split_label,
    )
    files: dict[str, bytes | None] = {}
    # a run-level script need not report a cost: then there is no cost chart to draw (docs/run-level.md)
    no_cost = verdict.get("level") == "run" and all(c.cost_per_1k is None for c in costs)
    with tempfile.TemporaryDirectory() as tmp:
        for _, (png, svg) in charts.render_all(data, tmp).items():
            for p in (png, svg):
                if not (no_cost and Path(p).name.startswith("cost-vs-")):
                    files[f"{doc_dir}/{Path(p).name}"] = Path(p).read_bytes()
    return files


def build(exp: Experiment, frame: Frame, verdict: Mapping[str, Any], doc_dir: str) -> dict[str, bytes | None]:
    from gitera.domain.audit import audit, dev_test_gaps
    from gitera.domain.records import trailers

    dev = _dev_summary(exp)
    records = trailers(exp.repo, exp)
    files = chart_files(frame, verdict, doc_dir, records)
    charts = sorted(Path(p).name for p in files if p.endswith(".png"))
    checks = audit(exp.repo, exp, pending_verdict=True, records=records)
    gaps = dev_test_gaps(records, verdict)
    md = render_markdown(exp, frame, verdict, dev, charts, checks, records, gaps)
    files[f"{doc_dir}/conclusion.md"] = md.encode()
    data = {k: v for k, v in verdict.items() if k not in ("key", "row_ids")}
    data["dev"] = {k: v for k, v in (dev or {}).items() if k != "row_ids"}
    data["gates"] = [r.data for r in records if r.kind == "Gate"]
    data["dev_test_gap"] = [{**asdict(g), "alarm": g.alarm} for g in gaps]
    data["best_of_n"] = _optimism(records, verdict)
    data["audit"] = [{"check": c, "ok": ok, "detail": detail} for c, ok, detail in checks]
    files[f"{doc_dir}/data.json"] = (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode()
    return files


def render_markdown(exp: Experiment, frame: Frame, verdict: Mapping[str, Any], dev: Mapping[str, Any] | None,
                    charts: Sequence[str], checks: Sequence[tuple[str, bool, str]], records: Sequence[Record],
                    gaps: Sequence[DevTestGap]) -> str:
    from gitera.core.verdict import decision_sentence

    d = verdict["decision"]
    L: list[str] = [f"# {exp.tag}: {d['decision'].replace('_', ' ')}", "", f"**{decision_sentence(d, frame)}**", ""]
    L += ["## Question", "", f"> {frame.question}", "", f"Hypothesis: {frame.hypothesis}", ""]
    L += _arms(frame, verdict) + _registered(frame, verdict) + _dev(dev) + _iterations(records, verdict) + _gates(frame, records, verdict)
    L += _test_results(frame, verdict) + _findings(frame, verdict) + _cost(frame, verdict) + _gap(gaps, records, verdict)
    L += _next(verdict, gaps)
    L += ["## Charts", ""] + [f"![{c[:-4]}]({c})" for c in charts] + [""]
    L += ["## Discipline self-audit", "", "Recomputed from git alone by `gitera verify`:", ""]
    L += [f"- [{'x' if ok else ' '}] {check}{(' — ' + detail) if detail else ''}" for check, ok, detail in checks]
    L += [f"- ⚠ overfitting alarm (rule 21, not a process violation): {g.sentence()}" for g in gaps if g.alarm]
    L += ["", f"The test numbers above are the only evidence cited. Re-check this verdict with `gitera verify` (key {'released in this commit' if verdict.get('key_released') else 'kept by its custodian: --keep-key'})."]
    return "\n".join(L) + "\n"


def _arms(frame: Frame, verdict: Mapping[str, Any]) -> list[str]:
    if verdict.get("level") == "run":  # one score per run (docs/run-level.md)
        return _run_arms(frame, verdict)
    L = ["## Arms", "", "| arm | change | scored at | test score ± sd | cost per 1k rows | latency ms |", "|---|---|---|---:|---:|---:|"]
    for a, info in verdict["arms"].items():
        role = " (baseline)" if a == frame.baseline.arm else ""
        L.append(f"| {a}{role} | {frame.arms[a].change} | {info['what']} | {_f(info['score'])} ± {_f(info['sd'])} | "
                 f"{_f(info['cost_per_1k'], '.4f')} | {_f(info['latency_ms'], '.2f')} |")
    return [*L, ""]


def _registered(frame: Frame, verdict: Mapping[str, Any]) -> list[str]:
    t = frame.threshold
    if verdict.get("level") == "run":
        return _run_registered(frame)
    return ["## As registered", "",
            f"- Metric: **{frame.metric.primary}** ({frame.metric.direction} is better), {frame.metric.trials} trials per row; secondary: {', '.join(frame.metric.secondary) or '—'}.",
            f"- Threshold: effect ≥ {t.effect:g} on the {'point estimate' if t.basis == 'point' else 'CI lower bound'}, significant at α = {t.alpha:g} after Holm.",
            _slice_floor(t.slice_loss_floor, verdict),
            *([f"- Severity: the effect is severity-weighted by column `{verdict['severity_column']}`; the unweighted effect must clear "
               "the threshold too (rule 16); slices are judged unweighted."] if verdict.get("severity_column") else []),
            f"- Baseline as deployed: `{frame.baseline.ref}`.", ""]


def _dev(dev: Mapping[str, Any] | None) -> list[str]:
    if not dev:
        return []
    L = ["## Dev results (not the evidence: the test set decides)", "", "| arm | dev score ± sd | Δ vs baseline | 95% CI |", "|---|---:|---:|---|"]
    for a, info in dev["arms"].items():
        ci = info.get("ci")
        L.append(f"| {a} | {_f(info['score'])} ± {_f(info['sd'])} | {_f(info.get('delta'), '+.4f')} | "
                 f"{('[' + _f(ci[0], '+.3f') + ', ' + _f(ci[1], '+.3f') + ']') if ci else ''} |")
    what = "the sd of the baseline's runs on dev" if dev.get("level") == "run" else "baseline trial-to-trial sd on dev"
    return [*L, "", f"Noise floor ({what}): {_f(dev.get('noise_floor'))}.", ""]


def _iterations(records: Sequence[Record], verdict: Mapping[str, Any]) -> list[str]:
    atts = attempts(list(records))
    if not atts:
        return []
    locked = verdict.get("locked_iteration")
    L = ["## Iterations", ""]
    for r in atts:
        x = r.data
        mark = " **← locked for the verdict (latest gate-passed)**" if x.get("iteration") == locked else ""
        L.append(f"- **#{x.get('iteration')}** (sprint {x.get('sprint')}, `{r.commit[:10]}`): {x.get('hypothesis')} — "
                 f"{x.get('status')}, {x.get('outcome')}{_runs(x)}; dev {_f(x.get('score'))} (Δ {_f(x.get('delta'), '+.4f')} vs best). {x.get('reason')}{mark}")
    return [*L, ""]


def _gates(frame: Frame, records: Sequence[Record], verdict: Mapping[str, Any]) -> list[str]:
    """Each generalization gate's checks and outcome, and plainly: was the arm killed, which iteration was scored."""
    gates = [r for r in records if r.kind == "Gate"]
    if not attempts(list(records)) or frame.iterate is None:
        return []
    arm = frame.iterate.arm
    L = ["## Generalization gates", ""]
    for r in gates:
        g = r.data
        L.append(f"- **Sprint {g.get('sprint')}** (after iteration {g.get('after_iteration')}, `{r.commit[:10]}`): "
                 f"**{g.get('outcome')}**{' — the arm was killed' if g.get('outcome') == 'fail' else ''}. "
                 f"{_hardcode(g)} {_replication(g.get('replication'), g.get('holdout_queries'))} {_saturation(g.get('saturation'))} "
                 f"Latest gate-passed iteration afterwards: {g.get('locked_iteration')}.")
    if not gates:
        L.append("- No gate ran.")
    locked = verdict.get("locked_iteration") or 0
    killed = [r.data for r in gates if r.data.get("outcome") == "fail"]
    scored = f"iteration {locked}, its latest gate-passed state" if locked else "the state registered in the frame (no iteration passed a gate)"
    L += ["", (f"The generalization gate killed {arm} after sprint {killed[-1].get('sprint')}; " if killed else "")
          + f"the verdict scored {arm} at {scored}."]
    stops = [r.data for r in records if r.kind == "Stop"]
    if stops:
        L.append(f"The loop stopped: {stops[-1].get('reason')}.")
    return [*L, ""]


def _hardcode(g: Mapping[str, Any]) -> str:
    hits = g.get("hardcode") or []
    if not g.get("hardcode_hits"):
        return "Hardcode scan: no hit."
    where = ", ".join(f"{h.get('file')}:{h.get('line')} ({h.get('kind')})" for h in hits)
    more = g["hardcode_hits"] - len(hits)
    return f"Hardcode scan: {g['hardcode_hits']} hit(s) at {where}{f' and {more} more' if more > 0 else ''}."


#: What the gate gain is, by whether the reusable holdout consulted the gate rows (docs/gate.md §2).
GATE_GAIN_SOURCE: Mapping[object, str] = {
    False: "; the gate rows agreed with dev within the reusable holdout's tolerance, so the gate gain is the dev gain",
    True: "; the gate gain is the gate rows' own gain plus the reusable holdout's noise",
}


def _replication(rep: Mapping[str, Any] | None, queries: Sequence[Mapping[str, Any]] | None = None) -> str:
    if not rep:
        return "Replication: not measured (no gate rows, or the holdout budget was spent)."
    verdict = "passed" if rep.get("passed") else "failed"
    source = GATE_GAIN_SOURCE.get((queries or [{}])[-1].get("holdout_used"), "")
    return (f"Replication {verdict}: gate gain {_f(rep.get('gate_gain'), '+.4f')} vs required {_f(rep.get('required'), '+.4f')} "
            f"(dev gain {_f(rep.get('dev_gain'), '+.4f')}){'' if rep.get('informative', True) else ', too few gate rows to tell half the gain from none'}"
            f"{source}.")


def _saturation(sat: Mapping[str, Any] | None) -> str:
    if not sat:
        return ""
    return f"Saturation: {'saturated' if sat.get('saturated') else 'not saturated'}{(' — ' + str(sat['reason'])) if sat.get('reason') else ''}."


def _test_results(frame: Frame, verdict: Mapping[str, Any]) -> list[str]:
    d = verdict["decision"]
    weighted = bool(verdict.get("severity_column"))
    opened = (f"{verdict['n_test']} runs per arm on the sealed test files ({', '.join(verdict.get('test_files') or [])}), opened once by "
              "this verdict; each arm against the baseline by Welch's t over the run scores." if verdict.get("level") == "run"
              else f"{verdict['n_test']} sealed test rows, opened once by this verdict.")
    L = ["## Test results", "", opened, "",
         "| arm | effect vs baseline" + (" (weighted)" if weighted else "") + " | 95% CI"
         + (" | unweighted effect | unweighted 95% CI" if weighted else "") + " | p (Holm) | aggregate |",
         "|---|---:|---|" + ("---:|---|" if weighted else "") + "---:|---|"]
    for av in d["arms"]:
        u = av.get("unweighted") or {}
        extra = f" {_f(u.get('effect'), '+.4f')} | {_ci(u.get('ci_low'), u.get('ci_high'))} |" if weighted else ""
        L.append(f"| {av['name']} | {_f(av['effect'], '+.4f')} | {_ci(av['ci_low'], av['ci_high'])} |{extra} {_f(av['p_holm'], '.3g')} | {av['aggregate']} |")
    for av in d["arms"]:
        if av["slices"]:
            L += _slice_table(frame, verdict, av)
    return [*L, ""]


def _slice_table(frame: Frame, verdict: Mapping[str, Any], av: Mapping[str, Any]) -> list[str]:
    """One arm's slices: the paired effect and its state, and each side's score (Wilson 95% interval when binary)."""
    base = frame.baseline.arm
    scores = {a: info.get("slices") or {} for a, info in verdict["arms"].items()}
    L = ["", f"Slices of **{av['name']}** (non-inferiority at −{frame.threshold.slice_loss_floor:g}; each side's score with a "
         f"Wilson {1 - frame.threshold.alpha:.0%} interval where every row's score is 0 or 1):", "",
         f"| slice | rows | {base} | {av['name']} | effect | one-sided bounds | state |", "|---|---:|---|---|---:|---|---|"]
    for s in av["slices"]:
        flag = " ⚠" if s["state"] == "FAIL" else ""
        L.append(f"| {s['name']} | {s['n']} | {_score(scores[base].get(s['name']))} | {_score(scores[av['name']].get(s['name']))} | "
                 f"{_f(s['mean'], '+.4f')} | [{_f(s['lower'], '+.4f')}, {_f(s['upper'], '+.4f')}] | {s['state']}{flag} |")
    return L


def _score(info: Mapping[str, Any] | None) -> str:
    if not info:
        return "—"
    wilson = info.get("wilson")
    return _f(info.get("score"), ".3f") + (f" [{_f(wilson[0], '.3f')}, {_f(wilson[1], '.3f')}]" if wilson else "")


def _findings(frame: Frame, verdict: Mapping[str, Any]) -> list[str]:
    arms, base = verdict["arms"], frame.baseline.arm
    if not any(info["findings"] for info in arms.values()):
        return []
    cats = sorted({c for info in arms.values() for c in info["findings"]})
    L = ["## Failure categories (test, row×trial counts)", "", "| category | " + " | ".join(arms) + " |", "|---|" + "---:|" * len(arms)]
    for c in cats:
        L.append(f"| {c} | " + " | ".join(f"{arms[a]['findings'].get(c, 0)} ({arms[a]['findings'].get(c, 0) - arms[base]['findings'].get(c, 0):+d})" for a in arms) + " |")
    return [*L, ""]


def _cost(frame: Frame, verdict: Mapping[str, Any]) -> list[str]:
    if verdict.get("level") == "run":
        if all(info.get("cost_per_1k") is None for info in verdict["arms"].values()):
            return []  # a run-level script need not report a cost
        return ["## Cost view", "", *[f"- {a}: ${_f(info['cost_per_1k'] / 1000, '.4f')} per run for {frame.metric.primary} {_f(info['score'])}"
                                      for a, info in verdict["arms"].items() if info.get("cost_per_1k") is not None], ""]
    L = ["## Cost view", "", "Steady-state cost per 1,000 rows, averaged over every row and trial (not one call):", ""]
    for a, info in sorted(verdict["arms"].items(), key=lambda kv: (kv[1]["cost_per_1k"] or 0)):
        L.append(f"- {a}: ${_f(info['cost_per_1k'], '.4f')} per 1k rows for {frame.metric.primary} {_f(info['score'])}")
    return [*L, ""]


def _gap(gaps: Sequence[DevTestGap], records: Sequence[Record], verdict: Mapping[str, Any]) -> list[str]:
    """Rule 21: the iterated arm's dev score at its locked iteration against its test score."""
    if not gaps:
        return []
    L = ["## Dev–test gap (rule 21)", "",
         "Gap = dev − test, signed so that positive means dev looked better than test; an alarm when the arm tuned on dev "
         "shows a gap above 2× the noise floor. A fixed arm's gap is the sampling difference between the two row sets, "
         "shown for comparison.", "",
         "| arm | dev score (from) | test score | gap | 2× noise floor | alarm |", "|---|---|---:|---:|---:|---|"]
    for g in gaps:
        L.append(f"| {g.arm} | {_f(g.dev)} ({g.dev_source}) | {_f(g.test)} | {_f(g.gap, '+.4f')} | {_f(g.bar)} | "
                 f"{'⚠ overfitting alarm' if g.alarm else ('—' if not g.tuned else 'no')} |")
    best = _optimism(records, verdict)
    if best:
        L += ["", f"The locked dev score was kept among {best['n']} scored attempts: its expected best-of-N optimism is about "
              f"{_f(best['optimism'], '.4f')} (E[max of {best['n']} standard normals] × the paired SE {_f(best['se'], '.4f')} of one attempt), "
              f"so an honest dev estimate is about {_f(best['corrected'])}."]
    alarms = [g for g in gaps if g.alarm]
    L += ["", ("Overfitting alarm: " + "; ".join(g.sentence() for g in alarms) + ". The dev gains did not carry over to the sealed test set."
               if alarms else "No overfitting alarm.")]
    return [*L, ""]


def _optimism(records: Sequence[Record], verdict: Mapping[str, Any]) -> dict[str, Any] | None:
    """The best-of-N optimism of the locked iteration's dev score (docs/statistics.md §9)."""
    from statistics import NormalDist

    locked = verdict.get("locked_iteration") or 0
    scored = [r.data for r in attempts(list(records)) if isinstance(r.data.get("score"), (int, float)) and int(r.data.get("iteration") or 0) <= locked]
    mine = next((x for x in scored if x.get("iteration") == locked), None)
    ci = (mine or {}).get("ci") or [None, None]
    if mine is None or not all(isinstance(c, (int, float)) for c in ci):
        return None
    from gitera.core.stats import best_of_n_optimism

    th = verdict["decision"]["threshold"]
    se = (ci[1] - ci[0]) / (2 * NormalDist().inv_cdf(1 - float(th["alpha"]) / 2))
    optimism = best_of_n_optimism(len(scored), se)
    sign = 1.0 if th["direction"] == "higher" else -1.0
    return {"n": len(scored), "se": se, "optimism": optimism, "dev": mine["score"], "corrected": mine["score"] - sign * optimism}


def _next(verdict: Mapping[str, Any], gaps: Sequence[DevTestGap]) -> list[str]:
    d = verdict["decision"]
    nxt = []
    if d["decision"] == "underpowered":
        nxt.append(f"Run more: about {d.get('rows_needed') or 'more'} runs per arm would decide it (metric.trials); do so in a new experiment."
                   if verdict.get("level") == "run" else
                   f"Collect more rows: about {d.get('rows_needed') or 'more'} test rows would decide it; reseal fresh data in a new experiment.")
    for av in d["arms"]:
        for s in av["slices"]:
            if s["state"] == "FAIL":
                nxt.append(f"{av['name']} loses on slice {s['name']}: investigate that slice before a wider rollout.")
            elif s["state"] == "INCONCLUSIVE" and s.get("rows_needed"):
                nxt.append(f"{av['name']} on {s['name']} is inconclusive: about {s['rows_needed']} rows there would decide it.")
    nxt += [f"{g.arm} overfit its dev rows (rule 21): climb on fresher rows, or with fewer, more general changes per sprint." for g in gaps if g.alarm]
    if d["decision"] in ("ship", "ship_narrowly"):
        nxt.append(f"Monitor {d['arm']} in production on the registered metric; re-run this frame on fresh production rows after rollout.")
    if d["decision"] == "kill":
        nxt.append("Frame a different hypothesis; this change does not move the metric by the registered amount.")
    return ["## What to test next", "", *([f"- {x}" for x in nxt[:8]] or ["- Nothing pending."]), ""]


# --- run-level experiments (docs/run-level.md) -------------------------------------------------


def _run_arms(frame: Frame, verdict: Mapping[str, Any]) -> list[str]:
    extra = list(frame.metric.secondary)
    L = ["## Arms", "", "| arm | change | scored at | test score ± sd | runs | " + " | ".join(extra) + (" |" if extra else ""),
         "|---|---|---|---:|---|" + "---:|" * len(extra)]
    for a, info in verdict["arms"].items():
        role = " (baseline)" if a == frame.baseline.arm else ""
        runs = ", ".join(_f(x) for x in info.get("runs") or [])
        numbers = info.get("numbers") or {}
        L.append(f"| {a}{role} | {frame.arms[a].change} | {info['what']} | {_f(info['score'])} ± {_f(info['sd'])} | {runs} | "
                 + " | ".join(_f(numbers.get(n), ".4g") for n in extra) + (" |" if extra else ""))
    return [*L, ""]


def _run_registered(frame: Frame) -> list[str]:
    t, m = frame.threshold, frame.metric
    keep = (f"- Keep rule while iterating: the sequential rule, 1 to {frame.iterate.max_runs} runs per attempt, a gain beyond "
            f"max(min_delta, 2 × noise floor, SE) and significant at α/{frame.iterate.max_runs} per look." if frame.iterate else "")
    return ["## As registered", "",
            f"- Metric: **{m.primary}** ({m.direction} is better), one score per run of `{frame.eval.command}`; {m.trials} runs per arm "
            f"(seeds 0–{m.trials - 1}) on dev and on the sealed test files; secondary: {', '.join(m.secondary) or '—'}.",
            f"- Threshold: effect ≥ {t.effect:g} on the {'point estimate' if t.basis == 'point' else 'CI lower bound'}, "
            f"significant at α = {t.alpha:g} (Welch's t, Holm across arms).",
            *([keep] if keep else []),
            f"- Baseline as deployed: `{frame.baseline.ref}`" + (" (the iterated file as it was at the lock)." if frame.iterate and
                                                                   frame.baseline.file in frame.iterate.target else "."), ""]


def _runs(attempt: Mapping[str, Any]) -> str:
    """A run-level attempt's cost in runs (the sequential rule's)."""
    n = attempt.get("trials")
    return f", {n} run{'s' if n != 1 else ''}" if attempt.get("level") == "run" and isinstance(n, int) else ""
