"""The verdict: the ONE opening of the sealed test set, and what it records.

The only code path that unwraps the seal key. It refuses unless the lock is intact, the
tree is clean, the seal is the one made at the split, and every sprint ended with its
gate; it scores the baseline and the locked arms (the iterated arm at its latest
gate-passed state, never its best-scoring one) on the test rows in one pass, applies
the pre-registered rules (gitera.core.verdict), and commits the per-row test results, the released key (unless
--keep-key), the commitment's opening, the conclusion and its charts, then tags the commit.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import state_dir
from gitera.core.errors import EvalError, RefusedError
from gitera.core.frame import Frame
from gitera.core.results import matrix, mean_of, sanitize
from gitera.core.trailers import build_message
from gitera.core.verdict import apply_rules, count_findings, decision_sentence, slice_scores
from gitera.domain.experiment import Experiment, frame_hash, require_intact, require_on_branch
from gitera.domain.scoring import Scorer, arm_commit, relpath, require_open, require_split, results_jsonl
from gitera.domain.splitfiles import expected_pins

if TYPE_CHECKING:
    pass


VERDICT_FILE = "verdict.json"


def seal_commit_blob(exp: Experiment, manifest: Mapping[str, Any]) -> str | None:
    """The seal's blob id in the split commit (the one whose trailer names this seal id)."""
    from gitera.domain.records import trailers

    for r in trailers(exp.repo, exp):  # git's own records: the history cache is an ordinary file
        if r.kind == "Split" and r.data.get("seal_id") == manifest["seal"]["seal_id"]:
            return exp.repo.ls_tree(r.commit, [manifest["seal"]["path"]]).get(manifest["seal"]["path"])
    return None


def check_ready(exp: Experiment, frame: Frame, manifest: Mapping[str, Any]) -> Any:
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
        _state_matches_history(exp, frame, state)
    return state


def _state_matches_history(exp: Experiment, frame: Frame, state: Any) -> None:
    """The loop state file is an ordinary committed file: check what the verdict takes from it against the trailers."""
    from gitera.domain.records import attempt_commit, gate_locked_iteration, trailers

    gp = state.gate_passed
    if gp is None or frame.iterate is None:
        return
    records = trailers(exp.repo, exp)
    want = gate_locked_iteration(records)
    state_file = exp.rel("runs/iterate.json")
    if want is not None and gp.iteration != want:
        raise RefusedError(f"{state_file} says iteration {gp.iteration} is the latest gate-passed state but the Gitera-Gate "
                           f"trailers say {want}; the state file was edited — restore it from the last gitera commit.")
    commit = attempt_commit(records, gp.iteration) if gp.iteration > 0 else None
    if commit is not None and exp.repo.ls_tree(commit, list(frame.iterate.target)) != gp.blobs:
        raise RefusedError(f"{state_file} records target files for iteration {gp.iteration} that differ from that attempt's "
                           f"commit {commit[:10]}; the state file was edited — restore it from the last gitera commit.")


def locked_arms(exp: Experiment, frame: Frame, state: Any) -> dict[str, tuple[str, str]]:
    """arm -> (commit to score, what it is): the baseline and candidates; the iterated arm at its gate-passed state."""
    from gitera.domain.loopstore import point_commit

    arms: dict[str, tuple[str, str]] = {}
    for arm in frame.arms:
        arms[arm] = (arm_commit(exp, frame, arm), "as registered")
    if frame.iterate is not None and state is not None and state.gate_passed is not None:
        gp = state.gate_passed
        commit = point_commit(exp, frame.iterate.target, gp, f"locked iteration {gp.iteration}")
        arms[frame.iterate.arm] = (commit, f"iteration {gp.iteration} (the latest gate-passed state)")
    return arms


