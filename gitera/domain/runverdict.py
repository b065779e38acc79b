"""The verdict of a run-level experiment: the ONE opening of the sealed files (docs/run-level.md).

Called by the verdict (gitera.domain.opening) once it has checked the experiment and unwrapped
the key. The sealed files are decrypted in memory and written only into the verdict's own
checkouts, for its runs; the baseline (the target files as locked) and the locked arms (the
iterated arm at its latest gate-passed state) run ``metric.trials`` times each with
``GITERA_SPLIT=test``; each candidate is compared with the baseline by Welch's t over the run
scores, and the pre-registered rules (gitera.core.rules.decide) decide ship / kill /
underpowered. The same verdict.json, conclusion, charts, trailer and tag as a row-level verdict.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager as ContextManager
from datetime import datetime, timezone
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.runscript import RUN_ID
from gitera.core import runstats
from gitera.core.errors import EvalError
from gitera.core.frame import Frame
from gitera.core.results import sanitize
from gitera.core.trailers import build_message
from gitera.core.verdict import decision_sentence
from gitera.domain.experiment import VERDICT_FILE, Experiment, frame_hash
from gitera.domain.loopstore import point_commit
from gitera.domain.runaudit import decide_runs
from gitera.domain.runlevel import RunScorer, arm_commits, records_jsonl, scores
from gitera.domain.scoring import relpath


def locked_run_arms(exp: Experiment, frame: Frame, state: Any) -> dict[str, tuple[str, str]]:
    """arm -> (commit, what it is): the baseline as locked, the iterated arm at its latest gate-passed state."""
    arms = {arm: (commit, "as registered") for arm, commit in arm_commits(exp, frame).items()}
    if frame.iterate is not None and frame.iterate.target and frame.baseline.file in frame.iterate.target:
        arms[frame.baseline.arm] = (arms[frame.baseline.arm][0], "the target files as locked")
    if frame.iterate is not None and state is not None and state.gate_passed is not None:
        gp = state.gate_passed
        arms[frame.iterate.arm] = (point_commit(exp, frame.iterate.target, gp, f"locked iteration {gp.iteration}"),
                                   f"iteration {gp.iteration} (the latest gate-passed state)")
    return arms


def conclude_runs(repo: Repo, exp: Experiment, frame: Frame, lock: Mapping[str, Any], manifest: Mapping[str, Any], state: Any,
                  key: Any, keep_key: bool, out: Output, open_once: Callable[[Experiment, Mapping[str, Any], Output], ContextManager[Any]]) -> int:
    """The run-level verdict. ``open_once`` is gitera.domain.opening's (passed in: opening calls this module)."""
    from gitera.adapters import keys, seal
    from gitera.domain.conclusion import build
    from gitera.domain.runseal import open_files

    fhash = frame_hash(dict(lock))
    trials = list(range(frame.metric.trials))
    arms = locked_run_arms(exp, frame, state)
    # what the iterated arm is scored on, by content (the target files' blobs), as a row-level verdict
    # records it: verify re-derives it from the gates and attempts (gitera.domain.provenance.scored_content)
    iterated: dict[str, dict[str, Any]] = {}
    if frame.iterate is not None:
        arm = frame.iterate.arm
        blobs = repo.ls_tree(arms[arm][0], list(frame.iterate.target))
        iteration = state.gate_passed.iteration if state is not None and state.gate_passed is not None else 0
        iterated[arm] = {"iteration": iteration, "targets": {t: blobs.get(t) for t in frame.iterate.target}}
    opening_record = {"seal_id": manifest["seal"]["seal_id"], "key_id": manifest["seal"]["key_id"], "level": "run",
                      "commitment": manifest["commitment"]["value"], "frame": fhash,
                      "arms": {a: {"commit": c, "what": w, **iterated.get(a, {})} for a, (c, w) in arms.items()}}
    # the opening is committed before the key is used: a failure or a kill from here on closes the
    # experiment without a decision (docs/verdict.md), and the decrypted files die with the process
    with open_once(exp, opening_record, out) as opened:
        salt = seal.derive_commitment_salt(key.secret)
        files_plain = open_files(repo, exp, manifest, "seal", key, frame.data.seal, commitment=(salt, manifest["commitment"]["value"]))
        scorer = RunScorer(exp, frame, lock, out, use_cache=False)
        results = {}
        for arm, (commit, what) in arms.items():
            out.info(f"verdict: arm {arm} ({what}), {len(trials)} runs on the sealed test files ({', '.join(frame.data.seal)})")
            results[arm] = scorer.score(arm, commit, "test", trials, slot=opened.slot(arm), read_cache=False, files=files_plain,
                                        work_root=opened.work)
        bad = {a: next(r for r in rs if r.status != "ok") for a, rs in results.items() if any(r.status != "ok" for r in rs)}
        if bad:
            arm, r = next(iter(bad.items()))
            raise EvalError(f"arm {arm}'s test run (seed {r.trial}) {r.status}: {(r.error or '').splitlines()[0] if r.error else 'no score'}; "
                            "no decision on partial data (rule 13)")
        runs = {a: scores(rs) for a, rs in results.items()}
        decision = decide_runs(frame, runs)
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        doc_dir = f"docs/experiments/{day}-{exp.tag}"
        arm_summary: dict[str, dict[str, Any]] = {}
        for arm, rs in results.items():
            numbers = {n: sanitize(runstats.mean([r.numbers[n] for r in rs if n in r.numbers])) for n in sorted({k for r in rs for k in r.numbers})}
            cost = numbers.get("cost_usd")
            arm_summary[arm] = {"what": arms[arm][1], "commit": arms[arm][0], "score": sanitize(runstats.mean(runs[arm])),
                                "sd": sanitize(runstats.sd(runs[arm])), "runs": [sanitize(x, 10) for x in runs[arm]], "numbers": numbers,
                                "cost_per_1k": sanitize(cost * 1000 if cost is not None else None), "latency_ms": None,
                                "rows_file": relpath(exp, f"test/{arm}.jsonl"), "findings": {}, "slices": {},
                                "rows_sha256": hashlib.sha256(records_jsonl(rs)).hexdigest(), **iterated.get(arm, {})}
        holdout = keys.holdout_seed_path(repo.common_dir, exp.tag)
        verdict_doc: dict[str, Any] = {
            "tag": exp.tag, "level": "run", "frame": fhash, "decided_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "decision": decision.to_dict(), "arms": arm_summary, "slice_columns": [], "cluster_column": None, "severity_column": None,
            "n_test": len(trials), "trials": trials, "test_files": list(frame.data.seal), "test": "welch",
            "seal": {"path": manifest["seal"]["path"], "seal_id": manifest["seal"]["seal_id"], "key_id": manifest["seal"]["key_id"]},
            "opening": {"salt": salt.hex(), "commitment": manifest["commitment"]["value"]},
            "key": None if keep_key else base64.b64encode(key.secret).decode(), "key_released": not keep_key,
            "holdout_seed": None if keep_key or not holdout.exists() else int(holdout.read_text().strip()),
            "locked_iteration": state.gate_passed.iteration if state is not None and state.gate_passed is not None else None,
            "row_ids": [RUN_ID], "conclusion": doc_dir,
        }
        files: dict[str, bytes | None] = {arm_summary[a]["rows_file"]: records_jsonl(rs) for a, rs in results.items()}
        files[exp.rel(VERDICT_FILE)] = (json.dumps(verdict_doc, indent=1, sort_keys=True) + "\n").encode()
        files.update(build(exp, frame, verdict_doc, doc_dir))
        trailer = {"decision": decision.decision, "arm": decision.arm, "slices": list(decision.slices), "frame": fhash, "level": "run",
                   "seal_id": manifest["seal"]["seal_id"], "commitment": manifest["commitment"]["value"], "key_released": not keep_key,
                   "n_test": len(trials), "conclusion": f"{doc_dir}/conclusion.md", "opening": opened.commit, "scored": iterated,
                   "rows": {a: arm_summary[a]["rows_sha256"] for a in arm_summary}}
        sentence = decision_sentence(decision.to_dict(), frame)
        message = build_message(f"gitera verdict: {exp.tag}: {decision.decision.replace('_', ' ')}", [("Tag", exp.tag), ("Verdict", trailer)], body=sentence)
        commit = opened.conclude(exp, files, message)
    repo.git("tag", "-a", f"gitera/{exp.tag}/verdict", "-m", f"gitera verdict for {exp.tag}: {sentence}", commit)
    out.result({"tag": exp.tag, "commit": commit, "decision": decision.to_dict(), "conclusion": f"{doc_dir}/conclusion.md",
                "charts": sorted(p for p in files if p.endswith((".png", ".svg")))},
               f"{sentence}\nConclusion: {doc_dir}/conclusion.md\nCharts: {doc_dir}/*.png, *.svg\n"
               f"Recorded in {commit[:10]} (tag gitera/{exp.tag}/verdict); the sealed files were opened once and the experiment is closed.")
    return 0
