"""The discipline self-audit, recomputed from git alone (for CI on a pull request).

Each check returns (name, ok, detail). Nothing here trusts the working tree, the loop's
state file or gitera's caches under .git/gitera/ (the history cache is an ordinary file):
every number is recomputed from committed blobs and trailers, so a commit made with
--no-verify, an edited trailer or a rewritten results file shows up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gitera.adapters.git import Repo
from gitera.adapters.history import Record
from gitera.core.errors import ConfigError, GiteraError
from gitera.domain import provenance
from gitera.domain.experiment import Experiment
from gitera.domain.records import (
    commit_of,
    frame_at,
    gate_locked_iteration,
    records_file,
    show,
    trailers,
    verdict_doc,
)

if TYPE_CHECKING:
    from gitera.core import rules
    from gitera.core.frame import Frame

Check = tuple[str, bool, str]
TOL = 1e-6


def _mean_scores(records: Sequence[Mapping[str, Any]]) -> tuple[float | None, dict[str, float]]:
    """Mean score (trials averaged per row first) and the per-row means."""
    per: dict[str, list[float]] = {}
    for r in records:
        if r.get("status") == "ok" and isinstance(r.get("score"), (int, float)):
            per.setdefault(str(r["id"]), []).append(float(r["score"]))
    rows = {k: sum(v) / len(v) for k, v in per.items()}
    return (sum(rows.values()) / len(rows) if rows else None), rows


def audit(repo: Repo, exp: Experiment, pending_verdict: bool = False, records: Sequence[Record] | None = None,
          rev: str | None = None) -> list[Check]:
    """``rev``: the commit to audit (`gitera verify` passes the checked-out one); default the branch's tip."""
    records = trailers(repo, exp, rev) if records is None else records
    checks: list[Check] = []
    lock_commit = commit_of(records, "Lock")
    tip = rev or repo.rev(f"refs/heads/{exp.branch}") or "HEAD"
    abandoned = abandon_checks(repo, exp, records, tip)
    if lock_commit is None:
        return abandoned or [("the experiment is locked", False, "no Gitera-Lock commit on the branch")]
    checks += abandoned + import_checks(repo, exp, records, tip)
    lock = json.loads(show(repo, lock_commit, exp.lock_rel) or b"{}")
    locked = {rec["path"]: rec["blob"] for rec in [lock.get("frame", {}), *lock.get("files", [])] if "path" in rec}
    locked[exp.lock_rel] = repo.ls_tree(lock_commit, [exp.lock_rel]).get(exp.lock_rel, "")
    fhash = lock.get("frame", {}).get("sha256")
    checks.append(_locked_files(repo, lock_commit, tip, locked))
    checks.append(provenance.lock_matches(repo, exp, records, lock_commit))
    checks.append(provenance.locked_modes(repo, lock_commit, tip, [p for p in locked if p != exp.lock_rel]))
    checks.append(provenance.rewritten(repo, exp, tip))
    checks.append(provenance.named_commits(repo, records, tip))
    checks.append(_frame_hash(records, fhash))
    frame = frame_at(repo, exp, lock_commit)
    metric = frame.get("metric") or {}
    primary = metric.get("primary") or {}
    sign = -1.0 if isinstance(primary, dict) and primary.get("direction") == "lower" else 1.0
    checks += _results(repo, exp, records, sign, frame)
    checks.append(_sprints(records, int((frame.get("iterate") or {}).get("sprint", 3))))
    checks += _gates(repo, exp, records, frame)
    split_commit = commit_of(records, "Split")
    verdicts = [r for r in records if r.kind == "Verdict"]
    opened = [r for r in records if r.kind == "Opening" and r.data.get("status") == "opened"]
    if split_commit:
        manifest = json.loads(show(repo, split_commit, exp.rel("split/manifest.json")) or b"{}")
        seal_path = manifest.get("seal", {}).get("path", exp.rel("split/test.seal"))
        seal_paths = [seal_path, *([manifest["gate_seal"]["path"]] if manifest.get("gate_seal") else [])]  # run level: the gate shard too
        sealed = repo.ls_tree(split_commit, seal_paths)
        touched = changed_since(repo, split_commit, tip, {p: sealed.get(p, "") for p in seal_paths})
        checks.append(("the seal is unchanged since the split", not touched,
                       f"changed in {', '.join(c for _, c in touched[:5])}" if touched else ""))
        checks.append(split_files_unchanged(repo, exp, split_commit, tip, skip=seal_path))
        checks.append(split_pins_hold(repo, exp, records, split_commit))
        first_open = (opened or verdicts)[0].commit if opened or verdicts else None
        checks.append(_no_test_rows(repo, exp, split_commit, f"{first_open}^" if first_open else tip))
    many = max(len(verdicts), len(opened))
    checks.append(("the test set was opened at most once", many <= 1, f"{len(opened)} openings, {len(verdicts)} verdicts" if many > 1 else ""))
    checks += provenance.opening_checks(repo, exp, records, pending_verdict)
    if opened or verdicts:
        checks.append(_nothing_after(repo, exp, records, (opened or verdicts)[0], verdicts[0] if verdicts else None, tip))
    if verdicts:
        checks += _verdict_checks(repo, exp, records, verdicts[0], frame)
    elif not pending_verdict and not opened:
        checks.append(("the verdict", True, "not run yet"))
    return checks


