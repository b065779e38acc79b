"""Issue 6: the loop's money and its stops — a cost stop in mid-attempt, the expected-cost refusal,
the gate charged to the budget, a stop in mid-sprint gating the kept work, a failing proposer's stop.

The synthetic harness charges $0.0001 per row × trial (policy `cost:` changes it); 600 rows give
240 climbing dev rows and 60 gate rows, so an attempt costs 240 × 3 × $0.0001 = $0.072 and a gate
2 × 60 × 3 × $0.0001 = $0.036.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import git, run_gitera
from tests.helpers import SYNTHETIC, synthetic_project


def trailers(repo: Path, key: str) -> list[dict[str, object]]:
    raw = git(repo, "log", "--reverse", f"--format=%(trailers:key=Gitera-{key},valueonly,separator=%x1e)%x1e", "autoexp/syn")
    return [json.loads(x) for x in raw.split("\x1e") if x.strip()]


def spent_in_trailers(repo: Path) -> float:
    return sum(float(t.get("spent_usd") or 0.0) for key in ("Pilot", "Result", "Gate") for t in trailers(repo, key))


def state(repo: Path) -> dict[str, object]:
    return json.loads((repo / ".gitera/syn/runs/iterate.json").read_text())


START = 0.1442  # the pilot (2 arms × 1 row) and the dev run (2 arms × 240 rows × 3 trials) at $0.0001


def run_first(repo: Path) -> None:
    """The dev run (baseline and arms), checking what the experiment has spent by then."""
    r = run_gitera(repo, "run")
    assert r.code == 0, r.err
    assert spent_in_trailers(repo) == pytest.approx(START)


def test_a_cost_stop_in_mid_attempt_is_an_honest_discard_and_a_budget_stop_not_a_crash(repo: Path) -> None:
    cap = START + 0.1  # room for the expected attempt ($0.072), not for this dearer one ($0.216)
    synthetic_project(repo, max_cost_usd=cap)
    run_first(repo)
    # rows take 5 ms, so their real cost (3 x the pilot's) streams in and stops the running invocations
    (repo / "policy_b.txt").write_text("accuracy: 0.7\ncost: 0.0003\nsleep: 0.005\n")
    r = run_gitera(repo, "iterate", "-m", "better but three times dearer")
    assert r.code == 0, r.out + r.err
    assert "#1 DISCARD: not scored in full: the cost budget ran out after" in r.out, r.out
    result = trailers(repo, "Result")[-1]
    assert result["kind"] == "attempt" and result["status"] == "discard" and result["outcome"] == "neutral"
    assert "no decision on partial data" in str(result["reason"]) and result["score"] is None
    st = state(repo)
    assert st["consecutive_crashes"] == 0 and st["status"] == "stopped"
    stop = trailers(repo, "Stop")[-1]
    assert str(stop["reason"]).startswith(f"the cost budget of ${cap:g} ran out during attempt 1"), stop
    assert "the loop stops: the cost budget" in r.out
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.5\n"  # restored
    assert state(repo)["spent_usd"] == pytest.approx(spent_in_trailers(repo))  # what was spent is on record
    assert 0 < result["spent_usd"] and spent_in_trailers(repo) <= cap + 2 * 0.0003  # the bound: cap + concurrency x one row
    assert run_gitera(repo, "verify").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    r = run_gitera(repo, "iterate", "-m", "cheaper")
    assert r.code == 3 and "the loop has stopped (the cost budget" in r.err, r.err


def test_an_attempt_whose_expected_cost_exceeds_what_is_left_is_refused_before_it_starts(repo: Path) -> None:
    synthetic_project(repo, max_cost_usd=0.2)  # $0.0558 left after the run; an attempt costs ~$0.072
    run_first(repo)
    tip = git(repo, "rev-parse", "autoexp/syn").strip()
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    r = run_gitera(repo, "iterate", "-m", "would overrun the budget")
    assert r.code == 3, r.out + r.err
    assert "the loop has stopped: the next attempt would cost about $0.0720" in r.err
    assert "but only $0.0558 of the $0.2 cost budget is left" in r.err, r.err
    assert not [t for t in trailers(repo, "Result") if t["kind"] == "attempt"]  # nothing was scored
    assert git(repo, "log", "--format=%s", f"{tip}..autoexp/syn").splitlines() == ["gitera stop: syn after 0 iterations"]
    assert spent_in_trailers(repo) == pytest.approx(START)  # and nothing spent
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.7\n"  # the user's edit is untouched


def test_the_gate_is_charged_to_the_budget_and_finishes_even_past_the_cap(repo: Path) -> None:
    cap = round(START + 3 * 0.072 + 0.02, 4)  # three attempts fit; the gate after them ($0.036) does not
    synthetic_project(repo, max_cost_usd=cap)
    run_first(repo)
    for acc in ("0.6", "0.7", "0.8"):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        r = run_gitera(repo, "iterate", "-m", f"accuracy {acc}")
        assert r.code == 0, r.out + r.err
    assert "the gate's scoring cost $0.0360" in r.err and "past its" in r.err and "never left half-done" in r.err, r.err
    gate = trailers(repo, "Gate")[-1]
    assert gate["spent_usd"] == pytest.approx(0.036) and gate["outcome"] == "pass"
    total = spent_in_trailers(repo)
    assert total == pytest.approx(START + 3 * 0.072 + 0.036) and state(repo)["spent_usd"] == pytest.approx(total)
    assert str(trailers(repo, "Stop")[-1]["reason"]).startswith(f"the cost budget of ${cap:g} is spent")
    from gitera.adapters.git import Repo
    from gitera.domain.scoring import spent_so_far

    assert spent_so_far(Repo.find(repo), "autoexp/syn", "syn") == pytest.approx(total)


def test_a_stop_in_mid_sprint_gates_the_kept_work_and_a_failed_gate_must_be_finished(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synthetic_project(repo, max_iterations=2)
    (repo / "policy_b.txt").write_text("accuracy: 0.6\n")
    assert run_gitera(repo, "iterate", "-m", "accuracy 0.6").code == 0
    monkeypatch.setenv("SYN_FAIL_SPLIT", "gate")  # the gate's scoring fails: the stop is recorded, the gate stays pending
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    r = run_gitera(repo, "iterate", "-m", "accuracy 0.7")
    assert r.code == 3 and "#2 KEEP" in r.out and "the gate could not score the arm on the gate rows" in r.err, r.out + r.err
    assert trailers(repo, "Stop")[-1]["reason"] == "the budget of 2 iterations is spent"
    st = state(repo)
    assert st["status"] == "stopped" and st["pending"] == ["gate"] and st["in_sprint"] == 2
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "the last iterate step is unfinished (gate)" in r.err, r.err
    r = run_gitera(repo, "status")
    assert "interrupted step pending: gate" in r.out

    # a loop stopped without its gate (as an earlier gitera left it): `gitera gate` still gates the kept work
    st["pending"] = []
    (repo / ".gitera/syn/runs/iterate.json").write_text(json.dumps(st, indent=1, sort_keys=True) + "\n")
    git(repo, "commit", "-q", "-am", "a stop recorded by an earlier gitera (test)")
    monkeypatch.delenv("SYN_FAIL_SPLIT")
    r = run_gitera(repo, "gate")
    assert r.code == 0 and "gate after sprint 1: PASS" in r.out, r.out + r.err
    assert trailers(repo, "Gate")[-1]["locked_iteration"] == 2
    st = state(repo)
    assert st["status"] == "stopped" and st["gate_passed"]["iteration"] == 2 and st["in_sprint"] == 0
    r = run_gitera(repo, "gate")
    assert r.code == 3 and "the loop has stopped" in r.err  # nothing left to gate


def test_a_loop_stopped_by_failing_proposals_records_why_and_can_resume(repo: Path) -> None:
    synthetic_project(repo)
    shutil.copy(SYNTHETIC / "propose.py", repo.parent / "propose.py")
    r = run_gitera(repo, "iterate", "--loop", "--propose", f"python {repo.parent / 'propose.py'} --fail")
    assert r.code == 5 and "failed 3 times in a row" in r.err
    stop = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Stop,valueonly)"))
    assert stop["reason"].startswith(f"the proposer `python {repo.parent / 'propose.py'} --fail` failed 3 times in a row")
    assert stop["resumable"] is True and stop["proposals"] == ["exit 1: proposer crashed"] * 3
    status = run_gitera(repo, "status")
    assert "failed 3 times in a row" in status.out, status.out
    log = run_gitera(repo, "log")
    assert "failed 3 times in a row" in log.out, log.out
    # the proposer's failure ends the session, not the experiment: iterating resumes
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    r = run_gitera(repo, "iterate", "-m", "by hand after the proposer failed")
    assert r.code == 0 and "#1 KEEP" in r.out, r.out + r.err
    assert state(repo)["stop_reason"] is None


def test_diagnose_train_keeps_both_sides_within_what_is_left(repo: Path) -> None:
    """Each side of `diagnose --train 40` costs 40 × 3 × $0.0001 = $0.012; $0.018 is left: the second side cannot be paid in full."""
    synthetic_project(repo, max_cost_usd=round(START + 0.018, 4))
    run_first(repo)
    r = run_gitera(repo, "diagnose", "--train", "40")
    assert r.code == 5, r.out + r.err
    assert "best could not be scored on the 40 train rows: the cost budget ran out" in r.err, r.err
    assert "a (train): 120/120 scored" in r.err and "b (train): 120/120" not in r.err  # the first side fitted, the second did not
