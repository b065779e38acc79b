"""The one-page conclusion written by the verdict: conclusion.md, data.json and the charts."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gitera.experiment import Experiment
from gitera.frame import Frame
from gitera.history import attempts, read


def _f(v: Any, spec: str = ".4f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else "—"


def _ci(low: Any, high: Any) -> str:
    return f"[{_f(low, '+.4f')}, {_f(high, '+.4f')}]"


def _slice_columns(verdict: Mapping[str, Any]) -> str:
    columns = verdict.get("slice_columns") or ([verdict["slice_column"]] if verdict.get("slice_column") else [])
    return ", ".join(f"`{c}`" for c in columns) or "the slice column"


def _dev_summary(exp: Experiment) -> dict[str, Any] | None:
    from gitera.commands.run import latest_run

    return latest_run(exp)


def chart_files(exp: Experiment, frame: Frame, verdict: Mapping[str, Any], doc_dir: str, dev: Mapping[str, Any] | None) -> dict[str, bytes | None]:
    from gitera import charts

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
    records = read(exp.repo, exp.branch, exp.tag)
    locked = verdict.get("locked_iteration")
    points = tuple(
        charts.AttemptPoint(iteration=int(r.data.get("iteration") or 0), score=r.data.get("score"), status=str(r.data.get("status")),
                            is_locked=r.data.get("iteration") == locked)
        for r in attempts(records)
    )
    gates = tuple(charts.GateMark(after_iteration=int(r.data.get("after_iteration") or 0), outcome=str(r.data.get("outcome")))
                  for r in records if r.kind == "Gate")
    baseline_dev = dev["arms"][base]["score"] if dev else None
    data = charts.ChartData(
        metric=frame.metric.primary, arms=bars, threshold_score=float(arms[base]["score"]) + sign * frame.threshold.effect,
        forest=tuple(forest), threshold=frame.threshold.effect, loss_floor=frame.threshold.slice_loss_floor, costs=costs,
        attempts=points, gates=gates, baseline_dev_score=baseline_dev, noise_floor=dev.get("noise_floor") if dev else None,
        higher_is_better=frame.metric.direction == "higher",
    )
    files: dict[str, bytes | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _, (png, svg) in charts.render_all(data, tmp).items():
            for p in (png, svg):
                files[f"{doc_dir}/{Path(p).name}"] = Path(p).read_bytes()
    return files


def build(exp: Experiment, frame: Frame, verdict: Mapping[str, Any], doc_dir: str) -> dict[str, bytes | None]:
    dev = _dev_summary(exp)
    files = chart_files(exp, frame, verdict, doc_dir, dev)
    charts = sorted(Path(p).name for p in files if p.endswith(".png"))
    from gitera.verify import audit

    checks = audit(exp.repo, exp, pending_verdict=True)
    md = render_markdown(exp, frame, verdict, dev, charts, checks)
    files[f"{doc_dir}/conclusion.md"] = md.encode()
    data = {k: v for k, v in verdict.items() if k not in ("key", "row_ids")}
    data["dev"] = {k: v for k, v in (dev or {}).items() if k != "row_ids"}
    data["audit"] = [{"check": c, "ok": ok, "detail": detail} for c, ok, detail in checks]
    files[f"{doc_dir}/data.json"] = (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode()
    return files


def render_markdown(exp: Experiment, frame: Frame, verdict: Mapping[str, Any], dev: Mapping[str, Any] | None,
                    charts: Sequence[str], checks: Sequence[tuple[str, bool, str]]) -> str:
    from gitera.commands.verdict import decision_sentence

    d = verdict["decision"]
    arms = verdict["arms"]
    base = frame.baseline.arm
    L: list[str] = [f"# {exp.tag}: {d['decision'].replace('_', ' ')}", "", f"**{decision_sentence(d, frame)}**", ""]
    L += ["## Question", "", f"> {frame.question}", "", f"Hypothesis: {frame.hypothesis}", ""]
    L += ["## Arms", "", "| arm | change | scored at | test score ± sd | cost per 1k rows | latency ms |", "|---|---|---|---:|---:|---:|"]
    for a, info in arms.items():
        role = " (baseline)" if a == base else ""
        L.append(f"| {a}{role} | {frame.arms[a].change} | {info['what']} | {_f(info['score'])} ± {_f(info['sd'])} | "
                 f"{_f(info['cost_per_1k'], '.4f')} | {_f(info['latency_ms'], '.2f')} |")
    t = frame.threshold
    L += ["", "## As registered", "",
          f"- Metric: **{frame.metric.primary}** ({frame.metric.direction} is better), {frame.metric.trials} trials per row; secondary: {', '.join(frame.metric.secondary) or '—'}.",
          f"- Threshold: effect ≥ {t.effect:g} on the {'point estimate' if t.basis == 'point' else 'CI lower bound'}, significant at α = {t.alpha:g} after Holm.",
          f"- Slice loss floor: {t.slice_loss_floor:g} (one-sided lower bound per slice of {_slice_columns(verdict)}).",
          *([f"- Severity: the effect is severity-weighted by column `{verdict['severity_column']}`; the unweighted effect must clear "
             "the threshold too (rule 16); slices are judged unweighted."] if verdict.get("severity_column") else []),
          f"- Baseline as deployed: `{frame.baseline.ref}`.", ""]
    if dev:
        L += ["## Dev results (not the evidence: the test set decides)", "", "| arm | dev score ± sd | Δ vs baseline | 95% CI |", "|---|---:|---:|---|"]
        for a, info in dev["arms"].items():
            ci = info.get("ci")
            L.append(f"| {a} | {_f(info['score'])} ± {_f(info['sd'])} | {_f(info.get('delta'), '+.4f')} | "
                     f"{('[' + _f(ci[0], '+.3f') + ', ' + _f(ci[1], '+.3f') + ']') if ci else ''} |")
        L += ["", f"Noise floor (baseline trial-to-trial sd on dev): {_f(dev.get('noise_floor'))}.", ""]
    atts = attempts(read(exp.repo, exp.branch, exp.tag))
    if atts:
        locked = verdict.get("locked_iteration")
        L += ["## Iterations", ""]
        for r in atts:
            x = r.data
            mark = " **← locked for the verdict (latest gate-passed)**" if x.get("iteration") == locked else ""
            L.append(f"- **#{x.get('iteration')}** (sprint {x.get('sprint')}, `{r.commit[:10]}`): {x.get('hypothesis')} — "
                     f"{x.get('status')}, {x.get('outcome')}; dev {_f(x.get('score'))} (Δ {_f(x.get('delta'), '+.4f')} vs best). {x.get('reason')}{mark}")
        L.append("")
    weighted = bool(verdict.get("severity_column"))
    L += ["## Test results", "", f"{verdict['n_test']} sealed test rows, opened once by this verdict.", "",
          "| arm | effect vs baseline" + (" (weighted) | unweighted effect | unweighted 95% CI" if weighted else "") + " | 95% CI | p (Holm) | aggregate |",
          "|---|---:|" + ("---:|---|" if weighted else "") + "---|---:|---|"]
    for av in d["arms"]:
        u = av.get("unweighted") or {}
        extra = f" {_f(u.get('effect'), '+.4f')} | {_ci(u.get('ci_low'), u.get('ci_high'))} |" if weighted else ""
        L.append(f"| {av['name']} | {_f(av['effect'], '+.4f')} |{extra} {_ci(av['ci_low'], av['ci_high'])} | {_f(av['p_holm'], '.3g')} | {av['aggregate']} |")
    for av in d["arms"]:
        if av["slices"]:
            L += ["", f"Slices of **{av['name']}** (non-inferiority at −{t.slice_loss_floor:g}):", "",
                  "| slice | rows | effect | one-sided bounds | state |", "|---|---:|---:|---|---|"]
            for s in av["slices"]:
                flag = " ⚠" if s["state"] == "FAIL" else ""
                L.append(f"| {s['name']} | {s['n']} | {_f(s['mean'], '+.4f')} | [{_f(s['lower'], '+.4f')}, {_f(s['upper'], '+.4f')}] | {s['state']}{flag} |")
    if any(info["findings"] for info in arms.values()):
        cats = sorted({c for info in arms.values() for c in info["findings"]})
        L += ["", "## Failure categories (test, row×trial counts)", "", "| category | " + " | ".join(arms) + " |", "|---|" + "---:|" * len(arms)]
        for c in cats:
            L.append(f"| {c} | " + " | ".join(f"{arms[a]['findings'].get(c, 0)} ({arms[a]['findings'].get(c, 0) - arms[base]['findings'].get(c, 0):+d})" for a in arms) + " |")
    L += ["", "## Cost view", "", "Steady-state cost per 1,000 rows, averaged over every row and trial (not one call):", ""]
    for a, info in sorted(arms.items(), key=lambda kv: (kv[1]["cost_per_1k"] or 0)):
        L.append(f"- {a}: ${_f(info['cost_per_1k'], '.4f')} per 1k rows for {frame.metric.primary} {_f(info['score'])}")
    if dev:
        nf = dev.get("noise_floor") or 0.0
        gaps = [(a, dev["arms"][a]["score"] - arms[a]["score"]) for a in arms if a in dev["arms"] and dev["arms"][a]["score"] is not None]
        alarms = [f"{a} (dev − test {g:+.4f})" for a, g in gaps if abs(g) > max(2 * nf, 0.02)]
        L += ["", "## Dev–test gap", "",
              ("Overfitting alarm: " + ", ".join(alarms) + " — larger than 2× the noise floor." if alarms
               else "Every arm's dev and test scores agree within 2× the noise floor (or 0.02).")]
    L += ["", "## What to test next", ""]
    nxt = []
    if d["decision"] == "underpowered":
        nxt.append(f"Collect more rows: about {d.get('rows_needed') or 'more'} test rows would decide it; reseal fresh data in a new experiment.")
    for av in d["arms"]:
        for s in av["slices"]:
            if s["state"] == "FAIL":
                nxt.append(f"{av['name']} loses on slice {s['name']}: investigate that slice before a wider rollout.")
            elif s["state"] == "INCONCLUSIVE" and s.get("rows_needed"):
                nxt.append(f"{av['name']} on {s['name']} is inconclusive: about {s['rows_needed']} rows there would decide it.")
    if d["decision"] in ("ship", "ship_narrowly"):
        nxt.append(f"Monitor {d['arm']} in production on the registered metric; re-run this frame on fresh production rows after rollout.")
    if d["decision"] == "kill":
        nxt.append("Frame a different hypothesis; this change does not move the metric by the registered amount.")
    L += [f"- {x}" for x in nxt[:8]] or ["- Nothing pending."]
    L += ["", "## Charts", ""] + [f"![{c[:-4]}]({c})" for c in charts]
    L += ["", "## Discipline self-audit", "", "Recomputed from git alone by `gitera verify`:", ""]
    L += [f"- [{'x' if ok else ' '}] {check}{(' — ' + detail) if detail else ''}" for check, ok, detail in checks]
    L += ["", f"The test numbers above are the only evidence cited. Re-check this verdict with `gitera verify` (key {'released in this commit' if verdict.get('key_released') else 'kept by its custodian: --keep-key'})."]
    return "\n".join(L) + "\n"