def _nothing_after(repo: Repo, exp: Experiment, records: Sequence[Record], opening: Record, verdict: Record | None, tip: str) -> Check:
    """From the opening on, no record but the verdict's own (its abort, its conclusion), and after the
    conclusion no commit touching the experiment's files or its conclusion. By history, not by
    commit time: a backdated commit after the opening is still after it."""
    since = set(repo.git("rev-list", f"{opening.commit}..{tip}").split())
    own = {r.commit for r in records if r.kind in ("Verdict", "Opening")}
    after = [r for r in records if r.commit in since and r.commit not in own]
    base = verdict.commit if verdict is not None else opening.commit
    conclusion = str(verdict.data.get("conclusion") or "").rpartition("/")[0] if verdict is not None else ""
    later = repo.git("rev-list", "--full-history", f"{base}..{tip}", "--", exp.rel(""), *([conclusion] if conclusion else [])).split()
    later = [c for c in later if c not in own or verdict is not None]
    bad = sorted({r.commit[:10] for r in after} | {c[:10] for c in later})
    return ("nothing but the verdict's files after the opening", not bad, f"later commits {', '.join(bad)}" if bad else "")


def _gates(repo: Repo, exp: Experiment, records: Sequence[Record], locked: Mapping[str, Any]) -> list[Check]:
    """Every gate authentic (its MAC, once the verdict released the gate-record key, or with the local key),
    its hardcode scan re-run on the recorded diff, its decision re-made from the recorded numbers."""
    from gitera.core.frame import parse_frame
    from gitera.domain.rederive import review_gates

    gates = [r for r in records if r.kind == "Gate"]
    if not gates:
        return [_gate_outcomes(records)]
    try:
        frame = parse_frame(dict(locked), {}, exp.frame_rel)
    except ConfigError as exc:
        return [("every gate re-derives from git", False, f"the locked frame does not parse: {exc}")]
    key, source = _record_key(repo, exp, records)
    review = review_gates(repo, exp, frame, records, key)
    authentic = ("every gate record is authentic (its MAC, its place, its gate file)", not review.forged,
                 "; ".join(review.forged[:3]) or ("" if key else "the gate-record key is released by the verdict: MACs not checked yet"))
    if key is not None and not review.forged:
        authentic = (authentic[0], True, f"MACs checked with {source}")
    return [_gate_outcomes(records), authentic,
            ("every gate's hardcode scan, re-run on its recorded diff, finds what it recorded", not review.scans, "; ".join(review.scans[:3])),
            ("every gate's decision re-made from its recorded numbers and the attempts", not review.decisions, "; ".join(review.decisions[:3]))]


def _record_key(repo: Repo, exp: Experiment, records: Sequence[Record]) -> tuple[bytes | None, str]:
    """The gate-record key as the verdict released it in verdict.json, else this clone's key store."""
    import base64
    import binascii

    from gitera.adapters.keys import record_key

    doc = verdict_doc(repo, exp, records)
    released = doc.get("record_key") if doc else None
    if isinstance(released, str):
        try:
            return base64.b64decode(released, validate=True), "the key the verdict released"
        except (binascii.Error, ValueError):
            pass
    try:
        return record_key(repo.common_dir, exp.tag), "this clone's key store"
    except GiteraError:
        return None, ""


