"""The verdict: the ONE opening of the sealed test set, and what it records.

The only code path that unwraps the seal key. It refuses unless the lock is intact, the
tree is clean, the seal is the one made at the split, every sprint ended with its gate and
every gate record is authentic and re-derives (gitera.domain.rederive); it scores the
baseline and the locked arms (the iterated arm at the target content of its latest
gate-passed attempt, read from git by content hash — never its best-scoring one, never what
the tip holds) on the test rows in one pass, applies the pre-registered rules
(gitera.core.verdict), and commits the per-row test results, the released keys (unless
--keep-key), the commitment's opening, the conclusion and its charts, then tags the commit.

One opening, even when killed (``open_once``): before the key is used a commit records that
the test set is being opened; from then on every verdict, run, iterate and gate refuses,
whether or not this one concludes. What the opening leaves on disk (decrypted rows, per-row
test scores) is destroyed when the process ends, even under SIGKILL (gitera.adapters.deadman);
a failure after the opening is recorded as its abort. A second kind of verdict (a run-level
experiment) reuses ``open_once`` with its own scoring.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gitera.adapters.deadman import Switch
from gitera.adapters.git import Repo, blob_id_for
from gitera.adapters.history import Record
from gitera.adapters.output import Output
from gitera.adapters.repolock import state_dir
from gitera.core.errors import EvalError, GiteraError, RefusedError
from gitera.core.frame import Frame
from gitera.core.loopstate import ACTIVE
from gitera.core.results import matrix, mean_of, sanitize
from gitera.core.trailers import build_message
from gitera.core.verdict import apply_rules, count_findings, decision_sentence, slice_scores
from gitera.domain.experiment import Experiment, frame_hash, require_intact, require_on_branch
from gitera.domain.records import Gated, gated_content, kept_attempts, trailers
from gitera.domain.scoring import Scorer, arm_commit, relpath, require_open, require_split, results_jsonl, unconcluded_opening
from gitera.domain.splitfiles import expected_pins

VERDICT_FILE = "verdict.json"
OPENING_FILE = "opening.json"


def seal_commit_blob(exp: Experiment, manifest: Mapping[str, Any]) -> str | None:
    """The seal's blob id in the split commit (the one whose trailer names this seal id)."""
    from gitera.domain.records import trailers

    for r in trailers(exp.repo, exp):  # git's own records: the history cache is an ordinary file
        if r.kind == "Split" and r.data.get("seal_id") == manifest["seal"]["seal_id"]:
            return exp.repo.ls_tree(r.commit, [manifest["seal"]["path"]]).get(manifest["seal"]["path"])
    return None


def check_ready(exp: Experiment, frame: Frame, manifest: Mapping[str, Any], gated: Gated | None) -> Any:
    """Every refusal of the verdict, in words; returns the loop state (or None)."""
    from gitera.domain.loopstore import load_state

    repo = exp.repo
    dirty = [p for code, p in repo.status_porcelain() if code != "??"]
    if dirty:
        raise RefusedError(f"the working tree has uncommitted changes ({', '.join(dirty[:5])}); commit or stash them — the verdict scores committed states only.")
    seal_rel = manifest["seal"]["path"]
    now = repo.ls_tree("HEAD", [seal_rel]).get(seal_rel)
    then = seal_commit_blob(exp, manifest)
    if then is None or now != then:
        raise RefusedError(f"{seal_rel} is not the seal made at the split (seal {manifest['seal']['seal_id'][:12]}); restore it from the split commit — the verdict opens only that seal.")
    from gitera.domain.runs import latest_run

    summary = latest_run(exp)
    if frame.eval.cross_judge is not None and summary is not None:
        report = summary.get("cross_judge")
        if report is None:
            raise RefusedError("the frame declares a cross_judge but the latest run has no cross-judge check; run `gitera run` again.")
        if report.get("flagged"):
            raise RefusedError("the cross-judge disagreed with the judge on 2 or more of 5 dev rows: the metric is not trustworthy; "
                               "fix the rubric in a new experiment (rule 15).")
    state = load_state(exp)
    if state is not None:
        if state.pending:
            raise RefusedError(f"the last iterate step is unfinished ({', '.join(state.pending)}); run `gitera iterate` or `gitera gate` to finish it first.")
        if state.in_sprint > 0 and state.status == "active":
            raise RefusedError(
                f"sprint {state.sprint} has {state.in_sprint} attempt(s) without its generalization gate; run `gitera gate` first."
            )
        _state_matches_history(exp, state, gated)
    return state


