"""Issue 6 acceptance, end to end: one real repository, one real harness, the whole loop.

Baseline run (noise floor) → sprint 1: a kept attempt, a within-noise "improvement" discarded,
a guard failure, then the gate passing the general change → sprint 2: a crash, a timeout, a
falsified discard, the gate → sprint 3: a general keep, a keep with a planted hardcode (a dev
row's text), the iteration budget stops the loop, and the gate the stop runs catches the
hardcode and kills the arm. The trailers and `gitera log` are checked after each step, and
`gitera verify` at the end.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import git, run_gitera
from tests.helpers import fix_holdout_seed, synthetic_project

BRANCH = "autoexp/syn"


def trailer(repo: Path, key: str, rev: str = BRANCH) -> dict[str, Any]:
    """The newest Gitera-<key> record at or before ``rev``."""
    raw = git(repo, "log", f"--format=%(trailers:key=Gitera-{key},valueonly,separator=%x1e)%x1e", rev)
    return json.loads(next(x for x in raw.split("\x1e") if x.strip()))


def step(repo: Path, policy: str, hypothesis: str, code: int = 0) -> tuple[str, dict[str, Any]]:
    (repo / "policy_b.txt").write_text(policy)
    r = run_gitera(repo, "iterate", "-m", hypothesis)
    assert r.code == code, r.out + r.err
    log = [json.loads(x) for x in run_gitera(repo, "log", "--format", "jsonl").out.splitlines()]
    assert log[-1]["hypothesis"] == hypothesis  # gitera log, from trailers alone, has the attempt just made
    return r.out, log[-1]


def test_the_whole_loop_on_a_real_repo(repo: Path) -> None:
    noisy = "noise: 0.1\n"  # per-row flips seeded by row and trial: the baseline's trials differ, so the noise floor is > 0
    synthetic_project(repo, max_iterations=8, timeout_s=2,
                      policies={"policy_a.txt": "accuracy: 0.5\n" + noisy, "policy_b.txt": "accuracy: 0.5\n" + noisy})
    fix_holdout_seed(repo)
    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]

    # the baseline run sets the noise floor
    r = run_gitera(repo, "run")
    assert r.code == 0, r.err
    runs = [json.loads(x) for x in git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Result,valueonly)").splitlines() if x.strip()]
    assert [(x["kind"], x["arm"]) for x in runs] == [("run", "a"), ("run", "b")] and runs[0]["status"] == "baseline", runs
    noise = runs[0]["noise_floor"]
    assert noise > 0

    # sprint 1
    out, a = step(repo, "accuracy: 0.65\n" + noisy, "a broader rule answers more rows")
    assert "#1 KEEP" in out and a["status"] == "keep" and a["outcome"] == "supported" and a["delta"] > 2 * noise
    out, a = step(repo, "accuracy: 0.6501\n" + noisy, "a hair more accurate")
    assert a["status"] == "discard" and "(within the noise floor)" in a["reason"] and abs(a["delta"]) <= 2 * noise
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.65\n" + noisy  # restored to the best
    assert trailer(repo, "Restore")["restored_to"] == 1
    out, a = step(repo, "accuracy: 0.8\nlatency: 100\n" + noisy, "better but ten times slower")
    assert a["status"] == "guard_fail" and "guard latency_ms" in a["reason"]
    gate = trailer(repo, "Gate")
    assert (gate["sprint"], gate["after_iteration"], gate["outcome"], gate["hardcode_hits"]) == (1, 3, "pass", 0), gate
    assert gate["locked_iteration"] == 1 and "gate after sprint 1: PASS" in out

    # sprint 2
    out, a = step(repo, "crash\n", "this breaks the harness", code=5)
    assert a["status"] == "crash" and a["score"] is None
    out, a = step(repo, "hang\n", "this hangs the harness", code=5)
    assert a["status"] == "timeout"
    out, a = step(repo, "accuracy: 0.4\n" + noisy, "a narrower rule")
    assert a["status"] == "discard" and a["outcome"] == "falsified"
    gate = trailer(repo, "Gate")
    assert (gate["sprint"], gate["outcome"], gate["locked_iteration"]) == (2, "pass", 1), gate
    assert json.loads(run_gitera(repo, "status", "--json").out)["loop"]["sprint"] == 3

    # sprint 3: a general gain, then a gain with a planted hardcode; the budget of 8 iterations ends the loop
    out, a = step(repo, "accuracy: 0.75\n" + noisy, "a second general rule")
    assert a["status"] == "keep" and a["sprint"] == 3
    planted = dev[5]["text"]
    out, a = step(repo, f"accuracy: 0.85\n{noisy}{planted}\n", "better, with a memorized row")
    assert a["status"] == "keep" and a["iteration"] == 8
    assert "the loop stops: the budget of 8 iterations is spent" in out
    stop = trailer(repo, "Stop")
    assert stop["reason"] == "the budget of 8 iterations is spent" and stop["locked_iteration"] == 1
    gate = trailer(repo, "Gate")  # the stop ran the gate on the sprint's two ungated keeps
    assert gate["sprint"] == 3 and gate["outcome"] == "fail" and gate["hardcode_hits"] >= 1, gate
    assert gate["hardcode"][0]["file"] == "policy_b.txt" and dev[5]["id"] in gate["hardcode"][0]["rows"]
    assert planted not in json.dumps(gate) and "gate after sprint 3: FAIL" in out
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.65\n" + noisy  # back to the last gate-passed state
    st = json.loads(run_gitera(repo, "status", "--json").out)["loop"]
    assert st["status"] == "killed" and st["locked_iteration"] == 1
    r = run_gitera(repo, "iterate", "-m", "one more")
    assert r.code == 3 and "killed" in r.err

    # the history, from git alone
    log = [json.loads(x) for x in run_gitera(repo, "log", "--format", "jsonl").out.splitlines()]
    assert [x["status"] for x in log[1:]] == ["keep", "discard", "guard_fail", "crash", "timeout", "discard", "keep", "keep"]
    tsv = run_gitera(repo, "log", "--format", "tsv").out.splitlines()
    assert len(tsv) == 9 and all(len(line.split("\t")) == 5 for line in tsv)
    md = run_gitera(repo, "log", "--format", "md").out
    assert "| 8/8 | 3 | 2 | 2 | 1 |" in md, md
    raw = git(repo, "log", "--format=%(trailers:key=Gitera-Result,valueonly)", BRANCH)
    assert all(isinstance(json.loads(x), dict) for x in raw.splitlines() if x.strip())
    assert subprocess.run(["git", "fsck", "--no-progress"], cwd=repo, capture_output=True).returncode == 0
    r = run_gitera(repo, "verify")
    assert r.code == 0, r.out
