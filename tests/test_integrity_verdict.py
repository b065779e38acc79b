"""Issue 12, points 2-4: an agent with shell access cannot ship a verdict it did not earn.

Each test plays the attack the way an agent driving `gitera iterate` could — plain commits,
`git commit --no-verify`, `git rebase -i` through GIT_SEQUENCE_EDITOR, `git tag -f`, edited
trailers and state files, `kill -9` of a running verdict — through the real CLI and real git,
and ends in a refusal or a failing `gitera verify`, never in "All checks pass" for a cheat.

Point 2: the verdict scores the target content of the latest gate-passed attempt (by hash).
Point 3: the test set is opened once, even when the verdict is killed at any moment.
Point 4: verify re-derives the gates, the lock and the locked files' modes from git; forged
gate passes and post-verdict edits fail. Also: `seal status` checks the seal keylessly.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitera.core import gate
from gitera.core.recordmac import record_mac
from gitera.core.trailers import check_message
from tests.conftest import BIN_DIR, git, run_gitera
from tests.helpers import SYNTHETIC, all_blobs, fix_holdout_seed, read_test_rows, synthetic_project

TAG = "syn"
SCORED = "the verdict scored the iterated arm's gated content"
OPENED = "the test set's opening has its conclusion"
REWRITTEN = "no gitera commit of the experiment was rewritten away (the branch's reflog)"
AUTHENTIC = "every gate record is authentic (its MAC, its place, its gate file)"
RESCAN = "every gate's hardcode scan, re-run on its recorded diff, finds what it recorded"
REDECIDED = "every gate's decision re-made from its recorded numbers and the attempts"
LOCK_MATCHES = "lock.json matches its Gitera-Lock trailer, the lock commit's tree and the split"
MODES = "locked files keep their file modes in every commit since the lock"


# --------------------------------------------------------------------------------------------
# helpers: a project, its loop, and what an agent at the shell would type
# --------------------------------------------------------------------------------------------


def project(root: Path, b: str = "accuracy: 0.5\n", **kw: Any) -> None:
    synthetic_project(root, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": b}, **kw)
    fix_holdout_seed(root)
    r = run_gitera(root, "run")
    assert r.code == 0, r.out + r.err


def climb(root: Path, policies: list[str]) -> None:
    for i, text in enumerate(policies, 1):
        (root / "policy_b.txt").write_text(text)
        r = run_gitera(root, "iterate", "-m", f"attempt {i}")
        assert r.code == 0, r.out + r.err


def gated_climb(root: Path) -> None:
    """Three kept attempts whose gain holds on every split: sprint 1's gate passes, iteration 3 is locked."""
    project(root)
    climb(root, [f"accuracy: {x}\n" for x in ("0.7", "0.72", "0.8")])
    assert last_gate(root)["outcome"] == "pass" and last_gate(root)["locked_iteration"] == 3


def tip(root: Path) -> str:
    return git(root, "rev-parse", f"refs/heads/autoexp/{TAG}").strip()


def plain_commit(root: Path, message: str, *args: str) -> str:
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", message, *args], cwd=root, check=True, capture_output=True)
    return tip(root)


def trailer(root: Path, key: str, rev: str = "HEAD") -> dict[str, Any]:
    value: dict[str, Any] = json.loads(git(root, "log", "-1", f"--format=%(trailers:key=Gitera-{key},valueonly)", rev).strip())
    return value


def last_gate(root: Path) -> dict[str, Any]:
    commit = git(root, "log", "-1", "--format=%H", "--grep=^Gitera-Gate: ", f"autoexp/{TAG}").strip()
    return trailer(root, "Gate", commit)


def attempt_commit(root: Path, iteration: int) -> str:
    for line in git(root, "log", "--format=%H%x00%(trailers:key=Gitera-Result,valueonly,separator=%x1e)", f"autoexp/{TAG}").splitlines():
        commit, _, values = line.partition("\0")
        if any(json.loads(v).get("kind") == "attempt" and json.loads(v).get("iteration") == iteration for v in values.split("\x1e") if v):
            return commit
    raise AssertionError(f"no attempt {iteration}")


def blob(root: Path, rev: str, path: str) -> str:
    return git(root, "rev-parse", f"{rev}:{path}").strip()


def verify(root: Path) -> tuple[int, str, dict[str, Any]]:
    r = run_gitera(root, "verify")
    doc = json.loads(run_gitera(root, "verify", "--json").out)
    assert "Traceback" not in r.out + r.err
    return r.code, r.out, doc


def failing(out: str) -> dict[str, str]:
    """check -> detail of every failed check."""
    return {line[5:].split(": ", 1)[0]: (line.split(": ", 1) + [""])[1] for line in out.splitlines() if line.startswith("FAIL ")}


def as_a_clone(root: Path) -> None:
    """Forget the branch's earlier tips, as a fresh clone of a rewritten branch would."""
    git(root, "reflog", "expire", "--expire=now", "--all")