def changed_since(repo: Repo, base: str, tip: str, expected: Mapping[str, str]) -> list[tuple[str, str]]:
    """(path, commit) for every commit reachable from ``tip`` but not ``base`` whose tree holds a
    path of ``expected`` with another blob (or without it), oldest first.

    ``--full-history`` and every merge: git's default history simplification follows only one
    parent of a merge that leaves the paths as they were, so a change made and reverted on a
    merged side branch would be hidden.
    """
    paths = list(expected)
    touching = repo.git("rev-list", "--reverse", "--full-history", f"{base}..{tip}", "--", *paths).split()
    merges = repo.git("rev-list", "--reverse", "--merges", f"{base}..{tip}").split()
    bad = []
    for commit in dict.fromkeys([*touching, *merges]):
        here = repo.ls_tree(commit, paths)
        bad += [(path, commit[:10]) for path, blob in expected.items() if here.get(path) != blob]
    return bad


def _locked_files(repo: Repo, lock_commit: str, tip: str, locked: Mapping[str, str]) -> Check:
    bad = [f"{path} in {commit}" for path, commit in changed_since(repo, lock_commit, tip, locked)]
    return ("locked files unchanged in every commit since the lock", not bad, "; ".join(bad[:5]))


def _frame_hash(records: Sequence[Record], fhash: str | None) -> Check:
    bad = [r.commit[:10] for r in records if r.kind == "Result" and r.data.get("frame") not in (None, fhash)]
    return ("every result was made under the locked frame", not bad, f"other frame in {', '.join(bad[:5])}" if bad else "")


def _results(repo: Repo, exp: Experiment, records: Sequence[Record], sign: float, frame: Mapping[str, Any] | None = None) -> list[Check]:
    mismatched: list[str] = []
    decisions: list[str] = []
    best_rows: dict[str, float] | None = None
    best_recs: list[dict[str, Any]] = []
    noise = 0.0
    base_recs: list[dict[str, Any]] = []  # the baseline's runs: a run-level attempt's noise runs
    iterated_arm = None
    for r in records:
        if r.kind != "Result":
            continue
        d = r.data
        rows_path = d.get("rows")
        recs = records_file(repo, r.commit, rows_path) if rows_path else None
        if recs is None:
            mismatched.append(f"{r.commit[:10]} {d.get('arm')}: per-row file {rows_path} missing")
            continue
        mean, per_row = _mean_scores(recs)
        if d.get("score") is not None and (mean is None or abs(mean - float(d["score"])) > TOL):
            mismatched.append(f"{r.commit[:10]} {d.get('kind')} {d.get('arm')} #{d.get('iteration', '')}: trailer score {d['score']} but rows give {mean}")
        if d.get("kind") == "run" and d.get("status") == "baseline":
            noise = float(d.get("noise_floor") or 0.0)
            base_recs = recs
        if d.get("kind") == "attempt":
            if iterated_arm is None:
                iterated_arm = d.get("arm")
                run = next((x for x in records if x.kind == "Result" and x.data.get("kind") == "run" and x.data.get("arm") == iterated_arm), None)
                if run is not None:
                    best_recs = records_file(repo, run.commit, str(run.data.get("rows"))) or []
                    best_rows = _mean_scores(best_recs)[1]
            if best_rows is None or not per_row:
                continue
            common = [k for k in per_row if k in best_rows]
            if common:
                diffs = [per_row[k] - best_rows[k] for k in common]
                gain = sign * sum(diffs) / len(diffs)
                recorded = d.get("delta")
                if recorded is not None and abs(gain - float(recorded)) > 1e-4:
                    mismatched.append(f"{r.commit[:10]} attempt #{d.get('iteration')}: recorded gain {recorded} but rows give {gain:+.6f}")
                threshold = d.get("threshold")
                status = d.get("status")
                if d.get("level") == "run":  # the sequential keep rule, replayed look by look (docs/run-level.md)
                    from gitera.domain.runaudit import recheck_attempt

                    problem = recheck_attempt(d, recs, best_recs, base_recs, frame or {})
                    decisions += [problem] if problem else []
                elif d.get("mode", "primary") != "primary":
                    from gitera.core.decision import recheck

                    problem = recheck(d, recs, best_recs)  # pareto / weighted: every recorded gain and the mode's rule
                    decisions += [problem] if problem else []
                elif status == "keep" and threshold is not None and not float(recorded if recorded is not None else gain) > float(threshold) - TOL:
                    decisions.append(f"#{d.get('iteration')} kept with gain {recorded} not above {threshold}")
                # a marginal gain whose confirmation run did not complete is discarded on purpose
                elif (status == "discard" and threshold is not None and recorded is not None and float(recorded) > float(threshold) + TOL
                      and (d.get("confirm") or {}).get("held") is not False):
                    decisions.append(f"#{d.get('iteration')} discarded although its gain {recorded} beats {threshold}")
                if threshold is not None and float(threshold) + TOL < 2 * noise:
                    decisions.append(f"#{d.get('iteration')} used a threshold {threshold} below 2× the noise floor {noise}")
            if d.get("status") == "keep":
                best_rows, best_recs = per_row, recs
    return [
        ("every Gitera-Result matches its per-row file", not mismatched, "; ".join(mismatched[:5])),
        ("keep/discard decisions follow the rules", not decisions, "; ".join(decisions[:5])),
    ]


