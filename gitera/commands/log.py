"""gitera log: the experiment's attempts from git trailers alone, as table, tsv, jsonl, md or json."""

from __future__ import annotations

import json
from pathlib import Path

from gitera.adapters.git import Repo
from gitera.adapters.history import read
from gitera.adapters.output import Output
from gitera.core.errors import UsageError
from gitera.domain.experiment import resolve
from gitera.domain.logview import FORMATS, render


def log(tag: str | None, fmt: str, as_json: bool, chart: Path | None, out: Output) -> int:
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    repo = Repo.find()
    exp = resolve(repo, tag)
    records = read(repo, exp.branch, exp.tag)
    max_iterations, metric, higher = None, "score", True
    try:
        frame = exp.peek_frame()
        max_iterations = frame.iterate.budget.max_iterations if frame.iterate else None
        metric, higher = frame.metric.primary, frame.metric.direction == "higher"
    except Exception:  # noqa: BLE001 - the log reads git alone; a broken frame must not hide history
        pass
    if as_json:
        fmt = "json"
    if fmt == "results-tsv":  # autoresearch's results.tsv (imported history first)
        from gitera.domain.imported import imported_rows, results_tsv

        arm = None
        try:
            it = exp.peek_frame().iterate
            arm = it.arm if it else None
        except Exception:  # noqa: BLE001 - as above: the history is read from git alone
            pass
        out.stdout.write(results_tsv(records, imported_rows(repo, exp, records), metric, arm))
        return 0
    ctx = None
    if fmt in ("table", "md"):
        from gitera.domain.logview import log_context
        from gitera.domain.records import frame_at

        ctx = log_context(repo, f"refs/heads/{exp.branch}", records, frame_at(repo, exp, f"refs/heads/{exp.branch}"),
                          chart=str(chart) if chart is not None else None)
    rendered = render(fmt, exp.tag, records, max_iterations, ctx)
    if chart is not None:
        from gitera.domain.progression import progression_chart

        if not any(r.kind == "Result" and r.data.get("kind") == "attempt" for r in records):
            raise UsageError(f"experiment {exp.tag} has no iterate attempt yet, so there is no progression to draw; "
                             "run `gitera iterate -m HYPOTHESIS` first.")

        progression_chart(records, chart, metric, higher)
    if isinstance(rendered, dict):
        print(json.dumps(rendered, indent=2, sort_keys=True, default=str), file=out.stdout)
    else:
        print(rendered, file=out.stdout)
    return 0
