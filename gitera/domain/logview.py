"""The experiment's history as `gitera log` and `gitera report` show it: table, tsv, jsonl, md, json.

Everything is rendered from the trailer records alone (gitera.adapters.history).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gitera.adapters.history import Record, attempts

FORMATS = ("table", "tsv", "jsonl", "md", "json", "results-tsv")  # results-tsv: gitera.domain.imported (loopctl)


TSV_COLUMNS = ("commit", "metric", "guard", "status", "description")


RESULT_FIELDS = ("iteration", "sprint", "arm", "score", "sd", "delta", "ci", "threshold", "best_score", "status",
                 "reason", "outcome", "hypothesis", "mode", "gains", "weights", "confirm", "cost_per_1k", "latency_ms",
                 "spent_usd", "n", "trials", "rows", "frame", "level", "runs", "secondary")  # level, runs: run-level experiments (docs/run-level.md)


def summary(records: Sequence[Record]) -> dict[str, Any]:
    runs = [r for r in records if r.kind == "Result" and r.data.get("kind") == "run"]
    base = next((r.data for r in reversed(runs) if r.data.get("status") == "baseline"), None)
    atts = attempts(list(records))
    kept = [a for a in atts if a.data.get("status") == "keep"]
    iterated = next((r.data for r in reversed(runs) if r.data.get("arm") == (atts[0].data.get("arm") if atts else None)), None)
    best = kept[-1].data if kept else iterated
    stops = [r.data for r in records if r.kind == "Stop"]
    gates = [r.data for r in records if r.kind == "Gate"]
    counts = {s: sum(1 for a in atts if a.data.get("status") == s) for s in ("keep", "discard", "crash", "timeout", "guard_fail")}
    return {
        "baseline": {"arm": base.get("arm"), "score": base.get("score"), "noise_floor": base.get("noise_floor")} if base else None,
        "best": {"iteration": best.get("iteration", 0), "score": best.get("score"), "arm": best.get("arm")} if best else None,
        "attempts": len(atts),
        "counts": counts,
        "gates": [{"sprint": g.get("sprint"), "outcome": g.get("outcome"), "locked_iteration": g.get("locked_iteration")} for g in gates],
        "stop": stops[-1] if stops else None,
    }


def result_line(r: Record) -> dict[str, Any]:
    return {"type": "result", "commit": r.commit, **{k: r.data.get(k) for k in RESULT_FIELDS}}


def tsv_row(a: Record) -> list[str]:
    """The tsv columns of one attempt (docs/iterate.md, "History": each column defined there)."""
    d = a.data
    score = d.get("score")
    scored = number_cell(score, ".6f") != "—"
    guard = "fail" if d.get("status") == "guard_fail" else "ok" if scored else ""
    return [a.commit[:12], number_cell(score, ".6f") if scored else "", guard, _cell(d.get("status")), _cell(d.get("hypothesis"))]


def number_cell(v: Any, spec: str = ".4f") -> str:
    """A trailer's number formatted, or "—" for anything else (a hand-written record may hold anything)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "—"
    try:
        return format(float(v), spec)
    except OverflowError:  # a hand-written trailer's 400-digit integer
        return "—"


def _cell(v: Any) -> str:
    """Any trailer value as one short line of text: a hand-written record may hold anything."""
    text = v if isinstance(v, str) else "" if v is None else json.dumps(v, default=str)[:80]
    return " ".join(text.split())


# --- loopctl: the table lines of Gitera-Resume, Gitera-Abandon and Gitera-Import records ---
EXTRA_LINES = {
    "Resume": lambda d: f"{'resumed':<10} after: {d.get('after')}",
    "Abandon": lambda d: f"{'abandoned':<10} {d.get('reason')} (kept on {d.get('branch')}; nothing released)",
    "Import": lambda d: f"{'imported':<10} {d.get('rows')} rows of {d.get('source')}: unscored history, never evidence",
}


