"""gitera verify: the self-audit from git alone; gitera report: a markdown summary for a pull request."""

from __future__ import annotations

import json
from typing import Any

from gitera.errors import Exit
from gitera.experiment import resolve
from gitera.git import Repo
from gitera.output import Output


def verify(tag: str | None, out: Output) -> int:
    """Exit 1 on a violation; an overfitting alarm (rule 21) is printed but is no violation:
    an honest overfit is a finding about the arm, not a breach of the process."""
    from gitera.verify import audit, gap_alarms

    repo = Repo.find()
    exp = resolve(repo, tag)
    checks = audit(repo, exp)
    alarms = gap_alarms(repo, exp)
    failed = [(c, d) for c, ok, d in checks if not ok]
    out.result(
        {"tag": exp.tag, "ok": not failed, "checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks],
         "violations": [f"{c}: {d}" if d else c for c, d in failed], "alarms": alarms},
        "\n".join([*(f"{'ok  ' if ok else 'FAIL'} {c}{(': ' + d) if d else ''}" for c, ok, d in checks), *(f"ALARM {a}" for a in alarms)])
        + (f"\n{len(failed)} violation(s)." if failed else "\nAll checks pass."),
    )
    return Exit.FAILED if failed else Exit.OK


def report(tag: str | None, fmt: str, out: Output) -> int:
    from gitera.commands.log import render, summary
    from gitera.history import read
    from gitera.verify import audit

    repo = Repo.find()
    exp = resolve(repo, tag)
    records = read(repo, exp.branch, exp.tag)
    checks = audit(repo, exp)
    failed = [c for c, ok, _ in checks if not ok]
    s = summary(records)
    lines = [f"## gitera: `{exp.tag}`", ""]
    try:
        frame = exp.load_frame()
        lines += [f"> {frame.question}", ""]
    except Exception:  # noqa: BLE001 - the report reads git alone
        frame = None
    verdict = next((r.data for r in records if r.kind == "Verdict"), None)
    if verdict:
        doc: dict[str, Any] = json.loads((repo.root / exp.rel("verdict.json")).read_text()) if (repo.root / exp.rel("verdict.json")).exists() else {}
        lines += [f"**Verdict: {verdict['decision'].replace('_', ' ')}** {verdict.get('arm') or ''} "
                  f"{('(' + ', '.join(verdict.get('slices') or []) + ')') if verdict.get('slices') else ''} — see `{verdict.get('conclusion')}`", ""]
        d = doc.get("decision", {})
        if d:
            lines += ["| arm | test Δ vs baseline | 95% CI | aggregate | slices failing | $/1k rows | latency ms |", "|---|---:|---|---|---|---:|---:|"]
            for a in d.get("arms", []):
                fails = [sl["name"] for sl in a.get("slices", []) if sl["state"] == "FAIL"]
                info = doc["arms"].get(a["name"], {})
                lines.append(f"| {a['name']} | {a['effect']:+.4f} | [{a['ci_low']:+.4f}, {a['ci_high']:+.4f}] | {a['aggregate']} | "
                             f"{', '.join(fails) or '—'} | {info.get('cost_per_1k')} | {info.get('latency_ms')} |")
            lines.append("")
    else:
        lines += ["No verdict yet: dev results only (the sealed test set is still closed).", ""]
        md = render("md", exp.tag, records, frame.iterate.budget.max_iterations if frame and frame.iterate else None)
        lines += [str(md), ""]
    lines.append(f"**verify:** {'all checks pass' if not failed else str(len(failed)) + ' violation(s): ' + '; '.join(failed)}")
    text = "\n".join(lines)
    out.result({"tag": exp.tag, "markdown": text, "summary": s, "verify_ok": not failed}, text)
    return 0
