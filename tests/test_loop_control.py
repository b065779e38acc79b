"""Loop control for overnight runs (issue 13): the frame's plateau, resume, duplicate proposals,
wall-clock limits and never-stop mode, through the real CLI in real repositories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import BIN_DIR, git, run_gitera
from tests.helpers import SYNTHETIC, fix_holdout_seed, synthetic_project

BRANCH = "autoexp/syn"
PROPOSER = SYNTHETIC / "plan_propose.py"


def trailers(repo: Path, key: str) -> list[dict[str, object]]:
    raw = git(repo, "log", "--reverse", f"--format=%(trailers:key=Gitera-{key},valueonly)", BRANCH)
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def state(repo: Path) -> dict[str, object]:
    return json.loads((repo / ".gitera/syn/runs/iterate.json").read_text())  # type: ignore[no-any-return]


def attempts(repo: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in run_gitera(repo, "log", "--format", "jsonl").out.splitlines()[1:]]


def plan(repo: Path, steps: list[str], cycle: bool = False, delay_s: float = 0) -> str:
    """The --propose command of a scripted proposer going through ``steps`` (see tests/synthetic/plan_propose.py)."""
    path = repo.parent / "plan.json"
    path.write_text(json.dumps({"steps": steps, "cycle": cycle, "delay_s": delay_s}))
    return f"{sys.executable} {PROPOSER} {path}"


def json_documents(text: str) -> list[dict[str, object]]:
    """The JSON documents printed one after another (each attempt's, then the session's)."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)
    return docs


def noop(k: int) -> str:
    """A new content of the iterated policy that scores exactly as the start (discarded, never a duplicate)."""
    return f"accuracy: 0.5\n# idea {k}\n"


def project(repo: Path, **kw: object) -> None:
    """The synthetic experiment, its gate's holdout noise fixed so that every run of a test gates alike."""
    synthetic_project(repo, rows=kw.pop("rows", 300), **kw)  # type: ignore[arg-type]
    fix_holdout_seed(repo)


PLATEAU = {"  sprint: 3\n": "  sprint: 3\n  plateau: 2\n"}


def test_the_plateau_is_the_frames_and_resume_goes_on_after_it(repo: Path) -> None:
    project(repo, frame_edits=PLATEAU)
    for k in (1, 2):
        (repo / "policy_b.txt").write_text(noop(k))
        r = run_gitera(repo, "iterate", "-m", f"no-op {k}")
        assert r.code == 0, r.out + r.err
    assert "the loop stops: plateau" in r.out and "`gitera iterate --resume` goes on from here" in r.out, r.out
    stop = trailers(repo, "Stop")[-1]
    assert stop["kind"] == "plateau" and stop["resumable"] is True and stop["iteration"] == 2
    assert state(repo)["status"] == "stopped"

    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    r = run_gitera(repo, "iterate", "-m", "a real gain")
    assert r.code == 3 and "or `gitera iterate --resume` to go on" in r.err, r.err
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.7\n"  # the refused edit stays in place
    r = run_gitera(repo, "iterate", "--resume", "-m", "a real gain")
    assert r.code == 0 and "resumed the loop of syn after: plateau" in r.out and "#3 KEEP" in r.out, r.out + r.err
    resumed = trailers(repo, "Resume")
    assert resumed == [{"after": stop["reason"], "kind": "plateau", "iteration": 2, "plateau_from": 2}]
    st = state(repo)
    assert st["status"] == "active" and st["plateau_from"] == 2 and st["iteration"] == 3
    # the plateau window restarts at the resume: one more no-op does not stop the loop, two do
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n# tidy\n")
    r = run_gitera(repo, "iterate", "-m", "no-op after the resume")
    assert r.code == 0 and "the loop stops" not in r.out, r.out
    assert run_gitera(repo, "log").out.count("resume") >= 1
    assert run_gitera(repo, "verify").code == 0


