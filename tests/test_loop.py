"""The loop's remaining behaviours: noise, timeouts, budget stops, the gate, diagnose, autonomous mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import git, run_gitera
from tests.helpers import SYNTHETIC, all_blobs, fix_holdout_seed, synthetic_project


def test_a_within_noise_improvement_is_discarded(repo: Path) -> None:
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\nnoise: 0.3\n", "policy_b.txt": "accuracy: 0.5\nnoise: 0.3\n"})
    (repo / "policy_b.txt").write_text("accuracy: 0.51\nnoise: 0.3\n")
    r = run_gitera(repo, "iterate", "-m", "a hair more accurate")
    assert r.code == 0, r.err
    assert "#1 DISCARD" in r.out and "noise floor" in r.out
    result = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Result,valueonly)", "HEAD~1"))
    assert result["status"] == "discard" and result["outcome"] in ("neutral", "falsified")
    assert result["threshold"] >= 2 * result["noise_floor"] > 0


def test_a_hanging_attempt_is_a_timeout_and_is_restored(repo: Path) -> None:
    synthetic_project(repo, timeout_s=2)
    (repo / "policy_b.txt").write_text("hang\n")
    r = run_gitera(repo, "iterate", "-m", "this will hang")
    assert r.code == 5
    assert "#1 TIMEOUT" in r.out
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.5\n"


def test_budget_stop_is_recorded_and_explained(repo: Path) -> None:
    synthetic_project(repo, max_iterations=2)
    for i, acc in enumerate(("0.6", "0.7"), 1):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        r = run_gitera(repo, "iterate", "-m", f"step {i}")
        assert r.code == 0, r.err
    assert "the loop stops: the budget of 2 iterations is spent" in r.out
    # the stop is recorded, then the sprint's two kept attempts get their gate (a stop never strands kept work)
    stop = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Stop,valueonly)", "HEAD~1"))
    assert stop["reason"].startswith("the budget of 2") and stop["locked_iteration"] == 0
    gate = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)"))
    assert gate["sprint"] == 1 and gate["after_iteration"] == 2 and gate["outcome"] == "pass", gate
    assert "gate after sprint 1: PASS" in r.out
    (repo / "policy_b.txt").write_text("accuracy: 0.8\n")
    r = run_gitera(repo, "iterate", "-m", "one more")
    assert r.code == 3 and "the loop has stopped (the budget of 2 iterations is spent)" in r.err
    status = json.loads(run_gitera(repo, "status", "--json").out)
    assert status["loop"]["status"] == "stopped" and status["loop"]["locked_iteration"] == 2
    assert run_gitera(repo, "verify").code == 0


def test_gate_catches_a_planted_hardcode_and_passes_a_general_change(repo: Path) -> None:
    synthetic_project(repo)
    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]
    for acc in ("0.6", "0.7", "0.8"):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        assert run_gitera(repo, "iterate", "-m", f"accuracy {acc}").code == 0
    gate = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)"))
    assert gate["outcome"] == "pass", gate
    planted = dev[3]["text"]
    (repo / "policy_b.txt").write_text(f"accuracy: 0.9\n{planted}\n")
    r = run_gitera(repo, "iterate", "-m", "better, with a memorized row")
    assert r.code == 0 and "#4 KEEP" in r.out
    r = run_gitera(repo, "gate")
    assert r.code == 0, r.err
    assert "FAIL" in r.out and "hardcode" in r.out
    gate = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)"))
    assert gate["outcome"] == "fail" and gate["hardcode_hits"] >= 1
    assert gate["hardcode"][0]["file"] == "policy_b.txt" and gate["hardcode"][0]["line"] == 2
    assert dev[3]["id"] in gate["hardcode"][0]["rows"]
    assert planted not in json.dumps(gate)  # the trailer names the row, it does not copy it
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.8\n"  # back to the gate-passed state
    r = run_gitera(repo, "iterate", "-m", "keep going")
    assert r.code == 3 and "killed" in r.err


def test_a_gain_only_on_the_climbing_rows_fails_the_gate_and_the_holdout_seed_stays_out_of_git(repo: Path) -> None:
    # the arm gets better only when scored on the climbing dev rows (the harness sees GITERA_SPLIT):
    # the gate's one gain query disagrees with the dev gain, the gate rows' paired gain is revealed
    # (about 0) and replication fails
    synthetic_project(repo)
    fix_holdout_seed(repo, seed=424242424242)
    for acc in ("0.6", "0.7", "0.8"):
        (repo / "policy_b.txt").write_text(f"accuracy: 0.5\nsplit.dev: {acc}\n")
        r = run_gitera(repo, "iterate", "-m", f"dev-only accuracy {acc}")
        assert r.code == 0 and "KEEP" in r.out, r.out + r.err
    gate = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)"))
    assert gate["outcome"] == "fail" and gate["hardcode_hits"] == 0, gate
    rep = gate["replication"]
    assert rep["passed"] is False and rep["dev_gain"] > 0.25 and abs(rep["gate_gain"]) < 0.05, rep
    assert len(gate["holdout_queries"]) == 1 and gate["holdout_queries"][0]["holdout_used"] is True
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.5\n"  # back to the gate-passed state
    r = run_gitera(repo, "iterate", "-m", "keep going")
    assert r.code == 3 and "killed" in r.err
    # the seed is a secret: in no git object, not in the committed state, not in --json output
    state = json.loads((repo / ".gitera/syn/runs/iterate.json").read_text())
    assert state["holdout"] is not None and "seed" not in state["holdout"] and state["holdout"]["spent"] == 1
    assert all(b"424242424242" not in blob for blob in all_blobs(repo))
    assert "424242424242" not in git(repo, "log", "--all", "--format=%B")
    assert "424242424242" not in run_gitera(repo, "status", "--json").out
    assert "424242424242" not in run_gitera(repo, "gate", "--json").out + run_gitera(repo, "log", "--format", "json").out
    assert run_gitera(repo, "verify").code == 0


def test_diagnose_shows_dev_rows_as_ids_only(repo: Path) -> None:
    synthetic_project(repo)
    (repo / "policy_b.txt").write_text("accuracy: 0.7\ngroup.g2: 0.3\n")
    assert run_gitera(repo, "iterate", "-m", "better except g2").code == 0
    r = run_gitera(repo, "diagnose", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    groups = d["groups"]["group"]
    assert groups["g2"]["loss"] > 0 and groups["g1"]["loss"] == 0 and groups["g1"]["win"] > 0
    text = run_gitera(repo, "diagnose").out
    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]
    assert not any(row["text"] in text for row in dev)
    assert any(row["id"] in text for row in dev)


def test_autonomous_loop_runs_until_the_budget_and_reports_failing_proposals(repo: Path) -> None:
    synthetic_project(repo, max_iterations=4)
    shutil.copy(SYNTHETIC / "propose.py", repo.parent / "propose.py")
    r = run_gitera(repo, "iterate", "--loop", "--propose", f"python {repo.parent / 'propose.py'}")
    assert r.code == 0, r.err
    log = [json.loads(x) for x in run_gitera(repo, "log", "--format", "jsonl").out.splitlines()[1:]]
    assert len(log) == 4 and log[0]["hypothesis"].startswith("step 1: accuracy 0.58")
    context = json.loads((repo / ".git/gitera/loop/syn/context.json").read_text())
    assert context["decision"] == {"mode": "primary", "directions": {}, "weights": {}, "min_delta": 0.0, "confirm": True}
    assert json.loads(run_gitera(repo, "status", "--json").out)["loop"]["status"] in ("stopped", "killed", "saturated")

    other = repo.parent / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    synthetic_project(other)
    r = run_gitera(other, "iterate", "--loop", "--propose", f"python {repo.parent / 'propose.py'} --fail")
    assert r.code == 5
    assert r.err.count("proposal failed: exit 1: proposer crashed") == 3
    assert "failed 3 times in a row" in r.err


def test_diagnose_train_shows_the_losing_train_rows_with_their_text_and_never_dev_text(repo: Path) -> None:
    synthetic_project(repo)
    (repo / "policy_b.txt").write_text("accuracy: 0.7\ngroup.g2: 0.3\n")
    assert run_gitera(repo, "iterate", "-m", "better except g2").code == 0
    train = [json.loads(x) for x in (repo / ".gitera/syn/split/train.jsonl").read_text().splitlines()]
    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]
    r = run_gitera(repo, "diagnose", "--train", "60")
    assert r.code == 0, r.err
    assert "b (train): 180/180 scored" in r.err  # both sides scored on the first 60 train rows × 3 trials
    assert "on 60 train rows:" in r.out and "losing train rows (" in r.out
    d = json.loads(run_gitera(repo, "diagnose", "--train", "60", "--json").out)
    t = d["train"]
    assert t["n"] == 60 and t["groups"]["group"]["g2"]["loss"] > 0 and t["groups"]["group"]["g1"]["loss"] == 0
    shown = {row["id"] for row in t["losses"]}
    assert shown and shown <= {row["id"] for row in train[:60]} and all(row["group"] == "g2" for row in t["losses"])
    assert all(row["text"] in r.out for row in train if row["id"] in shown)  # train text: shown, to study
    for out in (r.out, json.dumps(d)):
        assert not any(row["text"] in out for row in dev)  # dev text: never
    again = run_gitera(repo, "diagnose", "--train", "60")
    assert again.out == r.out and "b (train): 180/180 scored, complete; 0 calls, 180 cached" in again.err  # from the cache


def test_a_proposer_that_times_out_is_killed_with_its_children(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent is a process tree: on the timeout its children must die too, or they keep
    editing the target files while gitera scores and commits the next attempt."""
    import contextlib
    import os
    import subprocess

    from gitera.domain import session

    synthetic_project(repo)
    monkeypatch.setattr(session, "PROPOSE_TIMEOUT_S", 1)
    pids = repo.parent / "children.txt"
    propose = f"sleep 300 >/dev/null 2>&1 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; wait"
    r = run_gitera(repo, "iterate", "--loop", "--propose", propose)
    assert r.code == 5 and r.err.count("proposal failed: timed out after 1 s") == 3, r.err
    children = pids.read_text().split()
    assert len(children) == 6
    states = subprocess.run(["ps", "-o", "stat=", "-p", ",".join(children)], capture_output=True, text=True).stdout.split()
    alive = [s for s in states if not s.startswith("Z")]  # a killed child not yet reaped by init is a zombie: dead
    for pid in children:  # leave nothing behind even when the test fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), 9)
    assert alive == []


