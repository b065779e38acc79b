"""The experiment's history as `gitera log` and `gitera report` show it: table, tsv, jsonl, md, json.

Everything is rendered from the trailer records alone (gitera.adapters.history).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.history import Record, attempts
from gitera.core.weburl import WebRepo, web_repo

FORMATS = ("table", "tsv", "jsonl", "md", "json", "results-tsv")  # results-tsv: gitera.domain.imported


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


# The table lines of Gitera-Resume, -Abandon, -Import and -Opening records: kind -> (status column, what happened)
EXTRA_LINES: dict[str, tuple[Any, Any]] = {
    "Resume": ("resumed", lambda d: f"after: {d.get('after')}"),
    "Abandon": ("abandoned", lambda d: f"{d.get('reason')} (kept on {d.get('branch')}; nothing released)"),
    "Import": ("imported", lambda d: f"{d.get('rows')} rows of {d.get('source')}: unscored history, never evidence"),
    # the verdict's opening of the test set (docs/verdict.md), and its abort when it failed after it
    "Opening": (lambda d: "aborted" if d.get("status") == "aborted" else "opened", lambda d: (f"the verdict failed after opening the test set: {d.get('reason')}" if d.get("status") == "aborted"
                                     else "the sealed test set is opened (once)")),
}


def _num(v: Any, spec: str = ".4f") -> str:
    return number_cell(v, spec)  # "—" for anything but a finite-size number (a hand-written trailer may hold anything)


# --- the `dvc exp show` view: attempts × (metric, secondaries, params or the target change) --------


@dataclass(frozen=True)
class LogContext:
    """What the table and md views show beside the trailers (gitera.domain.logcontext builds it)."""

    metric: str = "score"
    higher: bool = True
    secondary: tuple[str, ...] = ("cost_usd", "latency_ms")
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # arm -> declared params
    changes: Mapping[str, str] = field(default_factory=dict)  # attempt commit -> "file +a −d"
    web: WebRepo | None = None  # commit links
    chart: str | None = None  # where the progression chart is, to link from md


def log_context(repo: Repo, rev: str, records: Sequence[Record], frame: Mapping[str, Any], chart: str | None = None) -> LogContext:
    """The table and md views' extras for an experiment: its metric names and arms' params from the
    frame (as plain data), the target-file change of each attempt (one `git log --numstat`), and
    commit links from the remote's web address."""
    metric, arms, iterate = (_mapping(frame.get(k)) for k in ("metric", "arms", "iterate"))
    primary = _mapping(metric.get("primary"))
    secondary = metric.get("secondary")
    targets = [str(t) for t in iterate.get("target") or [] if isinstance(t, str)]
    url = repo.remote_url()
    return LogContext(
        metric=str(primary.get("name") or "score"), higher=primary.get("direction") != "lower",
        secondary=tuple(str(_mapping(x).get("name")) if isinstance(x, Mapping) else str(x) for x in secondary)  # run level: {name, pattern}
        if isinstance(secondary, list) else LogContext.secondary,
        params={str(k): dict(v.get("params") or {}) for k, v in arms.items() if isinstance(v, Mapping) and isinstance(v.get("params") or {}, Mapping)},
        changes=target_changes(repo, rev, {a.commit for a in attempts(list(records))}, targets),
        web=web_repo(url) if url else None, chart=chart,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def target_changes(repo: Repo, rev: str, commits: set[str], targets: Sequence[str]) -> dict[str, str]:
    """commit -> "file +added −deleted, …" of the target files, for the given attempt commits."""
    if not commits or not targets:
        return {}
    out = repo.git("log", "--format=%x01%H", "--numstat", rev, "--", *targets)
    changes: dict[str, str] = {}
    for block in out.split("\x01")[1:]:
        commit, _, rest = block.partition("\n")
        if commit not in commits:
            continue
        parts = []
        for line in rest.splitlines():
            added, _, tail = line.partition("\t")
            deleted, _, path = tail.partition("\t")
            if path:
                parts.append(f"{path} binary" if added == "-" else f"{path} +{added} −{deleted}")
        changes[commit] = ", ".join(parts) or "—"
    return changes


# a secondary's column: header, the trailer field holding it, its format
_SECONDARY = {"cost_usd": ("$/1k rows", "cost_per_1k", ".4f"), "latency_ms": ("latency ms", "latency_ms", ".1f")}


def _secondaries(ctx: LogContext) -> list[tuple[str, str, str]]:
    return [_SECONDARY.get(name, (name, name, ".4f")) for name in ctx.secondary]


def _sec(d: Mapping[str, Any], field_name: str) -> Any:
    """A secondary metric's value: a field of the trailer, or (run level) the mean in its `secondary` object."""
    value = d.get(field_name)
    secondary = d.get("secondary")
    return value if value is not None or not isinstance(secondary, dict) else secondary.get(field_name)


def _params(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}" for k, v in values.items()) or "—"


def _change(ctx: LogContext, r: Record) -> str:
    """The params of a run's arm, or the change an attempt made to the target files."""
    if r.data.get("kind") == "run":
        return _params(ctx.params.get(str(r.data.get("arm")), {}))
    return ctx.changes.get(r.commit, "—")


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None]) -> str:
    """One character per value, scaled between the smallest and the largest (unscored: ·)."""
    scored = [v for v in values if v is not None]
    if not scored:
        return ""
    lo, hi = min(scored), max(scored)
    span = hi - lo
    return "".join("·" if v is None else BARS[0 if span == 0 else min(len(BARS) - 1, int((v - lo) / span * len(BARS)))] for v in values)