def _state_matches_history(exp: Experiment, state: Any, gated: Gated | None) -> None:
    """The loop state file is an ordinary committed file: say so when it disagrees with git. (The
    verdict takes nothing from it: what it scores comes from the trailers and the attempt commits.)"""
    gp = state.gate_passed
    if gp is None or gated is None:
        return
    state_file = exp.rel("runs/iterate.json")
    if gp.iteration != gated.iteration:
        raise RefusedError(f"{state_file} says iteration {gp.iteration} is the latest gate-passed state but the Gitera-Gate "
                           f"trailers say {gated.iteration}; the state file was edited — restore it from the last gitera commit.")
    if gp.blobs != {p: b for p, b in gated.targets.items() if b is not None}:
        raise RefusedError(f"{state_file} records target files for iteration {gp.iteration} that differ from that attempt's "
                           f"commit {gated.commit[:10]}; the state file was edited — restore it from the last gitera commit.")


def require_gated_tip(exp: Experiment, frame: Frame, records: Sequence[Record], gated: Gated, state: Any) -> None:
    """Refuse a target file the tip holds with content no gitera step left there: the gated state,
    or a kept attempt after it (work a stop left ungated). A plain `git commit` is not an attempt."""
    assert frame.iterate is not None
    repo, targets = exp.repo, list(frame.iterate.target)
    tip = repo.ls_tree(f"refs/heads/{exp.branch}", targets)
    held = {t: tip.get(t) for t in targets}
    allowed = [gated.targets] + [{t: b.get(t) for t in targets} for b in
                                 (repo.ls_tree(r.commit, targets) for r in kept_attempts(records)
                                  if int(r.data.get("iteration") or 0) > gated.iteration)]
    if held in allowed:
        return
    changed = [t for t in targets if held[t] != gated.targets[t]]
    last = repo.git("log", "-1", "--format=%h %s", f"refs/heads/{exp.branch}", "--", *targets).strip()
    closed = state is not None and state.status != ACTIVE
    how = ("the loop is closed, so this experiment can no longer test it" if closed else
           "to test it, run `gitera iterate -m HYPOTHESIS` (the change is scored as an attempt, and its sprint ends with the gate)")
    raise RefusedError(
        f"{', '.join(changed)} at the tip of {exp.branch} was changed outside the loop (last by {last or 'an unknown commit'}): "
        f"the verdict scores the arm {frame.iterate.arm} only at content the loop scored and gated — iteration {gated.iteration}, "
        f"in {gated.commit[:10]}; {how}; or put the gated content back (`git checkout {gated.commit[:10]} -- {' '.join(changed)}`, "
        "then commit) and run the verdict again."
    )


def _authentic_gates(exp: Experiment, frame: Frame, records: Sequence[Record], private_key: str | None) -> bytes | None:
    """Refuse unless every Gitera-Gate record carries the gate-record key's MAC and re-derives from what git holds;
    returns the gate-record key (None when no gate ran)."""
    from gitera.domain.rederive import review_gates

    gates = [r for r in records if r.kind == "Gate"]
    if not gates:
        return None
    key = _record_key(exp, private_key)
    if key is None:
        raise RefusedError(
            f"the gate-record key of {exp.tag} (.git/gitera/keys/{exp.tag}.recordkey) is not here, so its {len(gates)} gate record(s) cannot "
            "be authenticated; run the verdict in the clone where the gates ran, or copy that key file here (mode 0600)."
        )
    review = review_gates(exp.repo, exp, frame, records, key)
    problems = review.forged + review.scans + review.decisions
    if problems:
        raise RefusedError(f"a gate record does not hold: {problems[0]}{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; "
                           "gate records are written by `gitera gate` alone — restore the branch to what gitera committed "
                           "(`gitera verify` lists every problem).")
    return key


def _record_key(exp: Experiment, private_key: str | None) -> bytes | None:
    """The gate-record key from the key store, or (recipient mode, the verdict run by the custodian
    elsewhere) the copy the first gate wrapped to the seal's recipient."""
    from gitera.adapters import keys
    from gitera.domain.gating import RECORD_KEY_WRAPPED

    key = keys.record_key(exp.repo.common_dir, exp.tag)
    wrapped = exp.path(f"runs/{RECORD_KEY_WRAPPED}")
    if key is None and wrapped.exists():
        key = keys.unwrap_record_key_for_verdict(wrapped.read_bytes(), exp.tag, str(wrapped), private_key, os.environ)
    return key