def _sprints(records: Sequence[Record], size: int) -> Check:
    count, bad = 0, []
    for r in records:
        if r.kind == "Result" and r.data.get("kind") == "attempt":
            count += 1
            if count > size:
                bad.append(f"attempt #{r.data.get('iteration')} is attempt {count} of a sprint of {size} without a gate")
        elif r.kind == "Gate":
            count = 0
    return (f"sprints of at most {size} attempts, each closed by its gate", not bad, "; ".join(bad[:5]))


def gate_expected(g: Mapping[str, Any]) -> str:
    """The outcome a Gitera-Gate trailer's own recorded checks call for (the gate's own rule)."""
    from gitera.core.gate import outcome_of

    replication = g.get("replication") or None
    return outcome_of(int(g.get("hardcode_hits") or 0), None if replication is None else bool(replication.get("passed")),
                      bool((g.get("saturation") or {}).get("saturated")),
                      any(q.get("exhausted") for q in g.get("holdout_queries") or []))


def _gate_outcomes(records: Sequence[Record]) -> Check:
    bad = []
    for r in records:
        if r.kind == "Gate":
            want = gate_expected(r.data)
            if r.data.get("outcome") != want:
                bad.append(f"{r.commit[:10]} gate after sprint {r.data.get('sprint')} recorded {r.data.get('outcome')!r} but its checks give {want!r}")
    return ("every gate outcome follows from its recorded checks", not bad, "; ".join(bad[:5]))


def dev_test_gaps(records: Sequence[Record], verdict: Mapping[str, Any]) -> list[rules.DevTestGap]:
    """Rule 21 from the trailers alone: each arm's dev score against its test score in ``verdict``.

    The iterated arm's dev score is its locked (latest gate-passed) iteration's, the state the
    verdict scored; the other arms' (and an iterated arm no gate passed) come from the latest dev run.
    """
    from gitera.core import rules

    before = records[: next((i for i, r in enumerate(records) if r.kind == "Verdict"), len(records))]
    results = [r.data for r in before if r.kind == "Result"]
    runs = {d.get("arm"): d for d in results if d.get("kind") == "run"}  # the latest run of each arm
    noise = float(next((d.get("noise_floor") for d in runs.values() if d.get("status") == "baseline"), None) or 0.0)
    locked = verdict.get("locked_iteration") or 0
    attempt = next((d for d in results if d.get("kind") == "attempt" and d.get("iteration") == locked), None)
    direction = str(verdict["decision"]["threshold"]["direction"])
    gaps = []
    for arm, info in verdict["arms"].items():
        tuned = attempt is not None and attempt.get("arm") == arm
        dev = (attempt if attempt is not None and tuned else runs.get(arm) or {}).get("score")
        if isinstance(dev, (int, float)) and isinstance(info.get("score"), (int, float)):
            source = f"iteration {locked}, locked" if tuned else "dev run"
            gaps.append(rules.dev_test_gap(arm, float(dev), float(info["score"]), noise, direction, source, tuned))
    return gaps


def gap_alarms(exp: Experiment, records: Sequence[Record], doc: Mapping[str, Any] | None) -> list[str]:
    """The overfitting alarms (rule 21) of a decided experiment, from git alone: reported, not violations."""
    if doc is None:
        return []
    try:
        gaps = dev_test_gaps(records, doc)
    except (KeyError, TypeError, AttributeError):
        return []  # an unreadable verdict.json is already a failed check
    return [f"overfitting alarm (rule 21): {g.sentence()}" for g in gaps if g.alarm]


