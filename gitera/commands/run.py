"""gitera run: baseline first, then every arm, on all dev rows with the frame's trials (one commit)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.core.errors import Exit
from gitera.core.frame import Frame
from gitera.domain.experiment import require_intact, require_on_branch, resolve
from gitera.domain.runs import record_run
from gitera.domain.scoring import require_open


def run(tag: str | None, use_cache: bool, out: Output) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "run"):
        require_on_branch(exp)
        lock = require_intact(exp)
        require_open(exp)
        commit, summary = record_run(exp, exp.load_frame(), lock, out, use_cache)
    frame = exp.load_frame()
    if summary.get("level") == "run":  # one score per run of a script (docs/run-level.md)
        from gitera.domain.runlevel import render_runs

        text = render_runs(summary, frame, commit)
    else:
        text = render(summary, frame, commit)
    out.result({"tag": exp.tag, "commit": commit, **{k: v for k, v in summary.items() if k != "row_ids"}}, text)
    if not summary["complete"]:
        out.error("error: the run is incomplete (some rows unscored); it is recorded but no comparison is made — fix the harness and run again.")
        return Exit.EVAL
    return Exit.OK


def _f(value: Any, spec: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def render(summary: Mapping[str, Any], frame: Frame, commit: str) -> str:
    lines = [
        f"{'arm':<16} {'score':>7} {'± sd':>7} {'Δ vs base':>10} {'95% CI':>19} {'$/1k rows':>10} {'latency ms':>10}  status",
    ]
    for arm in summary["arms_order"]:
        a = summary["arms"][arm]
        ci = a.get("ci")
        ci_text = f"[{_f(ci[0], '+.3f')}, {_f(ci[1], '+.3f')}]" if ci else ""
        status = "baseline" if arm == frame.baseline.arm else ("ok" if a["complete"] else "INCOMPLETE")
        lines.append(
            f"{arm:<16} {_f(a['score']):>7} {_f(a['sd']):>7} {_f(a.get('delta'), '+.4f'):>10} {ci_text:>19} "
            f"{_f(a['cost_per_1k'], '.4f'):>10} {_f(a['latency_ms'], '.2f'):>10}  {status}"
        )
        for problem in a["problems"][:3]:
            lines.append(f"    ! {problem}")
    nf = summary["noise_floor"]
    lines.append(
        f"Noise floor (baseline trial-to-trial sd): {_f(nf)} — a gain must exceed about 2× that ({_f(2 * nf if nf is not None else None)})."
    )
    lines.append(f"Run {summary['run']} recorded in {commit[:10]} ({'complete' if summary['complete'] else 'INCOMPLETE'}).")
    if summary["complete"]:
        lines.append("Next: `gitera iterate -m HYPOTHESIS` to climb the iterated arm, or `gitera verdict` for a plain comparison.")
    return "\n".join(lines)