def _require_no_dropped_opening(exp: Experiment) -> None:
    """A branch reset or rebased to before an opening (and its tag deleted) must not reopen the
    test set: the branch's reflog still reaches the opening. (A fresh clone of such a branch has no
    reflog of it; docs/threat-model.md says what stops that.)"""
    from gitera.domain.provenance import lost_records

    tip = exp.repo.rev(f"refs/heads/{exp.branch}") or ""
    gone = [c for c, key, _ in sorted(lost_records(exp.repo, exp, tip) or [], key=lambda r: r[1] != "Opening") if key in ("Opening", "Verdict")]
    if gone:
        raise RefusedError(f"the test set of {exp.tag} was already opened in {gone[0][:10]}, a commit the branch {exp.branch} no longer "
                           "holds (its history was reset or rewritten); a test set is opened once — a new question needs a new "
                           "experiment with fresh test rows (`gitera init NEW_TAG`).")


@dataclass(frozen=True)
class ArmPlan:
    """What the verdict scores for one arm, fixed before the test set is opened."""

    commit: str
    what: str
    targets: dict[str, str | None] = field(default_factory=dict)  # the iterated arm's target blobs
    iteration: int | None = None


def locked_arms(exp: Experiment, frame: Frame, gated: Gated | None, looped: bool = True) -> dict[str, ArmPlan]:
    """The baseline and candidates; the iterated arm at its gated content, by content hash (``looped``:
    the loop made an attempt; if not, that content is the arm as registered and measured by the run)."""
    arms = {arm: ArmPlan(arm_commit(exp, frame, arm), "as registered") for arm in frame.arms}
    if frame.iterate is not None and gated is not None:
        repo = exp.repo
        tip = repo.rev(f"refs/heads/{exp.branch}")
        assert tip is not None
        paths = [p for p, b in gated.targets.items() if b is not None]
        contents = dict(zip(paths, repo.cat_blobs([gated.targets[p] or "" for p in paths])))
        files = {p: contents.get(p) for p in gated.targets}
        commit = repo.make_commit(tip, files, f"gitera candidate: locked iteration {gated.iteration}")
        what = f"iteration {gated.iteration} (the latest gate-passed state)" if looped else "as registered"
        arms[frame.iterate.arm] = ArmPlan(commit, what, dict(gated.targets), gated.iteration)
    return arms


@dataclass(frozen=True)
class Opened:
    """The opening in progress: its commit, and the private places its plaintext may touch."""

    commit: str
    work: Path  # decrypted rows and the harness's work dirs, under .git/gitera/verdict-<token>
    token: str  # in the name of every checkout slot the opening scores in (worktrees/verdict-<token>-<arm>)
    switch: Switch

    def slot(self, arm: str) -> str:
        return f"verdict-{self.token}-{arm}"

    def conclude(self, exp: Experiment, files: Mapping[str, bytes | None], message: str) -> str:
        """Commit the conclusion. Its objects are written before the branch moves: should the process
        die in between, the dead man's switch deletes them, so no dangling blob holds test results."""
        repo = exp.repo
        ref = f"refs/heads/{exp.branch}"
        old = repo.rev(ref) or ""
        ids = {p: blob_id_for(c, len(old)) for p, c in files.items() if c is not None}
        fresh = set(ids.values()) - repo.present(sorted(set(ids.values())))
        self.switch.objects([repo.loose_path(o) for o in sorted(fresh)])
        secret_dirs = {"/".join(p.split("/")[:i]) for p, o in ids.items() if o in fresh for i in range(p.count("/") + 1)}

        def before_update(commit: str) -> None:
            listed = [line.split(" ", 1) for line in repo.git("rev-list", "--objects", commit, "--not", old).splitlines()]
            new_trees = [e[0] for e in listed if len(e) == 2 and e[1] in secret_dirs] + [e[0] for e in listed if len(e) == 1]
            root_tree = repo.git("rev-parse", f"{commit}^{{tree}}").strip()
            self.switch.objects([repo.loose_path(o) for o in [*new_trees, root_tree]])
            self.switch.landing(repo.root, ref, commit)

        commit = repo.commit_files(exp.branch, files, message, before_update=before_update)
        self.switch.landed()  # the branch is on it: its objects stay, whatever the branch does next
        return commit