def _verdict_checks(repo: Repo, exp: Experiment, records: Sequence[Record], verdict: Record, locked: Mapping[str, Any]) -> list[Check]:
    """The checks of the opening itself; a verdict.json rewritten into something unreadable is a
    failed check, never a crash of the audit."""
    doc = verdict_doc(repo, exp, records)
    if doc is None:
        return [("the verdict can be recomputed", False, f"{exp.rel('verdict.json')} in {verdict.commit[:10]} is missing or not a JSON object")]
    try:
        return [_verdict_tagged(exp, verdict), _verdict_locked(records, doc), *provenance.scored_content(repo, exp, records, locked, doc),
                *_recompute_verdict(repo, exp, verdict, doc, locked)]
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return [("the verdict can be recomputed", False, f"{exp.rel('verdict.json')} in {verdict.commit[:10]} is malformed "
                                                         f"({type(exc).__name__}: {exc})")]


def _verdict_tagged(exp: Experiment, verdict: Record) -> Check:
    """The verdict's annotated tag names the branch's verdict commit: a verdict commit amended or
    rebased afterwards leaves the tag on the original. A clone without the tag cannot tell."""
    tagged = exp.verdict_commit
    name = "the verdict commit is the one its tag names"
    if tagged is None:
        moved = exp.repo.rev(f"refs/tags/gitera/{exp.tag}/verdict")
        if moved is not None:  # the tag is here but names no verdict of this experiment: moved with `git tag -f`
            return (name, False, f"gitera/{exp.tag}/verdict names {moved[:10]}, which is not this experiment's verdict "
                                 f"(the branch's is {verdict.commit[:10]}): the tag was moved after the verdict")
        return (name, True, f"gitera/{exp.tag}/verdict not in this clone (`git fetch --tags`): not checked")
    ok = tagged == verdict.commit
    return (name, ok, "" if ok else f"gitera/{exp.tag}/verdict names {tagged[:10]} but the branch's verdict is {verdict.commit[:10]}: "
            "the verdict commit was rewritten after the verdict")


def _verdict_locked(records: Sequence[Record], doc: Mapping[str, Any]) -> Check:
    want = gate_locked_iteration(records)
    got = doc.get("locked_iteration")
    ok = got == want or (want == 0 and got is None)
    return ("the verdict scored the latest gate-passed iteration", ok,
            "" if ok else f"verdict.json locks iteration {got}, the Gitera-Gate trailers give {want}")


SPLIT_UNCHANGED = "the split files are unchanged since the split"
SPLIT_PINS = "the split files match the pins bound into the Split trailer and both seals"


def split_files_unchanged(repo: Repo, exp: Experiment, split_commit: str, tip: str, skip: str = "") -> Check:
    """Every file the split commit wrote under split/ (train, dev, the manifest, the leak index, the
    gate seal, wrapped keys) holds the same blob in every later commit: a relabelled dev.jsonl
    committed with --no-verify, or a file added there, fails. ``skip``: the test seal, checked on its own."""
    folder = exp.rel("split/")
    made = {p: b for p, b in repo.ls_tree(split_commit, [folder]).items() if p != skip}
    now = repo.ls_tree(tip, [folder])
    touched = changed_since(repo, split_commit, tip, made) if made else []
    added = sorted(p for p in now if p not in made and p != skip)
    detail = "; ".join([*(f"{path} in {c}" for path, c in touched[:5]), *(f"{p} added" for p in added[:5])])
    return (SPLIT_UNCHANGED, not touched and not added, detail)


