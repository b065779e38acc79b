"""The output browser (`gitera view`): one self-contained HTML page of an experiment, for the
people who review it (docs/review.md).

Everything is read from git at the experiment branch's tip: the frame, the runs, every attempt
with its diff and commit, the gates, the verdict, the four charts, and the per-row table of dev
rows (and, after the verdict, of the opened test rows): input, reference, each arm's and
attempt's output, score and error. The page holds dev rows' text, which an iterating agent must
not be handed: it is written under .git/gitera/view/ (never in the work tree, never committed)
unless the user names another place outside the work tree or an ignored one.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gitera.adapters.history import Record, attempts
from gitera.core import htmlpage, rowview
from gitera.core.errors import ConfigError, GiteraError, RefusedError, UsageError
from gitera.core.frame import Frame
from gitera.core.version import __version__
from gitera.domain.experiment import Experiment
from gitera.domain.records import parse_records

DIFF_LIMIT = 40_000  # characters of one attempt's diff kept in the page
CHART_NAMES = ("arm-bar", "forest-plot", "cost-vs-accuracy", "progression")


def default_path(exp: Experiment) -> Path:
    """Where the page goes unless told: inside the git directory, out of the work tree and of every commit."""
    return exp.repo.common_dir / "gitera" / "view" / f"{exp.tag}.html"


def check_destination(exp: Experiment, path: Path) -> None:
    """Refuse a page inside the work tree that git would see: it holds dev rows' text (docs/review.md)."""
    root = exp.repo.root.resolve()
    target = path.resolve()
    git_dir = exp.repo.common_dir.resolve()
    if target == root or root not in target.parents or git_dir in target.parents:
        return  # outside the work tree, or inside the git directory (which git never tracks)
    rel = target.relative_to(root).as_posix()
    if not exp.repo.git("check-ignore", "--no-index", rel, check=False).strip():
        raise UsageError(f"{rel} is inside the work tree and not ignored by git: the page holds dev rows' text and outputs, which must "
                         "not be committed where an iterating agent reads them; write it outside the work tree (the default is "
                         f"{default_path(exp)}) or add it to .gitignore.")


def _tip(exp: Experiment) -> str:
    tip = exp.repo.rev(f"refs/heads/{exp.branch}")
    if tip is None:
        raise RefusedError(f"branch {exp.branch} does not exist in this clone; fetch it (`git fetch origin {exp.branch}:{exp.branch}`) "
                           "and run `gitera view` again.")
    return tip


def _frame(exp: Experiment, text: str) -> tuple[Frame | None, dict[str, Any]]:
    """The frame, or None while it is not filled in (the page then shows its text and no table); its raw fields."""
    from gitera.adapters.yamlio import load_with_lines
    from gitera.core.frame import parse_frame

    try:
        data, lines = load_with_lines(text, exp.frame_rel)
    except ConfigError:
        return None, {}
    raw = data if isinstance(data, dict) else {}
    try:
        return parse_frame(data, lines, exp.frame_rel), raw
    except ConfigError:
        return None, raw


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _diffs(exp: Experiment, tip: str, targets: Sequence[str]) -> dict[str, str]:
    """Each commit's diff of the target files, in one git call."""
    if not targets:
        return {}
    text = exp.repo.git("log", "--first-parent", "-p", "--no-color", "--no-ext-diff", "--format=%x1e%H", tip, "--", *targets)
    out = {}
    for entry in text.split("\x1e"):
        commit, _, diff = entry.partition("\n")
        if commit.strip():
            diff = diff.strip("\n")
            out[commit.strip()] = diff if len(diff) <= DIFF_LIMIT else diff[:DIFF_LIMIT] + f"\n… (cut at {DIFF_LIMIT:,} characters)"
    return out


def _latest_run(records: Sequence[Record]) -> list[Record]:
    runs = [r for r in records if r.kind == "Result" and r.data.get("kind") == "run"]
    last = max((int(r.data.get("run") or 0) for r in runs), default=None)
    return [r for r in runs if int(r.data.get("run") or 0) == last]