def test_with_the_plateau_off_the_loop_runs_until_its_budget_and_a_budget_stop_is_final(repo: Path) -> None:
    project(repo, max_iterations=7, frame_edits={"  sprint: 3\n": "  sprint: 3\n  plateau: off\n"})
    r = run_gitera(repo, "iterate", "--loop", "--propose", plan(repo, [noop(k) for k in range(1, 12)]))
    assert r.code == 0, r.out + r.err
    log = attempts(repo)
    assert [a["iteration"] for a in log] == list(range(1, 8)) and {a["status"] for a in log} == {"discard"}, run_gitera(repo, "log").out + r.out
    gates = trailers(repo, "Gate")
    # with the default plateau (6) the gate after sprint 2 would have found the arm saturated
    assert [g["outcome"] for g in gates][:2] == ["pass", "pass"], gates
    assert all(g["saturation"]["saturated"] is False and "plateau is off" in g["saturation"]["reason"] for g in gates)
    stop = trailers(repo, "Stop")[-1]
    assert stop["kind"] == "iterations" and stop["resumable"] is False
    assert "loop session ended after 7 attempt(s)" in r.out

    # never let resume bypass a locked budget
    for args in (("iterate", "--loop", "--resume"), ("iterate", "--resume", "-m", "one more")):
        r = run_gitera(repo, *args)
        assert r.code == 3 and "cannot resume: the budget of 7 iterations is spent" in r.err and "frame's budget is locked" in r.err, r.err
    assert trailers(repo, "Resume") == [] and len(attempts(repo)) == 7
    assert run_gitera(repo, "verify").code == 0


def test_a_duplicate_proposal_is_skipped_reported_and_not_counted(repo: Path) -> None:
    project(repo, max_iterations=3)
    steps = ["accuracy: 0.7\n", "accuracy: 0.65\n", "accuracy: 0.65\n", "accuracy: 0.9\n"]
    r = run_gitera(repo, "iterate", "--loop", "--propose", plan(repo, steps), "--json")
    assert r.code == 0, r.out + r.err
    assert "proposal skipped: its target files equal attempt #2 (discard: plan step 2: accuracy: 0.65)" in r.err, r.err
    assert "not scored, not counted as an attempt" in r.err
    log = attempts(repo)
    assert [(a["iteration"], a["status"], a["hypothesis"]) for a in log] == [
        (1, "keep", "plan step 1: accuracy: 0.7"), (2, "discard", "plan step 2: accuracy: 0.65"), (3, "keep", "plan step 4: accuracy: 0.9")]
    summary = json_documents(r.out)[-1]
    assert summary["session"]["attempts"] == 3 and len(summary["session"]["skipped"]) == 1
    assert summary["loop"]["stop_kind"] == "iterations", summary
    # the proposer is told what was skipped, so it can stop repeating itself
    context = json.loads((repo / ".git/gitera/loop/syn/context.json").read_text())
    assert context["skipped"] == ["plan step 3: accuracy: 0.65 (same target content as attempt #2 (discard: plan step 2: accuracy: 0.65))"]


def test_a_proposer_stuck_on_old_ideas_still_ends_the_session(repo: Path) -> None:
    project(repo, max_iterations=20)
    r = run_gitera(repo, "iterate", "--loop", "--propose", plan(repo, ["accuracy: 0.6\n", "accuracy: 0.55\n"], cycle=True))
    assert r.code == 5, r.out + r.err
    assert [a["status"] for a in attempts(repo)] == ["keep", "discard"]  # nothing after: repeats are never scored
    assert "failed 3 times in a row" in r.err
    stop = trailers(repo, "Stop")[-1]
    assert stop["kind"] == "session" and stop["resumable"] is True
    assert "duplicate of the current best (iteration 1)" in stop["proposals"]
    assert any(p.startswith("duplicate of attempt #2") for p in stop["proposals"])
    assert state(repo)["status"] == "active" and state(repo)["iteration"] == 2
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.6\n"  # the repeated edits were put back