def amend(root: Path, message: str) -> str:
    subprocess.run(["git", "commit", "-q", "--amend", "--no-verify", "-F", "-"], cwd=root, input=message.encode(), check=True, capture_output=True)
    return tip(root)


def message_with(root: Path, key: str, value: dict[str, Any], rev: str = "HEAD") -> str:
    """The commit message of ``rev`` with its Gitera-<key> trailer replaced by ``value``."""
    lines = git(root, "log", "-1", "--format=%B", rev).rstrip("\n").split("\n")
    out = [f"Gitera-{key}: {json.dumps(value, separators=(',', ':'), sort_keys=True)}" if line.startswith(f"Gitera-{key}: ") else line
           for line in lines]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Point 2: the verdict scores what was gated
# --------------------------------------------------------------------------------------------


def test_a_target_committed_outside_the_loop_after_the_gate_is_refused_and_the_gated_content_is_scored(repo: Path) -> None:
    gated_climb(repo)
    gated_blob = blob(repo, attempt_commit(repo, 3), "policy_b.txt")
    # the agent writes a better policy and commits it plainly, skipping iterate and the gate
    (repo / "policy_b.txt").write_text("accuracy: 0.99\n")
    git(repo, "add", "policy_b.txt")
    sneak = plain_commit(repo, "tweak the policy")
    r = run_gitera(repo, "verdict")
    assert r.code == 3, r.out + r.err
    assert ("policy_b.txt at the tip of autoexp/syn was changed outside the loop (last by "
            f"{sneak[:7]}") in r.err and "run `gitera iterate -m HYPOTHESIS`" in r.err, r.err
    assert f"`git checkout {attempt_commit(repo, 3)[:10]} -- policy_b.txt`" in r.err
    assert tip(repo) == sneak  # nothing recorded: no opening
    # dressed up as a gitera restore (a hand-written Gitera-Restore trailer), it is refused all the same
    (repo / "policy_b.txt").write_text("accuracy: 0.98\n")
    git(repo, "add", "policy_b.txt")
    restore = {"iteration": 3, "restored_to": 3, "commit": "", "files": ["policy_b.txt"], "reason": "resume"}
    plain_commit(repo, f"gitera restore: syn back to iteration 3\n\nGitera-Tag: syn\nGitera-Restore: {json.dumps(restore)}")
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "was changed outside the loop" in r.err, r.err
    # the sentence's own fix: put the gated content back, and the verdict scores iteration 3 by its hash
    git(repo, "checkout", attempt_commit(repo, 3)[:10], "--", "policy_b.txt")
    plain_commit(repo, "back to the gated policy")
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.out + r.err
    doc = json.loads((repo / ".gitera/syn/verdict.json").read_text())
    assert doc["arms"]["b"]["targets"] == {"policy_b.txt": gated_blob} and doc["arms"]["b"]["iteration"] == 3
    assert trailer(repo, "Verdict")["scored"] == {"b": {"iteration": 3, "targets": {"policy_b.txt": gated_blob}}}
    assert trailer(repo, "Opening", "HEAD~1")["arms"]["b"]["targets"] == {"policy_b.txt": gated_blob}
    code, out, _ = verify(repo)
    assert code == 0 and f"ok   {SCORED}" in out, out


def test_without_a_loop_a_plain_committed_target_is_refused_and_iterate_scores_it_as_the_first_attempt(repo: Path) -> None:
    project(repo)  # the run measured b at accuracy 0.5; no attempt yet
    (repo / "policy_b.txt").write_text("accuracy: 0.8\n")
    git(repo, "add", "policy_b.txt")
    plain_commit(repo, "a better policy, committed by hand")
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "was changed outside the loop" in r.err and "gitera iterate -m HYPOTHESIS" in r.err, r.err
    # what the refusal says to do: the committed change is scored as attempt 1 against the run's state
    r = run_gitera(repo, "iterate", "-m", "the committed policy")
    assert r.code == 0, r.out + r.err
    result = trailer(repo, "Result", attempt_commit(repo, 1))
    assert result["status"] == "keep" and result["score"] > result["best_score"] + 0.2, result


def test_verify_recomputes_the_scored_content_and_fails_a_verdict_that_records_another(repo: Path) -> None:
    gated_climb(repo)
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.out + r.err
    # the forger rewrites the verdict commit to say it scored another attempt's content
    other = blob(repo, attempt_commit(repo, 2), "policy_b.txt")
    path = repo / ".gitera/syn/verdict.json"
    doc = json.loads(path.read_text())
    doc["arms"]["b"].update(iteration=2, targets={"policy_b.txt": other})
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    git(repo, "add", str(path.relative_to(repo)))
    verdict = trailer(repo, "Verdict")
    verdict["scored"] = {"b": {"iteration": 2, "targets": {"policy_b.txt": other}}}
    amend(repo, message_with(repo, "Verdict", verdict))
    git(repo, "tag", "-f", "-a", "-m", "verdict", f"gitera/{TAG}/verdict", "HEAD")
    code, out, _ = verify(repo)
    fails = failing(out)
    assert code == 1 and SCORED in fails and REWRITTEN in fails, out
    assert "verdict.json records {'iteration': 2" in fails[SCORED] and "git gives iteration 3" in fails[SCORED]
    as_a_clone(repo)  # a clone has no reflog of the rewrite: the re-derivation alone still catches it
    code, out, _ = verify(repo)
    assert code == 1 and SCORED in failing(out) and REWRITTEN not in failing(out), out


