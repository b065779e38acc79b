"""gitera report: a compact markdown summary of an experiment for a pull-request comment.

Everything comes from git, as in ``gitera verify``: the trailers, and the frame and verdict.json
as committed. A working-tree copy that was edited (or deleted) changes nothing in the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gitera.adapters.git import Repo
from gitera.adapters.history import Record
from gitera.adapters.output import Output
from gitera.domain.experiment import checked_out

if TYPE_CHECKING:
    from gitera.domain.logview import LogContext


def _f(v: Any, spec: str = ".4f") -> str:
    from gitera.domain.logview import number_cell

    return number_cell(v, spec)


def _ci(ci: Sequence[Any] | None) -> str:
    return f"[{_f(ci[0], '+.4f')}, {_f(ci[1], '+.4f')}]" if isinstance(ci, list) and len(ci) == 2 else "—"


def report(tag: str | None, fmt: str, out: Output) -> int:
    from gitera.domain.audit import audit, gap_alarms
    from gitera.domain.logview import log_context, render, summary
    from gitera.domain.records import commit_of, frame_at, trailers, verdict_doc

    repo = Repo.find()
    at = checked_out(repo, tag)  # what is checked out, as `gitera verify` reads it (a detached HEAD in CI)
    exp = at.exp
    records = trailers(repo, exp, at.commit)
    checks = audit(repo, exp, records=records, rev=at.commit)
    doc = verdict_doc(repo, exp, records)
    alarms = gap_alarms(exp, records, doc)
    violations = [f"{c}: {d}" if d else c for c, ok, d in checks if not ok]
    lock = commit_of(records, "Lock")
    frame = frame_at(repo, exp, lock) if lock else {}
    lines = [f"## gitera: `{exp.tag}`", ""]
    if frame.get("question"):
        lines += [f"> {frame['question']}", ""]
    opened = commit_of(records, "Verdict")
    budget = ((frame.get("iterate") or {}).get("budget") or {}).get("max_iterations")
    ctx = log_context(repo, at.commit, records, frame)
    if doc is not None and isinstance(doc.get("decision"), dict) and isinstance(doc.get("arms"), dict):
        lines += verdict_lines(doc)
        # the climb that led there stays in the report: iterations, gates and the conclusion's charts
        if any(r.kind == "Result" and r.data.get("kind") == "attempt" for r in records):
            lines += ["<details><summary>Iterations and gates on dev</summary>", "", str(render("md", exp.tag, records, budget, ctx)),
                      "", "</details>", ""]
        lines += chart_lines(repo, opened or at.commit, str(doc.get("conclusion") or ""), ctx)
    elif opened is not None:
        lines += [f"**Verdict:** recorded in {opened[:10]}, but its verdict.json cannot be read (see the verify line below).", ""]
    else:
        lines += ["No verdict yet: dev results only (the sealed test set is still closed).", ""]
        lines += dev_lines(records) + [str(render("md", exp.tag, records, budget, ctx)), ""]
    lines.append(f"**verify:** {'all checks pass' if not violations else str(len(violations)) + ' violation(s): ' + '; '.join(violations)}")
    lines += [f"**alarm:** {a}" for a in alarms]
    text = "\n".join(lines)
    out.result({"tag": exp.tag, "markdown": text, "summary": summary(records), "verdict": doc and doc.get("decision"),
                "verify_ok": not violations, "violations": violations, "alarms": alarms}, text)
    return 0


def chart_lines(repo: Repo, commit: str, conclusion: str, ctx: LogContext) -> list[str]:
    """Links to the conclusion and its charts as the verdict committed them (web links when the
    remote is on GitHub or GitLab, else repository paths)."""
    if not conclusion:
        return []
    files = sorted(p for p in repo.ls_tree(commit, [conclusion]) if p.endswith((".png", ".md")))
    if not files:
        return []

    def link(path: str) -> str:
        name = path.rsplit("/", 1)[-1]
        return f"[{name}]({ctx.web.blob(commit, path) if ctx.web else path})"

    return [f"**Conclusion and charts** ({commit[:10]}): " + " · ".join(link(p) for p in files), ""]


def dev_lines(records: Sequence[Record]) -> list[str]:
    """The latest dev run of each arm, from its Gitera-Result trailer."""
    runs = {r.data["arm"]: r.data for r in records if r.kind == "Result" and r.data.get("kind") == "run" and isinstance(r.data.get("arm"), str)}
    if not runs:
        return []
    lines = ["| arm | dev score ± sd | Δ vs baseline | 95% CI | $/1k rows | latency ms |", "|---|---:|---:|---|---:|---:|"]
    for arm, d in runs.items():
        role = " (baseline)" if d.get("status") == "baseline" else ""
        lines.append(f"| {arm}{role} | {_f(d.get('score'))} ± {_f(d.get('sd'))} | {_f(d.get('delta'), '+.4f')} | {_ci(d.get('ci'))} | "
                     f"{_f(d.get('cost_per_1k'))} | {_f(d.get('latency_ms'), '.1f')} |")
    return [*lines, ""]


def verdict_lines(doc: Mapping[str, Any]) -> list[str]:
    """The decision, and per arm: test Δ vs baseline ± CI, aggregate, slice flags, cost, latency."""
    from gitera.core.rules import narrow_scope

    d = doc.get("decision") or {}
    arms: Mapping[str, Any] = doc.get("arms") or {}
    where = f" to {narrow_scope(d.get('slices') or [])}" if d.get("decision") == "ship_narrowly" else ""
    lines = [f"**Verdict: {str(d.get('decision')).replace('_', ' ')}** {d.get('arm') or ''}{where} — "
             + (f"{doc.get('n_test')} runs per arm on the sealed test files" if doc.get("level") == "run" else f"{doc.get('n_test')} sealed test rows")
             + f"; see `{doc.get('conclusion')}/conclusion.md`", ""]
    weighted = " (severity-weighted)" if doc.get("severity_column") else ""
    lines += [f"| arm | scored at | test score | test Δ vs baseline{weighted} | 95% CI | aggregate | slice flags | $/1k rows | latency ms |",
              "|---|---|---:|---:|---|---|---|---:|---:|"]
    verdicts = {a.get("name"): a for a in d.get("arms") or []}
    for arm, info in arms.items():
        v = verdicts.get(arm)
        cells = ([_f(v.get("effect"), "+.4f"), _ci([v.get("ci_low"), v.get("ci_high")]), str(v.get("aggregate")), _flags(v)]
                 if v else ["—", "—", "baseline", "—"])
        lines.append(f"| {arm} | {info.get('what')} | {_f(info.get('score'))} | " + " | ".join(cells)
                     + f" | {_f(info.get('cost_per_1k'))} | {_f(info.get('latency_ms'), '.1f')} |")
    return [*lines, ""]


def _flags(v: Mapping[str, Any]) -> str:
    slices = v.get("slices") or []
    if not slices:
        return "—"
    bad = [f"⚠ {s['name']} {s['state']}" for s in slices if s.get("state") != "PASS"]
    return ", ".join(bad) if bad else f"all {len(slices)} pass"