def render(fmt: str, tag: str, records: Sequence[Record], max_iterations: int | None) -> str | dict[str, Any]:
    atts = attempts(list(records))
    s = summary(records)
    if fmt == "tsv":
        return "\n".join(["\t".join(TSV_COLUMNS), *("\t".join(tsv_row(a)) for a in atts)])
    if fmt == "jsonl":
        header = {"type": "config", "tag": tag, "baseline": s["baseline"], "max_iterations": max_iterations, "fields": list(RESULT_FIELDS)}
        # each result line is the committed trailer object itself, prefixed with its type and commit:
        # no re-encoding, so 10,000 attempts print in a few milliseconds
        lines = [json.dumps(header, sort_keys=True, ensure_ascii=False)]
        lines += [f'{{"type":"result","commit":"{a.commit}",{a.raw[1:]}' if a.raw.startswith("{") and a.raw != "{}" else
                  json.dumps(result_line(a), sort_keys=True, ensure_ascii=False) for a in atts]
        return "\n".join(lines)
    if fmt == "json":
        return {"tag": tag, "summary": s, "attempts": [result_line(a) for a in atts],
                "records": [{"commit": r.commit, "time": r.time, "kind": r.kind, "data": r.data} for r in records]}
    if fmt == "md":
        b, best, c = s["baseline"] or {}, s["best"] or {}, s["counts"]
        lines = [
            f"### gitera experiment `{tag}`",
            "",
            "| baseline | current best | attempts | kept | discarded | crashed | guard failures |",
            "|---|---|---|---|---|---|---|",
            f"| {b.get('arm', '—')} {number_cell(b.get('score'))} (noise ±{number_cell(b.get('noise_floor'))}) | "
            f"#{best.get('iteration', 0)} {number_cell(best.get('score'))} | {s['attempts']}/{max_iterations or '—'} | {c['keep']} | "
            f"{c['discard']} | {c['crash'] + c['timeout']} | {c['guard_fail']} |",
            "",
            "| # | sprint | score | Δ vs best | status | hypothesis |",
            "|---:|---:|---:|---:|---|---|",
        ]
        for a in atts:
            d = a.data
            hyp = _cell(d.get("hypothesis")).replace("|", "\\|")
            lines.append(f"| {_cell(d.get('iteration'))} | {_cell(d.get('sprint'))} | {number_cell(d.get('score'))} | {number_cell(d.get('delta'), '+.4f')} | "
                         f"{_cell(d.get('status'))} | {hyp} |")
        for g in s["gates"]:
            lines.append(f"\nGate after sprint {_cell(g['sprint'])}: **{_cell(g['outcome'])}** (locked iteration {_cell(g['locked_iteration'])})")
        return "\n".join(lines)
    lines = [f"{'#':>3} {'sprint':>6} {'commit':<10} {'score':>8} {'Δ vs best':>10} {'status':<10} hypothesis"]
    for r in records:
        d = r.data
        if r.kind == "Result" and d.get("kind") == "run":
            lines.append(f"{'run':>3} {'':>6} {r.commit[:10]:<10} {number_cell(d.get('score')):>8} {number_cell(d.get('delta'), '+.4f'):>10} {_cell(d.get('status')):<10} "
                         f"arm {_cell(d.get('arm'))}")
        elif r.kind == "Result" and d.get("kind") == "attempt":
            trials = d.get("trials")
            runs = f"  [{_cell(trials)} run{'' if trials == 1 else 's'}]" if d.get("level") == "run" else ""  # the sequential rule's cost
            lines.append(f"{_cell(d.get('iteration')):>3} {_cell(d.get('sprint')):>6} {r.commit[:10]:<10} {number_cell(d.get('score')):>8} "
                         f"{number_cell(d.get('delta'), '+.4f'):>10} {_cell(d.get('status')):<10} {_cell(d.get('hypothesis'))}{runs}")
        elif r.kind == "Gate":
            reasons = d.get("reasons")
            why = "; ".join(_cell(x) for x in reasons) if isinstance(reasons, list) else _cell(reasons)
            lines.append(f"{'':>3} {'gate':>6} {r.commit[:10]:<10} {'':>8} {'':>10} {_cell(d.get('outcome')):<10} {why}")
        elif r.kind == "Stop":
            lines.append(f"{'':>3} {'stop':>6} {r.commit[:10]:<10} {'':>8} {'':>10} {'stopped':<10} {_cell(d.get('reason'))}")
        elif r.kind in EXTRA_LINES:  # loopctl: resume, abandon, import
            lines.append(f"{'':>3} {r.kind.lower():>6} {r.commit[:10]:<10} {'':>8} {'':>10} {EXTRA_LINES[r.kind](d)}")
    return "\n".join(lines)