def split_pins_hold(repo: Repo, exp: Experiment, records: Sequence[Record], split_commit: str) -> Check:
    """From git alone, keyless: the Split trailer's pins match train.jsonl and dev.jsonl as the split
    commit holds them and the manifest, and both seals' headers bind the pins' digest. (The
    header's digest is checked with the key when the verdict opens the seal, and again here once
    the key is released.) A split without pins (an older gitera) passes unless a seal binds pins."""
    from gitera.adapters.seal import header_of
    from gitera.core.errors import SealError
    from gitera.domain.splitfiles import GATE_SEAL, TEST_SEAL, digest_of, pins_of, sha256

    record = next((r for r in records if r.kind == "Split" and r.commit == split_commit), None)
    pins = pins_of(record)
    rels = {name: exp.rel(f"split/{name}") for name in ("train.jsonl", "dev.jsonl", "manifest.json", TEST_SEAL, GATE_SEAL)}
    blobs = dict(zip(rels, repo.cat_blobs([f"{split_commit}:{r}" for r in rels.values()])))
    bad: list[str] = []
    headers = {}
    for name in (TEST_SEAL, GATE_SEAL):
        if blobs[name] is not None:
            try:
                headers[name] = header_of(blobs[name] or b"", rels[name]).binding.pins
            except SealError as exc:
                bad.append(str(exc))
    if pins is None:
        bad += [f"{rels[n]} binds pins but the Gitera-Split trailer has none (rewritten)" for n, h in headers.items() if h is not None]
        return (SPLIT_PINS, not bad, "; ".join(bad) or "split made before pins (older gitera): not checked")
    for part in ("train", "dev"):
        if sha256(blobs[f"{part}.jsonl"] or b"") != pins.get(part):
            bad.append(f"{rels[part + '.jsonl']} in {split_commit[:10]} does not match its pin")
    try:
        manifest = json.loads(blobs["manifest.json"] or b"{}")
    except ValueError:
        manifest = {}
    if not isinstance(manifest, dict) or manifest.get("pins") != pins:
        bad.append(f"{rels['manifest.json']} records other pins than the Gitera-Split trailer")
    digest = digest_of(pins)
    bad += [f"{rels[n]} binds pins {str(h)[:12]}…, the trailer's give {str(digest)[:12]}…" for n, h in headers.items() if h != digest]
    if TEST_SEAL not in headers:
        bad.append(f"{rels[TEST_SEAL]} is missing from the split commit")
    return (SPLIT_PINS, not bad, "; ".join(bad[:5]))


def source_copy_warnings(exp: Experiment) -> list[str]:
    """Warnings (not violations: the work tree is not git) while the split's source data file,
    which holds the test rows in the clear, is in the work tree."""
    from gitera.domain.splitfiles import source_copies

    try:
        source = exp.peek_frame().data.source
    except Exception:  # noqa: BLE001 - an unreadable frame is reported by the checks; the warning uses the manifest alone
        source = None
    return source_copies(exp, source)


NO_TEST_ROWS = "no sealed test row in any committed file before the verdict"
OPEN_SPLITS = ("train.jsonl", "dev.jsonl", "gate.jsonl")  # gate.jsonl: splits made before the gate rows were sealed
CIPHERTEXTS = ("test.seal", "key.wrapped", "gate.seal", "gate.key.wrapped")


def _no_test_rows(repo: Repo, exp: Experiment, split_commit: str, until: str) -> Check:
    """Scan every text blob committed from the split up to ``until`` (the verdict's parent, or the tip).

    Nothing is exempt by its path: a file dropped into split/ or runs/, or a row added to a
    gitera file by another commit, is scanned like any other. Only the split's ciphertexts (as
    the split commit wrote them) are skipped. A test row's text that also occurs inside a
    train/dev/gate row as the split wrote them (a near-duplicate in the data, e.g. a short
    question quoted in a longer one) is public by the split's own design: its hits count nowhere.
    """
    from gitera.core.leak import LeakIndex, scan, scan_bytes

    raw = show(repo, split_commit, exp.rel("split/leak.json"))
    if raw is None:
        return (NO_TEST_ROWS, False, "split/leak.json is missing")
    index = LeakIndex.from_dict(json.loads(raw))
    made = repo.ls_tree(split_commit, [exp.rel(f"split/{name}") for name in (*OPEN_SPLITS, *CIPHERTEXTS)])
    opened = {blob for path, blob in made.items() if path.endswith(OPEN_SPLITS)}
    public = {hit.fingerprint for content in repo.cat_blobs(sorted(opened)) if content
              for hit in scan(content.decode("utf-8", errors="replace"), index)}
    paths: dict[str, str] = {}
    for line in repo.git("rev-list", "--objects", until, "--not", f"{split_commit}^@").splitlines():
        oid, sep, path = line.partition(" ")
        if sep and oid not in made.values():
            paths[oid] = path
    hits = set()
    for (oid, path), content in zip(paths.items(), repo.cat_blobs(list(paths))):
        if content is None:
            continue
        # scan_bytes: UTF-16 text, gzip files and base64 payloads too, as the leak hook reads them
        hits |= {f"{path}:{hit.line_no}" for hit in scan_bytes(content, index) if hit.fingerprint not in public}
    return (NO_TEST_ROWS, not hits, "; ".join(sorted(hits)[:5]))