def conclude(repo: Repo, exp: Experiment, keep_key: bool, private_key: str | None, out: Output) -> int:
    from gitera.adapters import keys, seal
    from gitera.core import rules

    require_on_branch(exp)
    lock = require_intact(exp)
    require_open(exp)
    manifest = require_split(exp)
    frame = exp.load_frame()
    state = check_ready(exp, frame, manifest)
    fhash = frame_hash(dict(lock))
    seal_rel = manifest["seal"]["path"]
    wrapped = exp.path("split/key.wrapped")
    key = keys.unwrap_for_verdict(git_common_dir=repo.common_dir, tag=exp.tag, wrapped_path=wrapped if wrapped.exists() else None,
                                  env=os.environ, private_key=private_key)
    if frame.metric.level == "run":  # sealed files and one score per run (docs/run-level.md)
        from gitera.domain.runverdict import conclude_runs

        return conclude_runs(repo, exp, frame, lock, manifest, state, key, keep_key, out)
    salt = seal.derive_commitment_salt(key.secret)
    gate_key = _gate_key(exp, manifest, private_key)
    work = Path(tempfile.mkdtemp(prefix="verdict-", dir=state_dir(repo.common_dir)))
    try:
        plain = work / "test.jsonl"
        # bound to the pins of the split files as they are now: a relabelled dev.jsonl leaves the seal shut
        seal.open_seal(repo.root / seal_rel, key, seal.Binding(exp.tag, fhash, seal_rel, expected_pins(exp)), plain,
                       commitment=(salt, manifest["commitment"]["value"]))
        rows = [json.loads(line) for line in plain.read_text(encoding="utf-8").splitlines() if line.strip()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ids = [str(r["id"]) for r in rows]
    if frame.metric.severity:
        rules.severity_weights(rows, frame.metric.severity)  # before any arm is scored: a bad weight wastes no eval calls
    trials = list(range(frame.metric.trials))
    arms = locked_arms(exp, frame, state)
    scorer = Scorer(exp, frame, lock, out, use_cache=False)
    results: dict[str, Any] = {}
    for arm, (commit, what) in arms.items():
        out.info(f"verdict: arm {arm} ({what}) on {len(rows)} sealed test rows × {len(trials)} trials")
        results[arm] = scorer.score(arm, commit, rows, "test", trials, slot=f"verdict-{arm}")
    if any(r.aggregate_only for r in results.values()):
        raise RefusedError("the harness reports only `SCORE:` aggregates: the verdict's paired tests and slices need one result line per row "
                           "in $GITERA_OUT (docs/eval-contract.md); nothing was recorded.")
    incomplete = [a for a, r in results.items() if not r.complete]
    if incomplete:
        raise EvalError(
            f"arm(s) {', '.join(incomplete)} left test rows unscored ({results[incomplete[0]].problems[:1]}); nothing was recorded — "
            "fix the harness and run `gitera verdict` again (the same single pass)."
        )
    records = {a: [x.to_json() for x in r.results] for a, r in results.items()}
    mats = {a: matrix(records[a], ids, trials) for a in results}
    decision = apply_rules(frame, fhash, mats, rows)
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    doc_dir = f"docs/experiments/{day}-{exp.tag}"
    arm_summary: dict[str, dict[str, Any]] = {}
    for arm in results:
        m = mats[arm]
        tm = m.mean(axis=0)
        cost = mean_of(records[arm], "cost_usd")
        arm_summary[arm] = {
            "what": arms[arm][1], "commit": arms[arm][0], "score": sanitize(float(m.mean())),
            "sd": sanitize(float(tm.std(ddof=1))) if len(trials) > 1 else None,
            "cost_per_1k": sanitize(cost * 1000 if cost is not None else None), "latency_ms": sanitize(mean_of(records[arm], "latency_ms"), 3),
            "rows_file": relpath(exp, f"test/{arm}.jsonl"),
            "findings": count_findings(records[arm]),
            "slices": slice_scores(m, rows, frame.data.slices, frame.threshold.alpha),
        }
    opening = {"salt": salt.hex(), "commitment": manifest["commitment"]["value"]}
    verdict_doc: dict[str, Any] = {
        "tag": exp.tag, "frame": fhash, "decided_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # every slice column, slices named column=value (older verdicts: "slice_column", its first one, plain values)
        "decision": decision.to_dict(), "arms": arm_summary, "slice_columns": list(frame.data.slices),
        "cluster_column": frame.data.cluster, "severity_column": frame.metric.severity,
        "n_test": len(ids), "trials": trials,
        "seal": {"path": seal_rel, "seal_id": manifest["seal"]["seal_id"], "key_id": manifest["seal"]["key_id"]},
        "opening": opening, "key": None if keep_key else base64.b64encode(key.secret).decode(), "key_released": not keep_key,
        # the reusable holdout's noise seed and the gate key, secret while the loop ran, are released with the key
        "holdout_seed": None if keep_key else _released_holdout_seed(repo, exp.tag, gate_key),
        "gate_key": None if keep_key or gate_key is None else base64.b64encode(gate_key.secret).decode(),
        "locked_iteration": state.gate_passed.iteration if state is not None and state.gate_passed is not None else None,
        "row_ids": ids, "conclusion": doc_dir,
    }
    files: dict[str, bytes | None] = {}
    for arm in results:
        files[arm_summary[arm]["rows_file"]] = results_jsonl(results[arm])
    files[exp.rel(VERDICT_FILE)] = (json.dumps(verdict_doc, indent=1, sort_keys=True) + "\n").encode()
    from gitera.domain.conclusion import build

    files.update(build(exp, frame, verdict_doc, doc_dir))
    trailer = {"decision": decision.decision, "arm": decision.arm, "slices": list(decision.slices), "frame": fhash,
               "seal_id": manifest["seal"]["seal_id"], "commitment": manifest["commitment"]["value"], "key_released": not keep_key,
               "n_test": len(ids), "conclusion": f"{doc_dir}/conclusion.md"}
    sentence = decision_sentence(decision.to_dict(), frame)
    message = build_message(f"gitera verdict: {exp.tag}: {decision.decision.replace('_', ' ')}", [("Tag", exp.tag), ("Verdict", trailer)], body=sentence)
    commit = repo.commit_files(exp.branch, files, message)
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