def input_columns(frame: Frame, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    skip = {"id", frame.data.id, frame.data.label, *frame.data.slices}
    cols: list[str] = []
    for row in rows[:200]:
        cols += [c for c in row if c not in skip and c not in cols]
    return cols


def _subjects(exp: Experiment, frame: Frame, records: Sequence[Record]) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The dev subjects (each arm of the latest run, then every attempt) and, for each attempt,
    the subject it was compared with (the best state before it)."""
    subjects: list[dict[str, Any]] = []
    iterated = frame.iterate.arm if frame.iterate else None
    for r in _latest_run(records):
        arm = str(r.data.get("arm"))
        role = " (baseline)" if arm == frame.baseline.arm else " (iterated)" if arm == iterated else ""
        subjects.append({"key": f"arm:{arm}", "label": f"{arm}{role}, run {r.data.get('run')}", "kind": "arm",
                         "commit": r.commit, "rows": r.data.get("rows"), "status": r.data.get("status")})
    against: dict[int, str] = {}
    best = f"arm:{iterated}" if iterated else None
    for r in attempts(list(records)):
        n = int(r.data.get("iteration") or 0)
        subjects.append({"key": f"#{n}", "label": f"#{n} {r.data.get('status')}: {str(r.data.get('hypothesis') or '')[:60]}",
                         "kind": "attempt", "commit": r.commit, "rows": r.data.get("rows"), "status": r.data.get("status")})
        if best:
            against[n] = best
        if r.data.get("status") == "keep":
            best = f"#{n}"
    return subjects, against


def released_test_rows(exp: Experiment, commit: str, doc: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The sealed test rows, opened with the key the verdict released; None when it kept the key."""
    import base64
    import shutil

    from gitera.adapters import seal

    if not doc.get("key") or not isinstance(doc.get("seal"), dict):
        return None
    key = seal.DataKey(base64.b64decode(doc["key"]))
    salt = seal.derive_commitment_salt(key.secret)
    work = Path(tempfile.mkdtemp(prefix="gitera-view-"))
    try:
        sealed = work / "test.seal"
        sealed.write_bytes(exp.repo.show(commit, doc["seal"]["path"]) or b"")
        plain = work / "test.jsonl"
        from gitera.domain.splitfiles import expected_pins  # the seal binds the pins of the split files

        binding = seal.Binding(exp.tag, doc["frame"], doc["seal"]["path"], expected_pins(exp, rev=commit))
        seal.open_seal(sealed, key, binding, plain, commitment=(salt, doc["opening"]["commitment"]))
        return [json.loads(x) for x in plain.read_text(encoding="utf-8").splitlines() if x.strip()]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _dev_charts(exp: Experiment, frame: Frame, records: Sequence[Record], ids: Sequence[str], rows: Sequence[Mapping[str, Any]],
                by_key: Mapping[str, list[dict[str, Any]] | None], subjects: Sequence[Mapping[str, Any]], best: str | None) -> dict[str, Any]:
    """The four charts from the dev rows (before the verdict): each arm of the latest run and the
    current best attempt, against the baseline, with the locked threshold — indicative only."""
    from gitera.core.results import matrix
    from gitera.core.verdict import apply_rules
    from gitera.domain.conclusion import chart_files

    run = {s["key"][4:]: s for s in subjects if s["kind"] == "arm"}
    named = dict(run)
    if best and best.startswith("#"):
        named[f"{frame.iterate.arm if frame.iterate else 'best'} {best}"] = next(s for s in subjects if s["key"] == best)
    if frame.baseline.arm not in named or len(named) < 2:
        return {}
    def own(recs: Sequence[Mapping[str, Any]]) -> Any:  # each on every trial it recorded (a confirmed attempt has more)
        return matrix(recs, ids, sorted({int(r.get("trial") or 0) for r in recs}))

    mats = {name: own(by_key.get(s["key"]) or []) for name, s in named.items()}
    fhash = next((str(r.data.get("frame")) for r in records if r.kind == "Result" and r.data.get("frame")), "0" * 8)
    decision = apply_rules(frame, fhash, mats, rows).to_dict()
    decision["arm"] = None  # nothing is shipped on dev
    trailer = {s["key"]: r.data for s in named.values() for r in records if r.commit == s["commit"] and r.kind == "Result"
               and (r.data.get("arm") == s["key"][4:] or s["kind"] == "attempt")}
    arms = {}
    for name, s in named.items():
        m = mats[name]
        t = trailer.get(s["key"], {})
        arms[name] = {"score": float(m[~_nan(m)].mean()) if (~_nan(m)).any() else float("nan"), "sd": t.get("sd"),
                      "cost_per_1k": t.get("cost_per_1k")}
    verdict = {"decision": decision, "arms": arms, "locked_iteration": None}
    with tempfile.TemporaryDirectory() as tmp:
        files = chart_files(frame, verdict, tmp, records, split_label="dev rows")
    return {Path(p).stem: (content or b"").decode("utf-8") for p, content in files.items() if p.endswith(".svg")}


def _nan(m: Any) -> Any:
    import numpy as np

    return np.isnan(m)


def _charts(exp: Experiment, frame: Frame | None, records: Sequence[Record], verdict_commit: str | None, doc: Mapping[str, Any] | None,
            dev: Mapping[str, Any]) -> tuple[list[dict[str, str]], str]:
    if verdict_commit and doc and doc.get("conclusion"):
        found = exp.repo.cat_blobs([f"{verdict_commit}:{doc['conclusion']}/{n}.svg" for n in CHART_NAMES])
        svgs = {n: b.decode("utf-8") for n, b in zip(CHART_NAMES, found) if b is not None}
        note = "The verdict's charts, on the sealed test set (as committed with the conclusion)."
    elif frame is not None and dev:
        try:
            svgs = _dev_charts(exp, frame, records, **dev)
        except (GiteraError, ValueError, KeyError) as exc:
            return [], f"No charts: {exc}"
        note = ("On the dev rows, before the verdict: indicative only — the verdict decides on the sealed test set. "
                "States use the locked threshold; no arm is shipped on dev.")
    else:
        return [], "No charts yet: they need a complete dev run."
    return [{"name": n, "svg": htmlpage.inline_svg(svgs[n], n)} for n in CHART_NAMES if n in svgs], note


def page_data(exp: Experiment) -> dict[str, Any]:
    from gitera.domain.records import trailers, verdict_doc

    repo = exp.repo
    tip = _tip(exp)
    records = trailers(repo, exp)
    frame_text = (repo.show(tip, exp.frame_rel) or b"").decode("utf-8", errors="replace")
    frame, raw = _frame(exp, frame_text)
    verdict = next((r for r in records if r.kind == "Verdict"), None)
    doc = verdict_doc(repo, exp, records)
    strings = htmlpage.Strings()
    data: dict[str, Any] = {
        "meta": {"tag": exp.tag, "branch": exp.branch, "tip": tip, "version": __version__,
                 "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "question": frame.question if frame else _text(raw.get("question")),
                 "hypothesis": frame.hypothesis if frame else _text(raw.get("hypothesis")),
                 "state": "concluded" if verdict else "locked" if any(r.kind == "Lock" for r in records) else "not locked",
                 "metric": frame.metric.primary if frame else None, "direction": frame.metric.direction if frame else "higher",
                 "baseline": frame.baseline.arm if frame else None, "iterated": frame.iterate.arm if frame and frame.iterate else None,
                 "rows": "unknown"},
        "frame_text": frame_text, "runs": [r.data | {"commit": r.commit} for r in _latest_run(records)],
        "attempts": [], "gates": [r.data | {"commit": r.commit} for r in records if r.kind == "Gate"],
        "stops": [r.data | {"commit": r.commit} for r in records if r.kind == "Stop"],
        "verdict": None, "charts": [], "chart_note": "", "splits": {}, "strings": strings.values,
    }
    if frame is None:
        data["chart_note"] = "The frame is not filled in and locked yet: nothing has been scored."
        return data
    subjects, against = _subjects(exp, frame, records)
    blobs = repo.cat_blobs([f"{s['commit']}:{s['rows']}" if s.get("rows") else "-" for s in subjects])
    by_key = {s["key"]: parse_records(b) for s, b in zip(subjects, blobs)}
    diffs = _diffs(exp, tip, frame.iterate.target if frame.iterate else ())
    best: str | None = None
    for r in attempts(list(records)):
        n = int(r.data.get("iteration") or 0)
        first = rowview.first_error(by_key.get(f"#{n}") or []) if r.data.get("status") in ("crash", "timeout") else None
        data["attempts"].append({**{k: r.data.get(k) for k in ("iteration", "sprint", "status", "outcome", "hypothesis", "score", "sd",
                                                               "delta", "ci", "threshold", "reason", "cost_per_1k", "latency_ms", "trials")},
                                 "commit": r.commit, "diff": diffs.get(r.commit, ""), "against": against.get(n),
                                 "first_error": f"row {first[0]}, trial {first[1]}: {first[2]}" if first else None})
        best = f"#{n}" if r.data.get("status") == "keep" else best
    dev_rows = parse_records(repo.show(tip, exp.rel("split/dev.jsonl"))) or []
    ids = [str(r.get("id")) for r in dev_rows]
    scored = [s for s in subjects if by_key.get(s["key"])]  # an aggregate-only run recorded no row
    if dev_rows and scored:
        table = htmlpage.split_table(
            ids, dev_rows, inputs=input_columns(frame, dev_rows), reference=frame.data.label, slices=frame.data.slices,
            subjects=[htmlpage.SubjectRows(s["key"], s["label"], s["kind"], by_key[s["key"]] or []) for s in scored],
            direction=frame.metric.direction, strings=strings)
        keys = [s["key"] for s in scored]
        default_b = best if best in keys else next((k for k in keys if k != f"arm:{frame.baseline.arm}"), keys[0])
        data["splits"]["dev"] = {**table, "a": f"arm:{frame.baseline.arm}" if f"arm:{frame.baseline.arm}" in keys else keys[0],
                                 "b": default_b, "note": "Dev rows: the rows the loop climbs on."}
        data["meta"]["rows"] = "per-row"
    else:
        data["meta"]["rows"] = "none"
    if verdict is not None and doc is not None:
        data["verdict"] = {"commit": verdict.commit, **{k: doc.get(k) for k in ("decision", "arms", "n_test", "conclusion", "key_released",
                                                                                  "locked_iteration", "decided_at")}}
        if doc.get("level") != "run":  # a run-level verdict opened files, not rows (docs/run-level.md)
            data["splits"]["test"] = _test_table(exp, frame, verdict.commit, doc, strings)
    dev = {"ids": ids, "rows": dev_rows, "by_key": by_key, "subjects": subjects, "best": best} if dev_rows and scored else {}
    data["charts"], data["chart_note"] = _charts(exp, frame, records, verdict.commit if verdict else None, doc, dev)
    return data


def _test_table(exp: Experiment, frame: Frame, commit: str, doc: Mapping[str, Any], strings: htmlpage.Strings) -> dict[str, Any]:
    arms = [a for a in (doc.get("arms") or {})]
    files = exp.repo.cat_blobs([f"{commit}:{doc['arms'][a].get('rows_file')}" for a in arms])
    subjects = [htmlpage.SubjectRows(f"test:{a}", f"{a} ({doc['arms'][a].get('what')})", "test", parse_records(b) or [])
                for a, b in zip(arms, files)]
    ids = [str(i) for i in doc.get("row_ids") or []]
    rows = released_test_rows(exp, commit, doc)
    note = ("Sealed test rows, opened once by the verdict." if rows is not None else
            "Sealed test rows, opened once by the verdict; their text is not shown: the verdict kept the key (--keep-key).")
    rows = rows or [{"id": i} for i in ids]
    table = htmlpage.split_table(ids, rows, inputs=input_columns(frame, rows), reference=frame.data.label, slices=frame.data.slices,
                                 subjects=subjects, direction=frame.metric.direction, strings=strings)
    decided = (doc.get("decision") or {}).get("arm")
    base = f"test:{frame.baseline.arm}"
    other = f"test:{decided}" if decided else next((s.key for s in subjects if s.key != base), base)
    return {**table, "a": base, "b": other, "note": note}


def template() -> str:
    from importlib import resources

    return (resources.files("gitera") / "templates" / "view.html").read_text(encoding="utf-8")


def render(data: Mapping[str, Any]) -> str:
    return htmlpage.fill(template(), f"gitera · {data['meta']['tag']}", data)


def _safe_name(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", tag)


def write_page(exp: Experiment, path: Path | None) -> tuple[Path, dict[str, Any]]:
    """Render the page and write it (atomically) to ``path`` or the default place; the data, for a summary."""
    target = path or default_path(exp)
    check_destination(exp, target)
    data = page_data(exp)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{_safe_name(target.name)}.tmp")
    tmp.write_text(render(data), encoding="utf-8")
    tmp.replace(target)
    return target, data