def test_a_loop_state_is_scored_on_the_experiment_branch_whatever_is_checked_out(repo: Path) -> None:
    # diagnose may run from any branch: the candidate it scores must be the experiment's tip
    # with the target files of that state, not HEAD's tree
    from gitera.adapters.git import Repo
    from gitera.domain.experiment import Experiment
    from gitera.domain.loopstore import load_state, point_commit

    synthetic_project(repo)
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    assert run_gitera(repo, "iterate", "-m", "better").code == 0
    git(repo, "switch", "-q", "-c", "scratch")
    (repo / "notes.txt").write_text("a fork with its own commit\n")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "notes")
    exp = Experiment(Repo.find(repo), "syn")
    state = load_state(exp)
    assert state is not None and state.best is not None
    commit = point_commit(exp, ["policy_b.txt"], state.best, "check")
    # the experiment's locked tree (never HEAD's, never the branch tip's) with the state's target files
    lock = git(repo, "log", "-1", "--format=%H", "--grep=^Gitera-Lock:", "autoexp/syn").strip()
    assert git(repo, "rev-parse", f"{commit}^^").strip() == lock
    assert git(repo, "show", f"{commit}:policy_b.txt") == "accuracy: 0.7\n"
    assert "notes.txt" not in git(repo, "ls-tree", "-r", "--name-only", commit)
