"""gitera verify: the discipline self-audit from git alone (gitera/domain/audit.py), for CI on a pull request."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.core.errors import Exit
from gitera.domain.experiment import checked_out


def verify(tag: str | None, out: Output) -> int:
    """Exit 1 on a violation; an overfitting alarm (rule 21) is printed but is no violation:
    an honest overfit is a finding about the arm, not a breach of the process."""
    from gitera.domain.audit import audit, gap_alarms, source_copy_warnings
    from gitera.domain.records import trailers, verdict_doc

    repo = Repo.find()
    at = checked_out(repo, tag)
    exp = at.exp
    records = trailers(repo, exp, at.commit)
    checks = audit(repo, exp, records=records, rev=at.commit)
    alarms = gap_alarms(exp, records, verdict_doc(repo, exp, records))
    warnings = source_copy_warnings(exp)  # the work tree, not git: a warning, never a violation
    failed = [(c, d) for c, ok, d in checks if not ok]
    out.result(
        {"tag": exp.tag, "commit": at.commit, "where": at.where, "note": at.note, "ok": not failed,
         "checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks],
         "violations": [f"{c}: {d}" if d else c for c, d in failed], "alarms": alarms, "warnings": warnings},
        "\n".join([f"verify: {at.heading}", *([f"note: {at.note}"] if at.note else []),
                   *(f"{'ok  ' if ok else 'FAIL'} {c}{(': ' + d) if d else ''}" for c, ok, d in checks), *(f"ALARM {a}" for a in alarms),
                   *(f"WARN  {w}" for w in warnings)])
        + (f"\n{len(failed)} violation(s)." if failed else "\nAll checks pass."),
    )
    return Exit.FAILED if failed else Exit.OK