RULES_APPLIED = "verdict.json records the locked frame's rules"


def _registered(locked: Mapping[str, Any], exp: Experiment, doc: Mapping[str, Any]) -> Frame:
    """The locked frame the verdict had to apply (its rules, slices, severity, trials: rule 3),
    as the gitera that wrote ``doc`` read it: before "slice_columns" was recorded, the verdict
    analysed only the first slice column and no severity weights."""
    from dataclasses import replace

    from gitera.core.frame import parse_frame

    frame = parse_frame(locked, {}, exp.frame_rel)
    if "slice_columns" in doc:
        return frame
    return replace(frame, data=replace(frame.data, slices=frame.data.slices[:1]), metric=replace(frame.metric, severity=None))


def _recorded_rules(doc: Mapping[str, Any], frame: Frame) -> list[str]:
    """Where verdict.json's record of the rules differs from the locked frame's (a forged verdict.json)."""
    from dataclasses import asdict

    from gitera.core.verdict import registered_threshold

    want = {"threshold": asdict(registered_threshold(frame)), "slice columns": list(frame.data.slices),
            "severity column": frame.metric.severity, "trials": list(range(frame.metric.trials))}
    got = {"threshold": doc["decision"].get("threshold"), "slice columns": doc.get("slice_columns", want["slice columns"]),
           "severity column": doc.get("severity_column", want["severity column"]), "trials": doc.get("trials")}
    return [f"verdict.json records {k} {got[k]} but the locked frame registers {v}" for k, v in want.items() if got[k] != v]