# --------------------------------------------------------------------------------------------
# Point 3: one opening, even when killed
# --------------------------------------------------------------------------------------------

HARNESS_EXTRA = '''
    if os.environ.get("GITERA_SPLIT") == "test" and Path(FAIL).exists():
        print("FAIL file says fail on the test rows", file=sys.stderr)
        return 1
    if os.environ.get("GITERA_SPLIT") == "test" and Path(ARMED).exists():
        Path(PAUSED).touch()
        parent = os.getppid()
        for _ in range(1200):  # until killed, or until gitera is gone
            if os.getppid() != parent:
                break
            time.sleep(0.1)
    trial = int(os.environ["GITERA_TRIAL"])'''


# A `git` that is the real git and pauses (never changes anything) at the N-th `git update-ref`
# or at `git tag`, so a test can kill the verdict at an exact point; everything else is real git.
GIT_SHIM = """#!/bin/sh
if [ "$1" = "update-ref" ] || [ "$1" = "tag" ]; then
  i=1; while [ -e "$SHIM_DIR/$1-$i" ]; do i=$((i+1)); done
  : > "$SHIM_DIR/$1-$i"
  if [ "$1-$i" = "$SHIM_PAUSE_AT" ]; then : > "$SHIM_DIR/paused"; sleep 600; fi
fi
exec REAL_GIT "$@"
"""


def pausing_project(root: Path, tmp: Path) -> None:
    """A project whose locked harness pauses on the test rows while ``tmp/armed`` exists, and fails
    on them while ``tmp/fail`` exists (files, not variables: the harness's environment is gitera's to scrub)."""
    harness = tmp / "harness.py"
    extra = HARNESS_EXTRA.replace("FAIL", repr(str(tmp / "fail"))).replace("ARMED", repr(str(tmp / "armed"))).replace("PAUSED", repr(str(tmp / "paused")))
    harness.write_text((SYNTHETIC / "harness.py").read_text().replace('\n    trial = int(os.environ["GITERA_TRIAL"])', extra, 1))
    project(root, b="accuracy: 0.8\n", harness=harness)


def leftovers(root: Path, texts: list[str], ids: list[str]) -> list[str]:
    """Where a test row or a per-row test score can still be read: any file under .git/gitera but the
    key store, any .jsonl file in the work tree, and any object in git's store, reachable or not."""
    found = []
    # os.walk, not rglob: a directory the dead man's switch removes mid-walk is skipped, not an error
    # the key store is not searched: it holds the keys and the split's source data file by design
    # (integ-data's custody, docs/threat-model.md); what is searched is what the verdict leaves behind
    key_store = root / ".git" / "gitera" / "keys"
    under_git = [Path(d) / f for d, _, files in os.walk(root / ".git" / "gitera") for f in files if not Path(d).is_relative_to(key_store)]
    jsonl = [Path(d) / f for d, _, files in os.walk(root) for f in files if f.endswith(".jsonl")]
    for path in [*under_git, *jsonl]:
        try:
            data = path.read_text(errors="replace") if path.is_file() and not path.is_symlink() else ""
        except OSError:  # removed while we looked (the dead man's switch at work)
            continue
        if any(t in data for t in texts):
            found.append(str(path.relative_to(root)))
    try:
        store = b"".join(all_blobs(root)).decode(errors="replace")
    except subprocess.CalledProcessError:  # an object unlinked while git listed the store: look again
        return [*found, "git's object store (changing while read)"]
    found += [f"git object with row {i}" for i in ids if f'"id": "{i}"' in store]
    return found