def _gitera_proc(repo: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PATH": BIN_DIR + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.Popen([sys.executable, "-m", "gitera", *args], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_a_killed_session_resumes_with_loop_alone_and_keeps_counting(repo: Path) -> None:
    project(repo, max_iterations=4)
    command = plan(repo, ["accuracy: 0.6\n", "accuracy: 0.65\n", "HANG", "accuracy: 0.7\n", "accuracy: 0.75\n", "accuracy: 0.8\n"])
    proc = _gitera_proc(repo, "iterate", "--loop", "--propose", command)
    hung = repo.parent / "plan.json.hung"
    for _ in range(1200):  # the proposer of the third attempt hangs: the session is busy there
        if hung.exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert hung.exists(), proc.communicate()
    before = state(repo)
    assert before["iteration"] == 2
    os.kill(proc.pid, signal.SIGTERM)  # a closed terminal, a cancelled job: like Ctrl-C
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    proposer = int(hung.read_text())
    assert subprocess.run(["ps", "-o", "stat=", "-p", str(proposer)], capture_output=True, text=True).stdout.strip()[:1] in ("", "Z")

    status = run_gitera(repo, "status")
    assert f"autonomous session of `{command}`: interrupted after 2 attempt(s) — `gitera iterate --loop` resumes it" in status.out, status.out
    assert json.loads(run_gitera(repo, "status", "--json").out)["session"]["state"] == "interrupted"
    r = run_gitera(repo, "iterate", "--loop")  # no --propose: the interrupted session goes on
    assert r.code == 0, r.out + r.err
    assert f"resuming the interrupted session of `{command}` (2 attempt(s) so far)" in r.out
    log = attempts(repo)
    assert [a["iteration"] for a in log] == [1, 2, 3, 4] and log[2]["hypothesis"] == "plan step 4: accuracy: 0.7"
    after = state(repo)
    assert after["started_at"] == before["started_at"]  # the frame's wall clock runs from the first attempt, across sessions
    assert trailers(repo, "Stop")[-1]["kind"] == "iterations"
    r = run_gitera(repo, "iterate", "--loop")  # the session ended: a new one, and the loop is over
    assert r.code == 0 and "a new session of" in r.out and "the loop is stopped" in r.out, r.out + r.err
    assert len(attempts(repo)) == 4


def test_the_frames_wall_clock_budget_stops_the_loop_for_good(repo: Path) -> None:
    project(repo, max_iterations=200,
                      frame_edits={"max_consecutive_crashes: 3}": "max_consecutive_crashes: 3, max_wall_clock_hours: 0.001}"})
    # Each proposal takes 1 s, so the 3.6 s budget is spent by attempt 5, before the gate after attempt 6 can
    # call the no-op loop saturated, however fast the machine (a fast CI machine once saturated inside 3.6 s).
    r = run_gitera(repo, "iterate", "--loop", "--propose", plan(repo, [noop(k) for k in range(1, 200)], delay_s=1.0))
    assert r.code == 0, r.out + r.err
    stop = trailers(repo, "Stop")[-1]
    assert stop["kind"] == "wall_clock" and stop["reason"] == "the wall-clock budget of 0.001 h is spent" and stop["resumable"] is False
    n = len(attempts(repo))
    assert 1 <= n < 200
    r = run_gitera(repo, "iterate", "--loop", "--resume")
    assert r.code == 3 and "the wall-clock budget of 0.001 h is spent" in r.err and "cannot resume" in r.err, r.err
    assert len(attempts(repo)) == n


def test_a_sessions_wall_clock_ends_the_session_not_the_loop(repo: Path) -> None:
    project(repo, max_iterations=3)
    command = plan(repo, [noop(k) for k in range(1, 50)])
    r = run_gitera(repo, "iterate", "--loop", "--propose", command, "--max-hours", "0.0001")
    assert r.code == 0, r.out + r.err
    stop = trailers(repo, "Stop")[-1]
    assert stop["kind"] == "session" and stop["resumable"] is True and "the session's wall-clock limit of 0.0001 h is reached" in stop["reason"]
    assert state(repo)["status"] == "active"
    assert len(attempts(repo)) < 3
    r = run_gitera(repo, "iterate", "--loop")  # the same proposer and limit: a new session, ended at once
    assert r.code == 0 and f"a new session of `{command}` (the last one ended: the session's wall-clock limit" in r.out, r.out + r.err
    r = run_gitera(repo, "iterate", "--loop", "--max-hours", "1")  # the same proposer, a longer night
    assert r.code == 0 and f"a new session of `{command}`" in r.out, r.out + r.err
    assert len(attempts(repo)) == 3
    assert trailers(repo, "Stop")[-1]["kind"] == "iterations"


def test_never_stop_needs_a_wall_clock_and_outlasts_failing_proposals(repo: Path) -> None:
    project(repo)
    command = plan(repo, ["FAIL"], cycle=True)
    r = run_gitera(repo, "iterate", "--loop", "--propose", command, "--never-stop")
    assert r.code == 2 and "--never-stop needs a wall-clock bound" in r.err, r.err
    r = run_gitera(repo, "iterate", "--loop", "--propose", command, "--never-stop", "--max-hours", "0.004")
    assert r.code == 0, r.out + r.err
    failures = r.err.count("proposal failed: exit 1: step")
    assert failures > 3, r.err  # three in a row would have ended a normal session
    assert "never-stop: 3 proposal(s) in a row failed; asking again in 4 s" in r.out
    assert trailers(repo, "Stop")[-1]["kind"] == "session"
    assert run_gitera(repo, "iterate", "--max-hours", "1").code == 2  # session options go with --loop


def test_a_crash_stop_can_be_resumed_a_gates_kill_cannot(repo: Path) -> None:
    project(repo, frame_edits={"max_consecutive_crashes: 3}": "max_consecutive_crashes: 1}"})
    (repo / "policy_b.txt").write_text("crash\n")
    r = run_gitera(repo, "iterate", "-m", "a broken edit")
    assert r.code == 5 and "the loop stops: 1 consecutive attempts crashed" in r.out, r.out + r.err
    stop = trailers(repo, "Stop")[-1]
    assert stop["kind"] == "crashes" and stop["resumable"] is True
    (repo / "policy_b.txt").write_text("accuracy: 0.5\nsplit.dev: 0.7\n")  # a gain on the climbing rows only
    r = run_gitera(repo, "iterate", "--resume", "-m", "fixed")
    assert r.code == 0 and "#2 KEEP" in r.out, r.out + r.err
    assert trailers(repo, "Resume")[-1]["kind"] == "crashes" and state(repo)["consecutive_crashes"] == 0
    for k, acc in ((3, "0.75"), (4, "0.8")):
        (repo / "policy_b.txt").write_text(f"accuracy: 0.5\nsplit.dev: {acc}\n")
        r = run_gitera(repo, "iterate", "-m", f"more of it {k}")
    assert trailers(repo, "Gate")[-1]["outcome"] == "fail" and state(repo)["status"] == "killed", r.out
    r = run_gitera(repo, "iterate", "--resume", "-m", "again")
    assert r.code == 3 and "A gate's decision is final" in r.err, r.err


def test_the_wall_clock_limit_also_stops_a_hanging_proposer(repo: Path) -> None:
    project(repo)
    r = run_gitera(repo, "iterate", "--loop", "--propose", plan(repo, ["HANG"]), "--max-hours", "0.001")
    assert r.code == 0, r.out + r.err
    assert "proposal stopped: timed out after" in r.err and "when the wall clock ran out" in r.err and (repo.parent / "plan.json.hung").exists()
    assert "the session's wall-clock limit of 0.001 h is reached" in trailers(repo, "Stop")[-1]["reason"]