def _recompute_verdict(repo: Repo, exp: Experiment, verdict: Record, doc: Mapping[str, Any], locked: Mapping[str, Any]) -> list[Check]:
    try:
        frame = _registered(locked, exp, doc)
    except ConfigError as exc:
        return [(RULES_APPLIED, False, f"the locked frame does not parse: {exc}")]
    differ = _recorded_rules(doc, frame)
    checks: list[Check] = [(RULES_APPLIED, not differ, "; ".join(differ))]
    if not doc.get("key"):
        return [*checks, ("the verdict can be recomputed", True, "key kept by its custodian (--keep-key): recomputed decision not checked here")]
    import base64
    import shutil
    import tempfile
    from pathlib import Path

    from gitera.adapters import seal
    from gitera.adapters.seal import derive_commitment_salt
    from gitera.core.results import matrix
    from gitera.core.verdict import apply_rules
    from gitera.domain.scoring import relpath
    from gitera.domain.splitfiles import expected_pins

    key = seal.DataKey(base64.b64decode(doc["key"]))
    salt = derive_commitment_salt(key.secret)
    checks.append(("the released key opens the split's commitment", salt.hex() == doc["opening"]["salt"], ""))
    if doc.get("level") == "run":  # sealed files, one score per run (docs/run-level.md)
        from gitera.domain.runaudit import recompute_verdict

        return [*checks, *recompute_verdict(repo, exp, verdict.commit, doc, frame, key, salt)]
    work = Path(tempfile.mkdtemp(prefix="gitera-verify-"))
    try:
        sealed = work / "test.seal"
        sealed.write_bytes(show(repo, verdict.commit, doc["seal"]["path"]) or b"")
        plain = work / "test.jsonl"
        try:
            pins = expected_pins(exp, rev=verdict.commit)  # the pins of the split files the verdict saw
            seal.open_seal(sealed, key, seal.Binding(exp.tag, doc["frame"], doc["seal"]["path"], pins), plain,
                           commitment=(salt, doc["opening"]["commitment"]))
        except Exception as exc:  # noqa: BLE001 - any seal error is a failed check, reported in words
            return [*checks, ("the sealed test set opens with the released key", False, str(exc))]
        rows = [json.loads(x) for x in plain.read_text().splitlines() if x.strip()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ids = [str(r["id"]) for r in rows]
    checks.append(("the scored test rows are exactly the sealed ones", ids == doc["row_ids"], ""))
    trials = list(range(frame.metric.trials))
    mats = {arm: matrix(records_file(repo, verdict.commit, relpath(exp, f"test/{arm}.jsonl")) or [], ids, trials) for arm in frame.arms}
    dec = doc["decision"]
    recorded_slices = dec["slices"]
    if "slice_columns" not in doc and frame.data.slices:  # older verdicts: plain names of the first column's slices
        recorded_slices = [f"{frame.data.slices[0]}={n}" for n in recorded_slices]
    again = apply_rules(frame, doc["frame"], mats, rows).to_dict()
    same = again["decision"] == dec["decision"] and again["arm"] == dec["arm"] and again["slices"] == recorded_slices
    checks.append(("the verdict recomputed from the test rows is the same", same,
                   "" if same else f"recorded {dec['decision']} {dec['arm']}, recomputed {again['decision']} {again['arm']} with the locked frame's rules"))
    recorded = {a["name"]: _effects(a) for a in dec["arms"]}
    effects_ok = all(a["name"] in recorded and all(map(_close, _effects(a), recorded[a["name"]])) for a in again["arms"])
    checks.append(("the recorded test effects match the per-row files", effects_ok, ""))
    return checks


def _effects(arm: Mapping[str, Any]) -> tuple[Any, Any]:
    """An arm's test effect, and its unweighted effect when the effect is severity-weighted."""
    return arm["effect"], (arm.get("unweighted") or {}).get("effect")


def _close(a: float | None, b: float | None) -> bool:
    return a is None and b is None or a is not None and b is not None and math.isclose(a, b, abs_tol=1e-9)


# --- an abandoned experiment (gitera abandon) and imported history (gitera import) ----------
def abandon_checks(repo: Repo, exp: Experiment, records: Sequence[Record], tip: str) -> list[Check]:
    """For an abandoned experiment: it was abandoned before any opening, and nothing happened to it after."""
    marks = [r for r in records if r.kind == "Abandon"]
    if not marks:
        return []
    mark = marks[0]
    when = f"{mark.data.get('at', '?')}: {mark.data.get('reason', '?')}"
    opened = [r.commit[:10] for r in records if r.kind == "Verdict"]
    since = set(repo.git("rev-list", f"{mark.commit}..{tip}").split())
    later = sorted({r.commit[:10] for r in records if r.commit in since}
                   | {c[:10] for c in repo.git("rev-list", f"{mark.commit}..{tip}", "--", exp.rel("")).split()})
    return [
        ("the experiment was abandoned, not concluded", True, when),
        ("abandoned without opening the test set (no verdict, no released key)", not opened,
         f"a verdict in {', '.join(opened)}" if opened else ""),
        ("nothing recorded for the experiment after its abandonment", not later and len(marks) == 1,
         f"later commits {', '.join(later[:5])}" if later else ("abandoned twice" if len(marks) > 1 else "")),
    ]


def import_checks(repo: Repo, exp: Experiment, records: Sequence[Record], tip: str) -> list[Check]:
    """Imported history (gitera import): recorded as unscored, unchanged since, and read by no decision."""
    import hashlib

    from gitera.core.resultstsv import parse_results_tsv

    imports = [r for r in records if r.kind == "Import"]
    if not imports:
        return []
    bad, changed = [], []
    for r in imports:
        path = str(r.data.get("file") or "")
        raw = show(repo, r.commit, path) if path else None
        where = f"{r.commit[:10]} {path or '(no file)'}"
        if raw is None or hashlib.sha256(raw).hexdigest() != r.data.get("sha256"):
            bad.append(f"{where}: the committed file is missing or not the one recorded")
            continue
        try:
            rows = len(parse_results_tsv(raw.decode("utf-8", errors="replace"), path).rows)
        except ConfigError as exc:
            bad.append(f"{where}: {exc.message}")
            continue
        if rows != r.data.get("rows") or r.data.get("scored") is not False or r.data.get("evidence") is not False:
            bad.append(f"{where}: the Gitera-Import record does not mark {rows} rows as unscored, never evidence")
        changed += [f"{path} in {c}" for _, c in changed_since(repo, r.commit, tip, {path: repo.ls_tree(r.commit, [path]).get(path, "")})]
    folder = exp.rel("imported/")
    used = [f"{r.commit[:10]} {r.kind}" for r in records if r.kind in ("Result", "Gate", "Verdict") and str(r.data.get("rows") or "").startswith(folder)]
    return [
        ("imported history is recorded as unscored, never evidence", not bad and not used, "; ".join((bad + [f"read by {u}" for u in used])[:5])),
        ("imported history unchanged since its import", not changed, "; ".join(changed[:5])),
    ]
