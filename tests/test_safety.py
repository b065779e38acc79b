"""Issue 6 safety: a SIGKILLed `gitera iterate` never corrupts the repo, and two gitera processes never interleave.

The iterate runs as a real subprocess in its own session so the kill also takes the eval
children with it; after every kill the branch, the object store and the user's other files
are checked, and the next command finishes (or clearly refuses) what the killed one left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gitera.adapters.repolock import exclusive
from tests.conftest import BIN_DIR, git, run_gitera
from tests.helpers import fix_holdout_seed, synthetic_project

BRANCH = "autoexp/syn"


def gitera_proc(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PATH": BIN_DIR + os.pathsep + os.environ.get("PATH", ""), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "gitera", *args], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def gitera_sub(repo: Path, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = gitera_proc(repo, *args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def kill_after(proc: subprocess.Popen[str], delay: float) -> None:
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole session: gitera, git and the eval children
        except ProcessLookupError:
            pass
    proc.communicate(timeout=30)


def assert_repo_sound(repo: Path) -> str:
    tip = git(repo, "rev-parse", "--verify", BRANCH).strip()
    assert git(repo, "cat-file", "-t", tip).strip() == "commit"
    fsck = subprocess.run(["git", "fsck", "--no-progress"], check=False, cwd=repo, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    return tip


def user_files(repo: Path) -> dict[str, bytes]:
    return {name: (repo / name).read_bytes() for name in ("notes.md", "scratch/draft.txt")}


def test_sigkill_at_any_point_of_iterate_leaves_a_sound_repo_and_a_resumable_loop(repo: Path) -> None:
    synthetic_project(repo, rows=1000)  # 100 gate rows: enough that a real sprint gain replicates
    fix_holdout_seed(repo)  # the gates' holdout noise replays the same in every run of this test
    assert run_gitera(repo, "run").code == 0  # the baseline and arms: the loop starts from here
    (repo / "notes.md").write_text("my untracked notes — keep me\n")
    (repo / "scratch").mkdir()
    (repo / "scratch" / "draft.txt").write_bytes(b"half-written idea\x00\xff\n")
    mine = user_files(repo)
    policy = repo / "policy_b.txt"
    step = iter(range(1, 100))

    def candidate() -> str:
        # every other attempt is a clear gain (kept), the others a no-op nudge (discarded, then restored)
        k = next(step)
        return f"accuracy: {0.5 + 0.04 * ((k + 1) // 2):.2f}\n" if k % 2 else f"accuracy: {0.5 + 0.04 * (k // 2):.2f}01\n"

    # a normal attempt, timed: the kill points spread over it
    policy.write_text(candidate())
    started = time.monotonic()
    code, out, err = gitera_sub(repo, "iterate", "-m", "timed attempt")
    duration = time.monotonic() - started
    assert code == 0, out + err
    assert user_files(repo) == mine

    delays = [0.05] + [duration * f for f in (0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.05, 1.3, 1.6, 2.0)]
    outcomes = []
    for i, delay in enumerate(delays):
        text = candidate()
        policy.write_text(text)
        before = git(repo, "rev-parse", BRANCH).strip()
        kill_after(gitera_proc(repo, "iterate", "-m", f"killed attempt {i}"), delay)
        tip = assert_repo_sound(repo)
        assert user_files(repo) == mine, f"kill at {delay:.2f}s changed the user's files"
        code, out, err = gitera_sub(repo, "status")
        assert code == 0 and "experiment syn" in out, out + err
        # the next iterate finishes what the kill left and tests the change (re-applied if it was restored)
        if policy.read_text() != text:
            policy.write_text(text)
        code, out, err = gitera_sub(repo, "iterate", "-m", f"retry of attempt {i}")
        assert code == 0 or (code == 3 and err.strip()), (delay, code, out, err)
        closed = code == 3 and ("the generalization gate failed" in err or "the loop has stopped" in err or "saturated" in err)
        if code == 3 and not closed:
            # the killed attempt had already been recorded
            assert "unchanged from the current best" in err, (err, git(repo, "log", "-3", "--format=%B", BRANCH))
        outcomes.append((round(delay, 2), tip != before, code))
        assert_repo_sound(repo)
        assert user_files(repo) == mine
        if closed:  # the gate's holdout noise closed the loop: a clear refusal; later kill points would test nothing new
            assert i >= 3, (outcomes, err)
            git(repo, "checkout", "--", "policy_b.txt")
            break
        code, out, err = gitera_sub(repo, "status")
        assert code == 0 and "interrupted step pending" not in out, out + err
        # nothing gitera owns is left stale in the work tree or the index
        assert git(repo, "status", "--porcelain", "--untracked-files=all").splitlines() == ["?? notes.md", "?? scratch/draft.txt"]
    # both sides were hit: kills before anything was recorded and kills after
    assert any(moved for _, moved, _ in outcomes) and any(not moved for _, moved, _ in outcomes), outcomes
    code, out, err = gitera_sub(repo, "verify")
    assert code == 0, out + err
    raw = git(repo, "log", "--format=%(trailers:key=Gitera-Result,valueonly)", BRANCH)
    iterations = [line for line in raw.splitlines() if '"kind": "attempt"' in line or '"kind":"attempt"' in line]
    assert iterations, raw


def test_iterate_refuses_other_uncommitted_work_and_leaves_it_byte_identical(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    (repo / "README.md").write_text("edited, not staged\n")
    (repo / "notes.md").write_text("untracked\n")
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    code, out, err = gitera_sub(repo, "iterate", "-m", "with a dirty README")
    assert code == 3 and "files other than the target files changed: README.md" in err, out + err
    assert (repo / "README.md").read_text() == "edited, not staged\n"
    assert (repo / "notes.md").read_text() == "untracked\n"
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.7\n"
    assert git(repo, "diff", "--cached", "--name-only") == ""
    assert_repo_sound(repo)


def test_a_second_gitera_iterate_is_refused_while_one_holds_the_repo(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    tip = git(repo, "rev-parse", BRANCH).strip()
    common = Path(git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())
    with exclusive(common, "iterate"):
        code, out, err = gitera_sub(repo, "iterate", "-m", "refused while another holds the repo")
    assert code == 6, out + err
    assert "another gitera process is working in this repository" in err and f"pid {os.getpid()}" in err, err
    assert "`gitera iterate`" in err
    assert git(repo, "rev-parse", BRANCH).strip() == tip  # nothing was written
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.7\n"

    # two real processes at once: exactly one records the attempt, the other is refused with exit 6
    procs = [gitera_proc(repo, "iterate", "-m", f"racer {i}") for i in range(2)]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 6], results
    loser = next(err for code, _, err in results if code == 6)
    assert "another gitera process is working in this repository" in loser
    assert_repo_sound(repo)
    subjects = git(repo, "log", "--format=%s", f"{tip}..{BRANCH}").splitlines()
    assert len(subjects) == 1 and subjects[0].startswith("gitera iterate: syn #1 keep: racer"), subjects
    code, out, err = gitera_sub(repo, "verify")
    assert code == 0, out + err


def test_lock_files_a_killed_git_left_behind_are_cleared_and_a_live_one_is_respected(repo: Path) -> None:
    # a SIGKILL during `git update-ref` or `git update-index` leaves <ref>.lock / index.lock behind;
    # without this every later write would fail until the user deleted them by hand
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    ref_lock = repo / ".git/refs/heads/autoexp/syn.lock"
    index_lock = repo / ".git/index.lock"
    for lock in (ref_lock, index_lock):
        lock.write_text("left by a killed git\n")
        old = time.time() - 60
        os.utime(lock, (old, old))
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    code, out, err = gitera_sub(repo, "iterate", "-m", "after a killed git")
    assert code == 0, out + err
    assert not ref_lock.exists() and not index_lock.exists()
    assert git(repo, "status", "--porcelain").strip() == ""  # the index was updated too
    assert_repo_sound(repo)

    # a lock that a running git keeps rewriting is not stale: refused with a clear sentence, left in place
    tip = git(repo, "rev-parse", BRANCH).strip()
    ref_lock.write_text("held\n")
    (repo / "policy_b.txt").write_text("accuracy: 0.8\n")
    proc = gitera_proc(repo, "iterate", "-m", "while git holds the branch")
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        ref_lock.write_text(f"held {time.monotonic()}\n")  # a live holder: the file keeps changing
        time.sleep(0.05)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, out + err
    assert "is locked by another git process" in err and "syn.lock" in err and "Traceback" not in err, err
    assert ref_lock.exists() and git(repo, "rev-parse", BRANCH).strip() == tip
    ref_lock.unlink()
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.8\n"


def _harness_processes(repo: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if "harness.py" in cmd and cwd.startswith(str(repo)):
            found.append(f"{pid} {cmd}")
    return found


def test_sigterm_during_a_run_kills_the_eval_children_like_ctrl_c(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    # every harness hangs on the dev rows (a policy committed after the lock would not reach the pinned arms)
    proc = gitera_proc(repo, "run", env={"SYN_HANG_SPLIT": "dev"})
    deadline = time.monotonic() + 90  # a loaded 2-core machine can take long to start it
    seen: set[str] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        now = set(_harness_processes(repo))
        if now & seen:  # the same harness process twice, 0.2 s apart: the hanging one, not a quick arm's that is ending
            break
        seen = now
        time.sleep(0.2)
    if proc.poll() is not None:
        out, err = proc.communicate()
        raise AssertionError(f"gitera run ended ({proc.returncode}) before the harness was seen: {out} {err}")
    assert seen, "the harness never started"
    os.kill(proc.pid, signal.SIGTERM)  # gitera alone, as a CI runner cancelling a job does
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, out + err
    time.sleep(0.5)
    assert _harness_processes(repo) == []
    assert_repo_sound(repo)