def killed_verdict(root: Path, tmp: Path, at: str) -> None:
    """Run `gitera verdict` in its own process and `kill -9` its process group at ``at``:
    "update-ref-1" (before the opening commit), "scoring" (the harness on the test rows),
    "update-ref-2" (scored, the conclusion's objects written, the branch not moved) or "tag-1"."""
    shim_dir, bin_dir = tmp / "shim-state", tmp / "shim-bin"
    shim_dir.mkdir()
    bin_dir.mkdir()
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True, check=True).stdout.strip()
    (bin_dir / "git").write_text(GIT_SHIM.replace("REAL_GIT", real))
    (bin_dir / "git").chmod(0o755)
    paused = tmp / "paused"
    if at == "scoring":
        (tmp / "armed").touch()
    env = {**os.environ, "PATH": os.pathsep.join([str(bin_dir), BIN_DIR, os.environ.get("PATH", "")]), "SHIM_DIR": str(shim_dir),
           "SHIM_PAUSE_AT": at}
    proc = subprocess.Popen([sys.executable, "-m", "gitera", "verdict"], cwd=root, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = paused if at == "scoring" else shim_dir / "paused"
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the verdict never reached {at} (exit {proc.poll()})"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        (tmp / "armed").unlink(missing_ok=True)


def settle(root: Path, texts: list[str], ids: list[str]) -> list[str]:
    """What is left readable once the dead man's switch has run (it runs as the verdict dies)."""
    deadline = time.monotonic() + 30
    while (left := leftovers(root, texts, ids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_a_verdict_killed_before_its_opening_commit_opens_nothing_and_a_verdict_can_still_run(repo: Path, tmp_path: Path) -> None:
    pausing_project(repo, tmp_path)
    rows = read_test_rows(repo, tag=TAG)
    texts, ids = [str(r["text"]) for r in rows[:5]], [str(r["id"]) for r in rows[:5]]
    before = tip(repo)
    killed_verdict(repo, tmp_path, "update-ref-1")
    assert tip(repo) == before  # the opening was never recorded, and the key was never used
    assert settle(repo, texts, ids) == []
    code, out, _ = verify(repo)
    assert code == 0 and "the verdict: not run yet" in out, out
    r = run_gitera(repo, "verdict")  # nothing was opened: the one verdict still runs
    assert r.code == 0, r.out + r.err
    code, out, _ = verify(repo)
    assert code == 0 and f"ok   {OPENED}" in out, out


def test_a_split_file_changed_since_the_split_is_refused_before_the_opening(repo: Path) -> None:
    # the seal's header binds the split files' pins; the verdict compares them without the key,
    # before it records the opening, so a relabelled dev.jsonl closes nothing
    project(repo, b="accuracy: 0.8\n")
    split_commit = git(repo, "log", "-1", "--format=%H", "--grep=^Gitera-Split: ").strip()
    dev = repo / ".gitera/syn/split/dev.jsonl"
    dev.write_text("".join(json.dumps({**json.loads(x), "label": "relabelled"}, sort_keys=True) + "\n" for x in dev.read_text().splitlines()))
    git(repo, "add", str(dev.relative_to(repo)))
    before = plain_commit(repo, "fix some labels")
    r = run_gitera(repo, "verdict")
    assert r.code == 4 and "a split file (train/dev/gate/test) was changed after the split" in r.err, r.err
    assert tip(repo) == before and "Gitera-Opening" not in git(repo, "log", "--format=%B", f"autoexp/{TAG}")
    git(repo, "checkout", split_commit, "--", ".gitera/syn/split/dev.jsonl")
    plain_commit(repo, "the split's labels back")
    r = run_gitera(repo, "verdict")  # nothing was opened: the one verdict still runs
    assert r.code == 0, r.out + r.err


@pytest.mark.parametrize("at", ["scoring", "update-ref-2"])
def test_a_verdict_killed_after_its_opening_leaves_nothing_readable_and_closes_the_experiment(repo: Path, tmp_path: Path, at: str) -> None:
    pausing_project(repo, tmp_path)
    rows = read_test_rows(repo, tag=TAG)
    texts, ids = [str(r["text"]) for r in rows], [str(r["id"]) for r in rows]
    killed_verdict(repo, tmp_path, at)
    opened = tip(repo)
    assert trailer(repo, "Opening", opened)["status"] == "opened"
    # the decrypted rows, the harness's per-row test scores and the conclusion's unpublished objects
    # are destroyed with the process, before any other gitera command runs
    assert settle(repo, texts, ids) == []
    for command in (("verdict",), ("run",), ("iterate", "-m", "one more idea"), ("gate",)):
        r = run_gitera(repo, *command)
        assert r.code == 3, (command, r.out + r.err)
        assert f"opened the sealed test set in {opened[:10]} and never concluded (it was stopped before its conclusion commit)" in r.err, r.err
    assert tip(repo) == opened
    status = json.loads(run_gitera(repo, "status", "--json").out)
    assert status["stage"] == "opened" and opened[:10] in status["verdict_error"], status
    code, out, _ = verify(repo)
    assert code == 1 and f"the test set was opened in {opened[:10]} and never concluded" in failing(out)[OPENED], out


@pytest.mark.parametrize("confirmed", [True, False])
def test_the_dead_mans_switch_keeps_a_landed_commits_objects_after_the_branch_moves_on(repo: Path, tmp_path: Path, confirmed: bool) -> None:
    # on a busy machine the watcher may look only after the user amended the verdict commit (which
    # reuses its objects): a landing the verdict confirmed keeps them; an unconfirmed one is judged
    # by where the branch points, as after a kill between writing the objects and moving the branch
    from gitera.adapters.deadman import destroyed_on_exit

    (repo / "f.txt").write_text("first\n")
    git(repo, "add", "f.txt")
    git(repo, "commit", "-q", "-m", "one")
    ref, commit = git(repo, "rev-parse", "--symbolic-full-name", "HEAD").strip(), git(repo, "rev-parse", "HEAD").strip()
    oid = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"per-row scores\n", capture_output=True, check=True).stdout.decode().strip()
    loose = repo / ".git/objects" / oid[:2] / oid[2:]
    marker = tmp_path / "watcher-done"  # removed after the objects are decided: the watcher has run
    marker.touch()
    with destroyed_on_exit([str(marker)]) as switch:
        switch.objects([loose])
        switch.landing(repo, ref, commit)
        if confirmed:
            switch.landed()
        git(repo, "commit", "-q", "--amend", "-m", "one, amended")  # the branch moves on before the watcher looks
    deadline = time.monotonic() + 60
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not marker.exists()
    assert loose.exists() is confirmed


def test_a_verdict_killed_after_its_conclusion_before_its_tag_stands_concluded(repo: Path, tmp_path: Path) -> None:
    pausing_project(repo, tmp_path)
    killed_verdict(repo, tmp_path, "tag-1")
    concluded = tip(repo)
    assert trailer(repo, "Verdict", concluded)["opening"] == git(repo, "rev-parse", f"{concluded}^").strip()
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and f"ran in {concluded[:10]} but its tag gitera/syn/verdict is missing" in r.err, r.err
    code, out, _ = verify(repo)
    assert code == 0, out


def test_a_verdict_that_fails_after_its_opening_records_why_and_the_experiment_stays_closed(repo: Path, tmp_path: Path) -> None:
    pausing_project(repo, tmp_path)
    rows = read_test_rows(repo, tag=TAG)
    (tmp_path / "fail").touch()  # the harness crashes on the test rows
    r = run_gitera(repo, "verdict")
    assert r.code == 5, r.out + r.err
    assert "left test rows unscored" in r.err and "never concluded (it failed: arm(s)" in r.err and "gitera init NEW_TAG" in r.err, r.err
    abort = trailer(repo, "Opening")
    assert abort["status"] == "aborted" and abort["opening"] == git(repo, "rev-parse", "HEAD~1").strip()
    assert json.loads((repo / ".gitera/syn/opening.json").read_text())["aborted"]["reason"].startswith("arm(s) ")
    assert settle(repo, [str(r["text"]) for r in rows], [str(r["id"]) for r in rows]) == []
    log = run_gitera(repo, "log")
    line = next((ln for ln in log.out.splitlines() if ln.startswith("opening ") and " aborted " in ln), "")
    assert log.code == 0 and "the verdict failed after opening the test set: arm(s) a, b left test rows unscored" in line, log.out
    (tmp_path / "fail").unlink()
    r = run_gitera(repo, "verdict")  # fixed or not, the rows were opened: no second pass
    assert r.code == 3 and "never concluded (it failed: arm(s)" in r.err, r.err
    code, out, _ = verify(repo)
    assert code == 1 and "the verdict failed: arm(s)" in failing(out)[OPENED], out
    for commit in git(repo, "log", "-2", "--format=%H").split():  # the new trailer kind passes the commit-msg hook's check
        assert check_message(git(repo, "log", "-1", "--format=%B", commit)) == []


def test_deleting_the_tag_and_verdict_json_or_resetting_the_branch_does_not_reopen_the_test_set(repo: Path) -> None:
    project(repo, b="accuracy: 0.8\n")
    assert run_gitera(repo, "verdict").code == 0
    opened = git(repo, "rev-parse", "HEAD~1").strip()
    git(repo, "tag", "-d", f"gitera/{TAG}/verdict")
    git(repo, "rm", "-q", ".gitera/syn/verdict.json", ".gitera/syn/opening.json")
    plain_commit(repo, "start over")
    for command in (("verdict",), ("run",)):
        r = run_gitera(repo, *command)
        assert r.code == 3 and "ran in" in r.err and "the test set was opened" in r.err, r.err
    # further: reset the branch to before the opening (history rewritten away)
    git(repo, "reset", "-q", "--hard", f"{opened}~1")
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and f"was already opened in {opened[:10]}" in r.err, r.err
    code, out, _ = verify(repo)
    assert code == 1 and opened[:10] in failing(out)[REWRITTEN], out


# --------------------------------------------------------------------------------------------
# Point 4: verify re-derives decisions, the lock and the modes
# --------------------------------------------------------------------------------------------


def killed_climb(root: Path) -> None:
    """The sprint's gain exists on the dev rows only: replication fails, the gate kills the arm at iteration 0."""
    project(root)
    climb(root, [f"accuracy: 0.5\nsplit.dev: {x}\n" for x in ("0.6", "0.7", "0.8")])
    assert last_gate(root)["outcome"] == "fail" and last_gate(root)["locked_iteration"] == 0


def forge_gate_pass(root: Path, mac_key: bytes | None = None, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Amend the gate commit into a pass that locks iteration 3: its trailer with numbers that agree
    with each other (the climbing rows answered), its gate file, the loop state and the policy file.
    With ``mac_key`` (read from the key store) the MAC is recomputed too."""
    gate_rec = last_gate(root)
    attempts = [trailer(root, "Result", attempt_commit(root, i)) for i in (1, 2, 3)]
    state_path = root / ".gitera/syn/runs/iterate.json"
    state = json.loads(state_path.read_text())
    start = state["gate_passed"]["score"]
    dev_gain = attempts[-1]["score"] - start
    se = gate_rec["se_gain"]
    rep = gate.replication(dev_gain, dev_gain, 0.0, attempts[-1]["noise_floor"], se)
    gate_rec.update(outcome="pass", reasons=["no hardcode; not saturated; replication passed"], locked_iteration=3,
                    replication=rep.to_dict(), holdout_queries=[{"query": 1, "value": dev_gain, "holdout_used": False, "exhausted": False,
                                                                 "budget_left": 10, "gamma_from": 0}])
    if edit is not None:
        edit(gate_rec)
    if mac_key is not None:
        gate_rec["mac"] = record_mac(mac_key, TAG, "Gate", gate_rec)
    (root / ".gitera/syn/runs/gate-001.json").write_text(json.dumps(gate_rec, indent=1, sort_keys=True) + "\n")
    third = {"iteration": 3, "commit": "", "score": attempts[-1]["score"], "rows_file": attempts[-1]["rows"],
             "blobs": {"policy_b.txt": blob(root, attempt_commit(root, 3), "policy_b.txt")}}
    state.update(status="active", sprint=2, in_sprint=0, best=third, gate_passed=third)
    state["history"][-1].update(outcome="pass", locked_iteration=3)
    state_path.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    git(root, "checkout", attempt_commit(root, 3), "--", "policy_b.txt")
    git(root, "add", "-A", ".gitera/syn/runs", "policy_b.txt")
    message = message_with(root, "Gate", gate_rec)
    amend(root, "\n".join(line for line in message.split("\n") if not line.startswith("Gitera-Restore: ")))


def test_a_forged_gate_pass_fails_verify_and_is_refused_by_the_verdict(repo: Path) -> None:
    killed_climb(repo)
    forge_gate_pass(repo)  # consistent numbers; only the MAC, which needs the key store, is left stale
    before = tip(repo)
    r = run_gitera(repo, "verdict")
    assert r.code == 3, r.out + r.err
    assert "a gate record does not hold:" in r.err and "its MAC does not match the gate-record key" in r.err, r.err
    assert tip(repo) == before  # refused before any opening
    as_a_clone(repo)  # even where the amend left no reflog
    code, out, _ = verify(repo)
    fails = failing(out)
    assert code == 1 and "its MAC does not match the gate-record key" in fails[AUTHENTIC], out
    assert RESCAN not in fails and REDECIDED not in fails, out  # the forger kept the numbers consistent: the MAC is what catches it


def test_a_forger_who_reads_the_record_key_is_still_caught_by_the_re_derivations(repo: Path) -> None:
    # the key store is readable by the agent's user: it recomputes the MAC, but flips only the
    # outcome and the locked iteration, leaving the failed replication the gate measured
    killed_climb(repo)
    genuine = last_gate(repo)
    key = base64.b64decode((repo / ".git/gitera/keys/syn.recordkey").read_text().strip())

    def lazy(g: dict[str, Any]) -> None:
        g.update(replication=genuine["replication"], holdout_queries=genuine["holdout_queries"])

    forge_gate_pass(repo, mac_key=key, edit=lazy)
    code, out, _ = verify(repo)
    fails = failing(out)
    assert code == 1 and AUTHENTIC not in fails, out
    assert "it records outcome 'pass' but its checks give 'fail'" in fails[REDECIDED], out
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "but its checks give 'fail'" in r.err, r.err


def test_a_hardcode_the_gate_record_hides_is_found_by_re_running_the_scan(repo: Path) -> None:
    project(repo)
    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines() if x.strip()]
    copied = f"# {dev[7]['text']}\n"  # a dev row's text copied into the target: "if input X return Y"
    climb(repo, ["accuracy: 0.7\n", "accuracy: 0.72\n", f"accuracy: 0.8\n{copied}"])
    gate_rec = last_gate(repo)
    assert gate_rec["outcome"] == "fail" and gate_rec["hardcode_hits"] >= 1
    key = base64.b64decode((repo / ".git/gitera/keys/syn.recordkey").read_text().strip())

    def hide(g: dict[str, Any]) -> None:
        g.update(hardcode_hits=0, hardcode=[])

    forge_gate_pass(repo, mac_key=key, edit=hide)
    code, out, _ = verify(repo)
    fails = failing(out)
    assert code == 1 and "it records 0 hardcode hit(s) but the scan of its diff finds" in fails[RESCAN], out
    assert "policy_b.txt:2" in fails[RESCAN]
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "it records 0 hardcode hit(s)" in r.err, r.err


def test_gate_macs_are_checked_with_the_released_key_where_the_key_store_is_absent(repo: Path) -> None:
    gated_climb(repo)
    assert run_gitera(repo, "verdict").code == 0
    (repo / ".git/gitera/keys/syn.recordkey").unlink()  # a CI clone: no key store
    code, out, _ = verify(repo)
    assert code == 0 and f"ok   {AUTHENTIC}: MACs checked with the key the verdict released" in out, out


def lock_commit_of(root: Path) -> str:
    return git(root, "log", "-1", "--format=%H", "--grep=^Gitera-Lock: ", f"autoexp/{TAG}").strip()


def rewrite_lock_commit(root: Path, script_body: str) -> str:
    """`git rebase -i` from the lock commit's parent, the todo list edited by GIT_SEQUENCE_EDITOR to
    run ``script_body`` (sh) right after the lock commit is picked, so it can amend it; every later
    commit is replayed. Returns the original lock commit."""
    commit = lock_commit_of(root)
    script = root.parent / "rewrite-lock.sh"
    script.write_text("#!/bin/sh\nset -e\n" + script_body)
    script.chmod(0o755)
    editor = f"sed -i 's|^\\(pick {commit[:7]}.*\\)$|\\1\\nexec {script}|'"
    proc = subprocess.run(["git", "rebase", "-q", "-i", f"{commit}~1"], cwd=root, env={**os.environ, "GIT_SEQUENCE_EDITOR": editor},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert lock_commit_of(root) != commit  # rewritten
    return commit


def test_a_rebase_that_rewrites_the_lock_commit_fails_verify(repo: Path) -> None:
    project(repo, b="accuracy: 0.8\n")
    # at the lock commit: a lower threshold in the frame, lock.json and the Gitera-Lock trailer made to agree
    rewrite_lock_commit(repo, f"""sed -i 's/effect: 0.05/effect: 0.01/' .gitera/{TAG}/frame.yaml
{sys.executable} - <<'EOF'
import hashlib, json, subprocess
frame = open(".gitera/{TAG}/frame.yaml", "rb").read()
lock = json.load(open(".gitera/{TAG}/lock.json"))
lock["frame"]["sha256"] = hashlib.sha256(frame).hexdigest()
lock["frame"]["blob"] = subprocess.run(["git", "hash-object", ".gitera/{TAG}/frame.yaml"], capture_output=True, text=True).stdout.strip()
lock["frame"].pop("parsed_sha256", None)
open(".gitera/{TAG}/lock.json", "w").write(json.dumps(lock, indent=2, sort_keys=True) + "\\n")
msg = subprocess.run(["git", "log", "-1", "--format=%B"], capture_output=True, text=True).stdout
out = []
for line in msg.splitlines():
    if line.startswith("Gitera-Lock: "):
        t = json.loads(line[13:]); t["frame"] = lock["frame"]["sha256"]
        line = "Gitera-Lock: " + json.dumps(t, separators=(",", ":"), sort_keys=True)
    out.append(line)
open("msg.txt", "w").write("\\n".join(out) + "\\n")
EOF
git add .gitera/{TAG}/frame.yaml .gitera/{TAG}/lock.json
git commit -q --amend --no-verify -F msg.txt
rm msg.txt
""")
    assert "effect: 0.01" in (repo / ".gitera/syn/frame.yaml").read_text()
    as_a_clone(repo)  # the reflog would name the old commits too; the lock's own checks must hold alone
    code, out, _ = verify(repo)
    fails = failing(out)
    assert code == 1 and "the seal is bound to frame" in fails[LOCK_MATCHES] and "the split's manifest names frame" in fails[LOCK_MATCHES], out
    assert "every result was made under the locked frame" in fails, out


def test_lock_json_edited_in_the_lock_commit_to_drop_a_locked_file_fails_verify(repo: Path) -> None:
    project(repo, b="accuracy: 0.8\n")
    lock_commit = rewrite_lock_commit(repo, f"""{sys.executable} -c "import json; p='.gitera/{TAG}/lock.json'; d=json.load(open(p)); d['files']=[]; open(p,'w').write(json.dumps(d, indent=2, sort_keys=True)+chr(10))"
git commit -q --amend --no-verify --no-edit -a
""")
    code, out, _ = verify(repo)
    fails = failing(out)
    assert code == 1 and "the trailer locks ['harness.py'] but lock.json locks []" in fails[LOCK_MATCHES], out
    assert "the frame registers locked files ['harness.py']" in fails[LOCK_MATCHES]
    assert lock_commit[:10] in fails[REWRITTEN]


def test_a_locked_file_whose_mode_changed_is_refused_by_the_hooks_every_command_and_verify(repo: Path, tmp_path: Path) -> None:
    project(repo, b="accuracy: 0.8\n")
    assert json.loads((repo / ".gitera/syn/lock.json").read_text())["files"][0]["mode"] == "100644"
    assert run_gitera(repo, "hooks", "install").code == 0
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", f"autoexp/{TAG}")
    git(repo, "update-index", "--chmod=+x", "harness.py")  # the blob id stays the same: only the mode changes
    proc = subprocess.run(["git", "commit", "-q", "-m", "make the harness executable"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "harness.py is locked by experiment syn and this commit has it changed to mode 100755 (locked as 100644)" in proc.stderr, proc.stderr
    bad = plain_commit(repo, "make the harness executable")  # past the hook
    push = subprocess.run(["git", "push", "origin", f"autoexp/{TAG}"], cwd=repo, capture_output=True, text=True)
    assert push.returncode != 0
    assert f"commit {bad[:10]} has harness.py changed to mode 100755 (locked as 100644)" in push.stderr, push.stderr
    r = run_gitera(repo, "run")
    assert r.code == 3 and "harness.py (mode 100755, locked as 100644" in r.err, r.err
    code, out, _ = verify(repo)
    assert code == 1 and f"harness.py is 100755 in {bad[:10]} (locked as 100644)" in failing(out)[MODES], out


def test_post_verdict_edits_of_the_test_rows_and_a_moved_tag_fail_verify(repo: Path) -> None:
    project(repo, b="accuracy: 0.6\n")
    assert run_gitera(repo, "verdict").code == 0
    verdict_commit = tip(repo)
    rows_file = repo / ".gitera/syn/runs/test/b.jsonl"
    better = "".join(json.dumps({**json.loads(x), "score": 1}, sort_keys=True) + "\n" for x in rows_file.read_text().splitlines() if x.strip())
    # 1. a later commit with better test scores, and the tag moved onto it
    rows_file.write_text(better)
    git(repo, "add", str(rows_file.relative_to(repo)))
    later = plain_commit(repo, "fix up the test results")
    git(repo, "tag", "-f", "-a", "-m", "verdict", f"gitera/{TAG}/verdict", later)
    code, out, _ = verify(repo)
    fails = failing(out)
    assert code == 1 and f"names {later[:10]}, which is not this experiment's verdict" in fails["the verdict commit is the one its tag names"], out
    assert later[:10] in fails["nothing but the verdict's files after the opening"]
    # 2. the verdict commit itself amended with them, the tag moved again
    git(repo, "reset", "-q", "--hard", verdict_commit)
    rows_file.write_text(better)
    git(repo, "add", str(rows_file.relative_to(repo)))
    amend(repo, git(repo, "log", "-1", "--format=%B"))
    git(repo, "tag", "-f", "-a", "-m", "verdict", f"gitera/{TAG}/verdict", "HEAD")
    code, out, _ = verify(repo)
    fails = failing(out)
    assert code == 1 and verdict_commit[:10] in fails[REWRITTEN], out
    assert "arm(s) b: the file differs from its recorded sha256" in fails["the per-row test files are the ones the verdict recorded"], out
    as_a_clone(repo)
    code, out, _ = verify(repo)
    assert code == 1 and "the per-row test files are the ones the verdict recorded" in failing(out), out


# --------------------------------------------------------------------------------------------
# seal status: sizes and structure, keylessly
# --------------------------------------------------------------------------------------------


def test_seal_status_reports_a_truncated_or_extended_seal_without_the_key(repo: Path) -> None:
    synthetic_project(repo, pilot=False)
    (repo / ".git/gitera/keys/syn.key").unlink()  # keyless: nothing here can decrypt
    seal = repo / ".gitera/syn/split/test.seal"
    original = seal.read_bytes()
    ok = json.loads(run_gitera(repo, "seal", "status", "--json").out)
    assert ok["structure"] == {"file_size": len(original), "expected_size": len(original), "chunks": 1, "ok": True} and ok["problems"] == []
    seal.write_bytes(original[:-10])
    r = run_gitera(repo, "seal", "status")
    assert r.code == 4 and f"PROBLEM: truncated: 10 bytes missing (the file is {len(original) - 10:,} bytes" in r.out, r.out + r.err
    seal.write_bytes(original + b"xyz")
    j = run_gitera(repo, "seal", "status", "--json")
    assert j.code == 4 and json.loads(j.out)["problems"][0].startswith("3 bytes appended after its last chunk"), j.out
    seal.write_bytes(original[:40])  # cut inside the header
    r = run_gitera(repo, "seal", "status")
    assert r.code == 4 and "ends inside its header" in r.err and "Traceback" not in r.err, r.err
    seal.write_bytes(original)
    assert run_gitera(repo, "seal", "status").code == 0