@contextmanager
def open_once(exp: Experiment, record: Mapping[str, Any], out: Output) -> Iterator[Opened]:
    """Record that the test set is being opened, then run the block that opens and scores it.

    One commit (trailer ``Gitera-Opening``, file ``opening.json``) before the block: from it on
    every verdict, run, iterate and gate refuses (``require_open``), finished or not. What the
    block writes under ``Opened.work`` and in its checkout slots (decrypted rows, per-row test
    scores, whatever the harness leaves in its working directory) is destroyed when the process
    ends, even under SIGKILL. A failure inside the block is committed as the opening's abort, and
    the error says the experiment is now closed. The block's last act must be its conclusion commit.
    """
    import secrets

    from gitera.adapters.deadman import destroyed_on_exit

    repo = exp.repo
    base = state_dir(repo.common_dir)
    token = secrets.token_hex(6)
    work = base / f"verdict-{token}"
    with destroyed_on_exit([str(work), str(base / "worktrees" / f"verdict-{token}-*")]) as switch:
        work.mkdir(mode=0o700)
        doc = {"status": "opened", **record}
        message = build_message(f"gitera verdict: {exp.tag}: opening the sealed test set", [("Tag", exp.tag), ("Opening", doc)],
                                body="Recorded before the key is used: the test set is opened once, whether or not this verdict concludes.")
        opened = repo.commit_files(exp.branch, {exp.rel(OPENING_FILE): _json(doc)}, message)
        out.info(f"verdict: the opening of the sealed test set is recorded in {opened[:10]}; from now on {exp.tag} is closed to runs and iterations")
        try:
            yield Opened(opened, work, token, switch)
        except (Exception, KeyboardInterrupt) as exc:
            reason = exc.message if isinstance(exc, GiteraError) else "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            _abort(exp, opened, doc, reason, out)
            if isinstance(exc, GiteraError):
                raise GiteraError(f"{exc.message.rstrip('.')}. {unconcluded_opening(exp.tag, opened, reason)}", exc.exit_code) from None
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _abort(exp: Experiment, opened: str, doc: Mapping[str, Any], reason: str, out: Output) -> None:
    record = {"status": "aborted", "opening": opened, "reason": reason[:500]}
    message = build_message(f"gitera verdict: {exp.tag}: aborted after opening the test set", [("Tag", exp.tag), ("Opening", record)],
                            body="The test set was opened and the verdict did not conclude: the experiment is closed without a decision.")
    try:
        exp.repo.commit_files(exp.branch, {exp.rel(OPENING_FILE): _json({**doc, "aborted": record})}, message)
    except GiteraError as exc:  # the opening itself is recorded: that is what closes the experiment
        out.warn(f"the verdict's abort could not be recorded ({exc.message})")


