"""`gitera diff A B`: which rows B fixed and broke against A (two arms, attempts, or the best).

Who sees what (docs/review.md): dev rows are listed as ids, slices and scores; their text and
the outputs on them only with ``show_text`` (for people: an iterating agent that reads dev
text memorizes it). Train rows (``train=N``, scored on demand like `diagnose --train`) are shown
with their text. Test rows exist only after the verdict (``split="test"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gitera.adapters.output import Output
from gitera.core import rowview
from gitera.core.errors import RefusedError, UsageError
from gitera.core.frame import Frame
from gitera.core.results import read_results
from gitera.domain.experiment import Experiment

SECTIONS = (("fixed", "fixed"), ("broken", "broken"), ("better", "win"), ("worse", "loss"), ("crash", "crash"))


def subject_name(exp: Experiment, frame: Frame, spec: str) -> str:
    """The name `diagnose` and the loop records use for a subject: baseline, best, an arm or an attempt number."""
    s = rowview.parse_subject(spec, frame.arms)
    if s is None:
        raise UsageError(f"{spec!r} names nothing to compare: use baseline, best, an arm ({', '.join(frame.arms)}) or an attempt number (3 or #3).")
    if s.kind == "arm" and s.value not in frame.arms:
        raise UsageError(f"there is no arm {s.value!r}; the arms are {', '.join(frame.arms)} (attempts are numbers: see `gitera log`).")
    return s.value


def _test_side(exp: Experiment, frame: Frame, spec: str, doc: Mapping[str, Any], commit: str) -> tuple[str, list[dict[str, Any]]]:
    s = rowview.parse_subject(spec, frame.arms)
    arm = frame.baseline.arm if s is not None and s.kind == "baseline" else s.value if s is not None and s.kind == "arm" else None
    if arm is None or arm not in (doc.get("arms") or {}):
        raise UsageError(f"on the test rows, compare the arms the verdict scored: {', '.join(doc.get('arms') or {})}.")
    raw = exp.repo.show(commit, doc["arms"][arm]["rows_file"]) or b""
    return f"{arm} ({doc['arms'][arm].get('what')})", read_results(raw.decode("utf-8", errors="replace"))


def _entry(p: rowview.RowPair, row: Mapping[str, Any], frame: Frame, text: bool, secrets: Sequence[str], inputs: Sequence[str]) -> dict[str, Any]:
    def side(s: rowview.Side | None) -> dict[str, Any]:
        if s is None:
            return {"status": "missing", "score": None, "wrong": None}
        d: dict[str, Any] = {"status": s.status, "score": s.score, "wrong": s.wrong, "unscored_trials": s.failed}
        if s.failed and s.error:
            d["error"] = s.error if text else rowview.excerpt(rowview.redact(s.error, secrets))
        if text:
            d["output"] = s.output
            d["finding"] = s.finding
        return d

    e: dict[str, Any] = {"id": p.id, "slices": {c: row.get(c) for c in frame.data.slices}, "a": side(p.a), "b": side(p.b)}
    if text:
        e["input"] = {c: row.get(c) for c in inputs}
        e["reference"] = row.get(frame.data.label) if frame.data.label else None
    return e


def diff_data(exp: Experiment, frame: Frame, a: str, b: str, *, split: str, show_text: bool, train: int,
              lock: Mapping[str, Any] | None, out: Output) -> dict[str, Any]:
    from gitera.domain.diagnosis import dev_secrets, rows_file, score_train
    from gitera.domain.scoring import load_split
    from gitera.domain.viewpage import input_columns, released_test_rows

    name_a, name_b = subject_name(exp, frame, a), subject_name(exp, frame, b)
    secrets: list[str] = []
    if train:
        assert lock is not None
        rows, rec_a, rec_b = score_train(exp, frame, lock, name_b, name_a, train, out)
        label_a, label_b, split, text = a, b, "train", True
    elif split == "test":
        from gitera.domain.records import trailers, verdict_doc

        records = trailers(exp.repo, exp)
        verdict = next((r for r in records if r.kind == "Verdict"), None)
        doc = verdict_doc(exp.repo, exp, records)
        if verdict is None or doc is None:
            raise RefusedError(f"the test rows of {exp.tag} are sealed until the verdict; compare dev rows (the default) instead.")
        label_a, rec_a = _test_side(exp, frame, name_a, doc, verdict.commit)
        label_b, rec_b = _test_side(exp, frame, name_b, doc, verdict.commit)
        rows = released_test_rows(exp, verdict.commit, doc) or [{"id": i} for i in doc.get("row_ids") or []]
        text = show_text
    else:
        rows = load_split(exp, "dev")
        label_a, file_a = rows_file(exp, frame, name_a)
        label_b, file_b = rows_file(exp, frame, name_b)
        rec_a = read_results((exp.repo.root / file_a).read_text())
        rec_b = read_results((exp.repo.root / file_b).read_text())
        secrets, text = dev_secrets(frame, rows), show_text
    ids = [str(r["id"]) for r in rows]
    binary = rowview.is_binary([*rec_a, *rec_b])
    direction = frame.metric.direction
    pairs = rowview.pair_rows(ids, rowview.sides(rec_a, binary, direction), rowview.sides(rec_b, binary, direction), direction)
    by_id = {str(r["id"]): r for r in rows}
    inputs = input_columns(frame, rows)
    counts: dict[str, int] = {k: sum(p.outcome == k for p in pairs) for k in rowview.OUTCOMES}
    counts.update({k: sum(p.change == k for p in pairs) for k in ("fixed", "broken", "wrong_both")})
    result: dict[str, Any] = {"a": label_a, "b": label_b, "split": split, "n": len(ids), "counts": counts, "text_shown": text,
                              "binary": binary}
    for name, key in SECTIONS:
        if name in ("fixed", "broken"):
            chosen = [p for p in pairs if p.change == key]
        elif name == "crash":
            chosen = [p for p in pairs if p.outcome == "crash"]
        else:  # better / worse without a change of right and wrong
            chosen = [p for p in pairs if p.outcome == key and p.change not in ("fixed", "broken")]
        result[name] = [_entry(p, by_id.get(p.id, {}), frame, text, secrets, inputs) for p in chosen]
    return result
