"""gitera diagnose: where an attempt wins and loses against the baseline or the best (gitera.domain.diagnosis).

Dev rows appear only as ids and aggregates (their text would be memorized); raw text is
shown only for train rows, which the loop may learn from: `--train N` scores both sides on
up to N train rows (cached) and shows the losing ones with their text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.domain.diagnosis import diagnose_data, train_view
from gitera.domain.experiment import require_intact, resolve


def diagnose(tag: str | None, attempt: str, against: str, out: Output, train: int = 0) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    lock = require_intact(exp)
    frame = exp.load_frame()
    result = diagnose_data(exp, frame, attempt, against)
    lines = _table(f"{result['subject']} vs {result['against']} on {result['n']} dev rows", result, "dev", result["subject"])
    lines.append("\nDev rows are shown as ids only (their text would be memorized); train rows are the ones to study"
                 + (":" if train else " (`--train N`)."))
    if train:
        from gitera.adapters.repolock import exclusive

        with exclusive(repo.common_dir, "diagnose --train"):
            result["train"] = train_view(exp, frame, lock, attempt, against, train, out)
        lines += _table(f"\non {result['train']['n']} train rows", result["train"], "train", result["subject"])
        lines.append(f"\nlosing train rows ({len(result['train']['losses'])} shown):")
        lines += [f"  {row['id']}  {json.dumps({k: v for k, v in row.items() if k != 'id'}, ensure_ascii=False, sort_keys=True)}"
                  for row in result["train"]["losses"]]
    out.result(result, "\n".join(lines))
    return 0


def _table(title: str, view: Mapping[str, Any], split: str, subject: str) -> list[str]:
    t, w, c = view["totals"], view["wrong"], view["crash"]
    lines = [f"{title}: {t['win']} wins, {t['loss']} losses, {t['tie']} ties, {t['crash']} crashes (a row either side "
             "could not score is a crash, never a tie)"]
    lines.append(f"wrong: {w['n']} {split} rows ({w['both']} wrong on both sides, {w['fixed']} fixed, {w['broken']} broken)"
                 + (f"; {subject} gets these wrong: {' '.join(w['ids'])}" + (" …" if w["n"] > len(w["ids"]) else "") if w["ids"] else ""))
    if not w["binary"]:
        lines.append("(scores are not 0/1: a row counts as wrong only where the harness reported a finding)")
    if c["n"]:
        lines.append(f"crashes: {' '.join(c['ids'])}" + (" …" if c["n"] > len(c["ids"]) else "") + (f"; first error: {c['error']}" if c["error"] else ""))
    for col, table in view["groups"].items():
        lines.append(f"\nby {col}:")
        lines.append(f"  {'value':<28} {'wins':>5} {'losses':>6} {'ties':>5} {'crash':>5} {'wrong':>5}  losing {split} row ids")
        for value, g in table.items():
            lines.append(f"  {value[:28]:<28} {g['win']:>5} {g['loss']:>6} {g['tie']:>5} {g['crash']:>5} {g['wrong']:>5}  {' '.join(g['loss_ids'][:6])}")
    return lines