def _json(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def _keyless_seal_checks(path: Path, seal_rel: str, key_id: str, tag: str, fhash: str, pins: str | None) -> None:
    """Before the opening: the header, the binding (the split files' pins included) and the key id
    (no decryption), so a wrong key, a seal of another experiment or a split file changed since the
    split refuses with nothing opened."""
    from gitera.adapters import seal

    header = seal.read_header(path)
    seal.check_binding(header, seal.Binding(tag, fhash, seal_rel, pins), path)
    if header.key_id != key_id:
        raise seal.SealWrongKey(f"{path} was sealed with key {header.key_id} but the key supplied has id {key_id}; "
                                f"supply the key of experiment '{tag}'.")


def conclude(repo: Repo, exp: Experiment, keep_key: bool, private_key: str | None, out: Output) -> int:
    from gitera.adapters import keys, seal
    from gitera.core import rules

    require_on_branch(exp)
    lock = require_intact(exp)
    require_open(exp)
    _require_no_dropped_opening(exp)
    manifest = require_split(exp)
    frame = exp.load_frame()
    records = trailers(repo, exp)
    gated = gated_content(repo, records, frame.iterate.arm, frame.iterate.target) if frame.iterate is not None else None
    state = check_ready(exp, frame, manifest, gated)
    if gated is not None:
        require_gated_tip(exp, frame, records, gated, state)
    record_key = _authentic_gates(exp, frame, records, private_key)
    fhash = frame_hash(dict(lock))
    seal_rel = manifest["seal"]["path"]
    wrapped = exp.path("split/key.wrapped")
    key = keys.unwrap_for_verdict(git_common_dir=repo.common_dir, tag=exp.tag, wrapped_path=wrapped if wrapped.exists() else None,
                                  env=os.environ, private_key=private_key)
    if frame.metric.level == "run":  # sealed files and one score per run (docs/run-level.md), opened once alike
        from gitera.domain.runverdict import conclude_runs

        return conclude_runs(repo, exp, frame, lock, manifest, state, key, keep_key, out, open_once)
    gate_key = _gate_key(exp, manifest, private_key)  # before the opening: a gate key that fails to unwrap opens nothing
    pins = expected_pins(exp)
    _keyless_seal_checks(repo.root / seal_rel, seal_rel, key.key_id, exp.tag, fhash, pins)
    arms = locked_arms(exp, frame, gated, looped=any(r.kind == "Result" and r.data.get("kind") == "attempt" for r in records))
    scored = {a: {"commit": p.commit, "what": p.what, **({"iteration": p.iteration, "targets": p.targets} if p.targets else {})}
              for a, p in arms.items()}
    opening_record = {"seal_id": manifest["seal"]["seal_id"], "key_id": manifest["seal"]["key_id"],
                      "commitment": manifest["commitment"]["value"], "frame": fhash, "arms": scored}
    with open_once(exp, opening_record, out) as opened:
        salt = seal.derive_commitment_salt(key.secret)
        plain = opened.work / "test.jsonl"
        try:
            # bound to the pins of the split files as they are now: a relabelled dev.jsonl leaves the seal shut
            seal.open_seal(repo.root / seal_rel, key, seal.Binding(exp.tag, fhash, seal_rel, pins), plain,
                           commitment=(salt, manifest["commitment"]["value"]))
            rows = [json.loads(line) for line in plain.read_text(encoding="utf-8").splitlines() if line.strip()]
        finally:
            plain.unlink(missing_ok=True)
        ids = [str(r["id"]) for r in rows]
        if frame.metric.severity:
            rules.severity_weights(rows, frame.metric.severity)  # before any arm is scored: a bad weight wastes no eval calls
        trials = list(range(frame.metric.trials))
        scorer = Scorer(exp, frame, lock, out, use_cache=False, work_root=opened.work / "work")
        results: dict[str, Any] = {}
        for arm, plan in arms.items():
            out.info(f"verdict: arm {arm} ({plan.what}) on {len(rows)} sealed test rows × {len(trials)} trials")
            results[arm] = scorer.score(arm, plan.commit, rows, "test", trials, slot=opened.slot(arm))
        if any(r.aggregate_only for r in results.values()):
            raise RefusedError("the harness reports only `SCORE:` aggregates: the verdict's paired tests and slices need one result line per row "
                               "in $GITERA_OUT (docs/eval-contract.md)")
        incomplete = [a for a, r in results.items() if not r.complete]
        if incomplete:
            raise EvalError(f"arm(s) {', '.join(incomplete)} left test rows unscored ({results[incomplete[0]].problems[:1]}): "
                            "no decision on partial data (rule 13)")
        records_of = {a: [x.to_json() for x in r.results] for a, r in results.items()}
        mats = {a: matrix(records_of[a], ids, trials) for a in results}
        decision = apply_rules(frame, fhash, mats, rows)
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        doc_dir = f"docs/experiments/{day}-{exp.tag}"
        files: dict[str, bytes | None] = {}
        arm_summary: dict[str, dict[str, Any]] = {}
        for arm in results:
            m = mats[arm]
            tm = m.mean(axis=0)
            cost = mean_of(records_of[arm], "cost_usd")
            rows_file = relpath(exp, f"test/{arm}.jsonl")
            files[rows_file] = results_jsonl(results[arm])
            arm_summary[arm] = {
                "what": arms[arm].what, "commit": arms[arm].commit, "score": sanitize(float(m.mean())),
                "sd": sanitize(float(tm.std(ddof=1))) if len(trials) > 1 else None,
                "cost_per_1k": sanitize(cost * 1000 if cost is not None else None), "latency_ms": sanitize(mean_of(records_of[arm], "latency_ms"), 3),
                "rows_file": rows_file, "rows_sha256": hashlib.sha256(files[rows_file] or b"").hexdigest(),
                "findings": count_findings(records_of[arm]),
                "slices": slice_scores(m, rows, frame.data.slices, frame.threshold.alpha),
                **({"iteration": arms[arm].iteration, "targets": arms[arm].targets} if arms[arm].targets else {}),
            }
        opening = {"salt": salt.hex(), "commitment": manifest["commitment"]["value"]}
        verdict_doc: dict[str, Any] = {
            "tag": exp.tag, "frame": fhash, "decided_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            # every slice column, slices named column=value (older verdicts: "slice_column", its first one, plain values)
            "decision": decision.to_dict(), "arms": arm_summary, "slice_columns": list(frame.data.slices),
            "cluster_column": frame.data.cluster, "severity_column": frame.metric.severity,
            "n_test": len(ids), "trials": trials,
            "seal": {"path": seal_rel, "seal_id": manifest["seal"]["seal_id"], "key_id": manifest["seal"]["key_id"]},
            "opening": opening, "opened_in": opened.commit,
            "key": None if keep_key else base64.b64encode(key.secret).decode(), "key_released": not keep_key,
            # the reusable holdout's noise seed, the gate key and the gate-record key, secret while the loop ran, are released with the key
            "holdout_seed": None if keep_key else _released_holdout_seed(repo, exp.tag, gate_key),
            "gate_key": None if keep_key or gate_key is None else base64.b64encode(gate_key.secret).decode(),
            "record_key": None if keep_key or record_key is None else base64.b64encode(record_key).decode(),
            "locked_iteration": gated.iteration if gated is not None and state is not None and state.gate_passed is not None else None,
            "row_ids": ids, "conclusion": doc_dir,
        }
        files[exp.rel(VERDICT_FILE)] = _json(verdict_doc)
        from gitera.domain.conclusion import build

        files.update(build(exp, frame, verdict_doc, doc_dir))
        iterated = {a: {"iteration": p.iteration, "targets": p.targets} for a, p in arms.items() if p.targets}
        trailer = {"decision": decision.decision, "arm": decision.arm, "slices": list(decision.slices), "frame": fhash,
                   "seal_id": manifest["seal"]["seal_id"], "commitment": manifest["commitment"]["value"], "key_released": not keep_key,
                   "n_test": len(ids), "conclusion": f"{doc_dir}/conclusion.md", "opening": opened.commit, "scored": iterated,
                   "rows": {a: arm_summary[a]["rows_sha256"] for a in arm_summary}}
        sentence = decision_sentence(decision.to_dict(), frame)
        message = build_message(f"gitera verdict: {exp.tag}: {decision.decision.replace('_', ' ')}", [("Tag", exp.tag), ("Verdict", trailer)], body=sentence)
        commit = opened.conclude(exp, files, message)  # the block's last act
    repo.git("tag", "-a", f"gitera/{exp.tag}/verdict", "-m", f"gitera verdict for {exp.tag}: {sentence}", commit)
    push = push_command(repo, exp)
    out.result({"tag": exp.tag, "commit": commit, "decision": decision.to_dict(), "conclusion": f"{doc_dir}/conclusion.md",
                "charts": sorted(p for p in files if p.endswith((".png", ".svg"))), "push": push},
               f"{sentence}\nConclusion: {doc_dir}/conclusion.md\nCharts: {doc_dir}/*.png, *.svg\n"
               f"Recorded in {commit[:10]} (tag gitera/{exp.tag}/verdict); the test set is now opened and the experiment closed.\n"
               f"Push the branch WITH its tag: `{push}` (a plain `git push` leaves the tag behind, and without it other "
               "clones' hooks keep the experiment's files locked and `gitera verify` cannot check the verdict).")
    return 0


def push_command(repo: Repo, exp: Experiment) -> str:
    """How to publish the verdict: the branch and, with --follow-tags, its annotated verdict tag (issue 14)."""
    remotes = repo.git("remote").split()
    remote = "origin" if "origin" in remotes or not remotes else remotes[0]
    return f"git push --follow-tags {remote} {exp.branch}"


def _released_holdout_seed(repo: Repo, tag: str, gate_key: Any) -> int | None:
    from gitera.adapters.keys import derive_holdout_seed, holdout_seed_path

    try:
        return int(holdout_seed_path(repo.common_dir, tag).read_text().strip())
    except (OSError, ValueError):
        return None if gate_key is None else derive_holdout_seed(gate_key)  # None: no gate key (an older split)


def _gate_key(exp: Experiment, manifest: Mapping[str, Any], private_key: str | None) -> Any:
    """The gate seal's key, to release with the test key (local key file, else unwrapped by the custodian)."""
    from gitera.adapters import keys

    gate = manifest.get("gate_seal")
    if not isinstance(gate, dict):
        return None
    wrapped = exp.path("split/gate.key.wrapped")
    key = keys.release_gate_key(git_common_dir=exp.repo.common_dir, tag=exp.tag, wrapped_path=wrapped if wrapped.exists() else None,
                                env=os.environ, private_key=private_key)
    return key if key is not None and key.key_id == gate.get("key_id") else None


