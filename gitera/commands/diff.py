"""gitera diff A B: the rows B fixed and broke against A, with their scores (gitera.domain.rowdiff).

Dev rows appear as ids, slices and scores; their text and outputs only with --show-text (for
people, with a warning); --train N compares on train rows, text included (docs/review.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.domain.experiment import require_intact, resolve
from gitera.domain.rowdiff import diff_data

TITLES = {
    "fixed": "fixed (wrong for A, right for B)",
    "broken": "broken (right for A, wrong for B)",
    "better": "better for B, right or wrong alike",
    "worse": "worse for B, right or wrong alike",
    "crash": "crashed (a side could not score the row: never counted as same)",
}


def diff(tag: str | None, a: str, b: str, out: Output, *, split: str = "dev", show_text: bool = False, train: int = 0, limit: int = 20) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    lock = require_intact(exp) if train else None
    frame = exp.load_frame()
    if show_text and split == "dev" and not train:
        out.warn("showing dev rows' text and outputs: they are for people; keep them out of an iterating agent's context "
                 "(an agent that learns dev rows is caught by the gate as a hardcode; docs/review.md).")
    if train:
        from gitera.adapters.repolock import exclusive

        with exclusive(repo.common_dir, "diff --train"):
            result = diff_data(exp, frame, a, b, split=split, show_text=show_text, train=train, lock=lock, out=out)
    else:
        result = diff_data(exp, frame, a, b, split=split, show_text=show_text, train=train, lock=lock, out=out)
    out.result(result, "\n".join(_lines(result, limit)))
    return 0


def _score(side: Mapping[str, Any]) -> str:
    if side.get("unscored_trials") or side.get("score") is None:
        return str(side.get("status") or "missing")
    return f"{side['score']:.3f}" + (" ✗" if side.get("wrong") else "")


def _lines(r: Mapping[str, Any], limit: int) -> list[str]:
    c = r["counts"]
    lines = [f"B = {r['b']} vs A = {r['a']} on {r['n']} {r['split']} rows: {c['fixed']} fixed, {c['broken']} broken; "
             f"{c['win']} better, {c['loss']} worse, {c['tie']} same, {c['crash']} crashed"]
    if not r["binary"]:
        lines.append("(scores are not 0/1: a row counts as wrong only where the harness reported a finding)")
    for name, title in TITLES.items():
        rows = r[name]
        if not rows:
            continue
        lines.append(f"\n{title}: {len(rows)}" + (f", first {limit} shown" if limit and len(rows) > limit else ""))
        for e in rows[: limit or None]:
            slices = " ".join(f"{k}={v}" for k, v in e["slices"].items())
            lines.append(f"  {e['id']}  {slices}  A {_score(e['a'])} → B {_score(e['b'])}".rstrip())
            for who in ("a", "b"):
                if e[who].get("error"):
                    lines.append(f"      {who.upper()} error: {' '.join(str(e[who]['error']).split())[:300]}")
            if r["text_shown"]:
                for col, value in e.get("input", {}).items():
                    lines.append(f"      {col}: {value}")
                if e.get("reference") is not None:
                    lines.append(f"      reference: {e['reference']}")
                lines.append(f"      A output: {e['a'].get('output')}")
                lines.append(f"      B output: {e['b'].get('output')}")
    if r["split"] == "dev" and not r["text_shown"]:
        lines.append("\nDev rows are shown as ids and scores: their text and outputs would be memorized by an iterating agent. "
                     "`--show-text` shows them to people (with a warning); `--train N` compares on train rows, text included.")
    return lines