def _score(d: Mapping[str, Any]) -> float | None:
    return _finite(d.get("score"))


def _finite(v: Any) -> float | None:
    """A trailer's number as a finite float, else None (NaN, a 400-digit integer, anything hand-written)."""
    if number_cell(v, "g") == "—":
        return None
    return float(v) if math.isfinite(float(v)) else None


def _table(records: Sequence[Record], ctx: LogContext) -> str:
    secs = _secondaries(ctx)
    head = ["exp", "commit", "status", ctx.metric, "Δ vs best", *(h for h, _, _ in secs), "params / change", "hypothesis"]
    rows: list[list[str]] = []
    for r in records:
        d = r.data
        if r.kind == "Result" and d.get("kind") in ("run", "attempt"):
            name = _cell(d.get("arm")) if d.get("kind") == "run" else f"#{_cell(d.get('iteration'))} s{_cell(d.get('sprint'))}"
            rows.append([name, r.commit[:10], _cell(d.get("status")), _num(d.get("score")), _num(d.get("delta"), "+.4f"),
                         *(_num(_sec(d, f), spec) for _, f, spec in secs), _change(ctx, r),
                         _cell(d.get("hypothesis")) + _runs(d) if d.get("kind") == "attempt" else ""])
        elif r.kind == "Gate":
            reasons = d.get("reasons")
            rows.append([f"gate s{_cell(d.get('sprint'))}", r.commit[:10], _cell(d.get("outcome")), "", "", *("" for _ in secs), "",
                         "; ".join(_cell(x) for x in reasons) if isinstance(reasons, list) else _cell(reasons)])
        elif r.kind == "Stop":
            rows.append(["stop", r.commit[:10], "stopped", "", "", *("" for _ in secs), "", _cell(d.get("reason"))])
        elif r.kind in EXTRA_LINES:  # resume, abandon, import, the verdict's opening
            status, text = EXTRA_LINES[r.kind]
            status = status(d) if callable(status) else status
            rows.append([r.kind.lower(), r.commit[:10], _cell(status), "", "", *("" for _ in secs), "", _cell(text(d))])
    numeric = {3, 4, *range(5, 5 + len(secs))}
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head) - 1)]
    return "\n".join(("  ".join(c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(x[:-1])) + "  " + x[-1]).rstrip()
                      for x in [head, *rows])


def _runs(d: Mapping[str, Any]) -> str:
    """A run-level attempt's cost under the sequential keep rule (docs/run-level.md)."""
    n = d.get("trials")
    return f"  [{_cell(n)} run{'s' if n != 1 else ''}]" if d.get("level") == "run" else ""


def _commit_cell(ctx: LogContext, commit: str) -> str:
    return f"[`{commit[:10]}`]({ctx.web.commit(commit)})" if ctx.web else f"`{commit[:10]}`"


def _md_progress(atts: Sequence[Record], ctx: LogContext) -> list[str]:
    """A sparkline of the iterated arm's dev score: its state before attempt 1, then each attempt."""
    start = atts[0].data.get("best_score")
    start = _finite(start)
    scores = [start, *(_score(a.data) for a in atts)]
    line = sparkline(scores)
    if not line:
        return []
    kept = [v for v in (start, *(_score(a.data) for a in atts if a.data.get("status") == "keep")) if v is not None]
    first = next(v for v in scores if v is not None)
    best = f" → best kept {(max if ctx.higher else min)(kept):.4f}" if kept else ""
    text = (f"Progression of {ctx.metric}: `{line}` (before attempt 1, then each of {len(atts)} attempts; "
            f"{first:.4f}{best}; · = not scored)")
    if ctx.chart:
        text += f" — [progression chart]({ctx.chart})"
    return ["", text]


def _md_attempts(atts: Sequence[Record], ctx: LogContext) -> list[str]:
    secs = _secondaries(ctx)
    lines = ["| # | sprint | commit | " + ctx.metric.replace("|", "\\|") + " | Δ vs best | " + "".join(f"{h} | " for h, _, _ in secs)
             + "change | status | hypothesis |",
             "|---:|---:|---|---:|---:|" + "---:|" * len(secs) + "---|---|---|"]
    for a in atts:
        d = a.data
        hyp = (_cell(d.get("hypothesis")) + _runs(d)).replace("|", "\\|")
        lines.append(f"| {_cell(d.get('iteration'))} | {_cell(d.get('sprint'))} | {_commit_cell(ctx, a.commit)} | {_num(d.get('score'))} | "
                     f"{_num(d.get('delta'), '+.4f')} | " + "".join(f"{_num(_sec(d, f), spec)} | " for _, f, spec in secs)
                     + f"{_change(ctx, a).replace('|', '')} | {_cell(d.get('status'))} | {hyp} |")
    return lines


def render(fmt: str, tag: str, records: Sequence[Record], max_iterations: int | None,
           ctx: LogContext | None = None) -> str | dict[str, Any]:
    ctx = ctx or LogContext()
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
        ]
        if atts:
            lines += ["", *_md_attempts(atts, ctx), *_md_progress(atts, ctx)]
        gates = [r for r in records if r.kind == "Gate"]
        for g in gates:
            lines.append(f"\nGate after sprint {_cell(g.data.get('sprint'))} ({_commit_cell(ctx, g.commit)}): **{_cell(g.data.get('outcome'))}** "
                         f"(locked iteration {_cell(g.data.get('locked_iteration'))})")
        return "\n".join(lines)
    return _table(records, ctx)
