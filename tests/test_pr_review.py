"""A reviewable pull request (issue 14), through the real CLI in real repositories: the verdict
tag's journey to other clones, `verify` on the checked-out branch, `status --all`, the log views
with commit links, the generated .gitattributes and the report after the verdict."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.conftest import git, run_gitera
from tests.helpers import read_test_rows, synthetic_project


def sh(cwd: Path, command: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True)
    assert (proc.returncode == 0) == ok, (command, proc.stdout, proc.stderr)
    return proc


def backticked(text: str, starting: str) -> str:
    """The first `command` in ``text`` that starts with ``starting``, as a user would copy it."""
    found = [c for c in re.findall(r"`([^`]+)`", text) if c.startswith(starting)]
    assert found, (starting, text)
    return found[0]


def concluded_and_pushed_without_tags(repo: Path, tmp_path: Path) -> tuple[Path, str]:
    """An experiment concluded and merged into main, pushed with a plain `git push` (the tag left
    behind); returns the bare remote and the verdict's printed output."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.out + r.err
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge the concluded experiment", "autoexp/syn")
    git(repo, "push", "-q", "origin", "main", "autoexp/syn")
    return remote, r.out


def test_a_clone_without_the_verdict_tag_is_told_why_the_hooks_refuse_and_how_to_get_the_tag(repo: Path, tmp_path: Path) -> None:
    remote, verdict_out = concluded_and_pushed_without_tags(repo, tmp_path)
    push = backticked(verdict_out, "git push")
    assert push == "git push --follow-tags origin autoexp/syn" and "a plain `git push` leaves the tag behind" in verdict_out
    assert git(remote, "tag", "--list") == ""  # the user's plain push left it behind
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    assert run_gitera(clone, "hooks", "install").code == 0
    ran = git(repo, "rev-parse", "--short=10", "gitera/syn/verdict^{commit}").strip()

    # the locked-file hook on main: it still refuses (a verdict.json alone proves nothing), and now says why
    (clone / "harness.py").write_text("print('the next question')\n")
    git(clone, "add", "harness.py")
    proc = subprocess.run(["git", "commit", "-m", "a new harness"], cwd=clone, capture_output=True, text=True)
    assert proc.returncode != 0
    assert (f"harness.py is locked by experiment syn and this commit has it modified; experiment syn's verdict ran in {ran} "
            "but its tag gitera/syn/verdict is not in this clone") in proc.stderr, proc.stderr
    assert "restore it with" not in proc.stderr  # the file is no longer the experiment's: restoring is not the cure
    fetch = backticked(proc.stderr, "git fetch origin tag")
    assert fetch == "git fetch origin tag gitera/syn/verdict"
    git(clone, "reset", "-q", "harness.py")

    # the leak hook too: the test rows are public after the verdict, but only the tag proves it ran
    row = str(read_test_rows(repo, "syn")[0]["text"])
    (clone / "notes.md").write_text(f"a test row, now public: {row}\n")
    git(clone, "add", "notes.md")
    proc = subprocess.run(["git", "commit", "-m", "notes"], cwd=clone, capture_output=True, text=True)
    assert proc.returncode != 0 and "notes.md:1 contains a row of experiment syn's sealed test set" in proc.stderr
    assert f"experiment syn's verdict ran in {ran} but its tag gitera/syn/verdict is not in this clone" in proc.stderr
    git(clone, "reset", "-q", "notes.md")

    # following the advice: the remote lacks the tag, so the fetch fails, as the message foresaw
    sh(clone, fetch, ok=False)
    sh(repo, push)  # the command the verdict printed
    assert git(remote, "tag", "--list").split() == ["gitera/syn/verdict"]
    sh(clone, fetch)
    git(clone, "add", "harness.py")
    proc = subprocess.run(["git", "commit", "-m", "a new harness"], cwd=clone, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    git(clone, "add", "notes.md")
    assert subprocess.run(["git", "commit", "-m", "notes"], cwd=clone, capture_output=True, text=True).returncode == 0


def test_pre_push_names_the_missing_tag_too(repo: Path, tmp_path: Path) -> None:
    remote, _ = concluded_and_pushed_without_tags(repo, tmp_path)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    (clone / "harness.py").write_text("print('v2')\n")
    git(clone, "commit", "-q", "--no-verify", "-am", "changed without the hook")
    r = run_gitera(clone, "hook", "locked", "--stage", "pre-push", stdin=f"refs/heads/main {git(clone, 'rev-parse', 'HEAD').strip()} "
                   f"refs/heads/main {git(clone, 'rev-parse', 'origin/main').strip()}\n")
    assert r.code == 3 and "but its tag gitera/syn/verdict is not in this clone" in r.err, r.err


# --- verify checks what is checked out ---------------------------------------------------------


def ran(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0


def test_verify_on_a_detached_head_in_a_fresh_clone_checks_that_commit(repo: Path, tmp_path: Path) -> None:
    # CI checks out the pull request's head commit, detached, in a clone with no local autoexp/ branch
    ran(repo)
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    head = git(repo, "rev-parse", "autoexp/syn").strip()
    git(clone, "checkout", "-q", "--detach", head)
    git(clone, "branch", "-q", "-D", "autoexp/syn")  # the clone followed the remote's HEAD; a CI clone has no such branch
    assert git(clone, "branch", "--list", "autoexp/*") == ""
    for args in ((), ("--tag", "syn")):
        r = run_gitera(clone, "verify", *args)
        assert r.code == 0, r.out + r.err
        assert r.out.splitlines()[0] == f"verify: experiment syn at a detached HEAD ({head[:10]})"
        doc = json.loads(run_gitera(clone, "verify", "--json", *args).out)
        assert doc["ok"] and doc["commit"] == head and doc["where"] == "a detached HEAD" and doc["note"] is None


def test_verify_checks_the_checked_out_branch_not_the_experiment_branch_of_the_same_name(repo: Path) -> None:
    ran(repo)
    # a pull request branch holding a locked-file change made with --no-verify; autoexp/syn itself is clean
    git(repo, "switch", "-q", "-c", "pr-head")
    (repo / "harness.py").write_text((repo / "harness.py").read_text() + "# tuned\n")
    git(repo, "commit", "-q", "--no-verify", "-am", "tune the harness")
    bad = git(repo, "rev-parse", "HEAD").strip()
    for args in ((), ("--tag", "syn")):
        r = run_gitera(repo, "verify", *args)
        assert r.code == 1, r.out + r.err
        assert r.out.splitlines()[0] == f"verify: experiment syn at branch pr-head ({bad[:10]})"
        assert f"note: branch autoexp/syn points at {git(repo, 'rev-parse', 'autoexp/syn').strip()[:10]}, not at the checked-out commit" in r.out
        assert f"FAIL locked files unchanged in every commit since the lock: harness.py in {bad[:10]}" in r.out, r.out
    # on a branch without the experiment's history, --tag refuses rather than check autoexp/syn
    git(repo, "switch", "-q", "main")
    r = run_gitera(repo, "verify", "--tag", "syn")
    assert r.code == 2 and r.out == ""
    assert ("the checked-out commit (branch main, " in r.err and "holds no commit of experiment syn; `git switch autoexp/syn` first — "
            "this command checks what is checked out, never another branch." in r.err), r.err
    r = run_gitera(repo, "report", "--tag", "syn")
    assert r.code == 2 and "never another branch" in r.err


# --- status --all ------------------------------------------------------------------------------


def test_status_all_shows_every_experiment_from_its_branch_or_verdict_tag_in_one_table(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    assert run_gitera(repo, "iterate", "-m", "a better policy").code == 0
    assert run_gitera(repo, "gate").code == 0
    assert run_gitera(repo, "verdict").code == 0
    decision = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Verdict,valueonly)", "gitera/syn/verdict").strip())
    frame = (repo / ".gitera/syn/frame.yaml").read_text()
    # merged, and its branch deleted: the verdict tag alone still names it
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge syn", "autoexp/syn")
    git(repo, "branch", "-q", "-D", "autoexp/syn")
    # a second experiment, climbing
    assert run_gitera(repo, "init", "climb").code == 0
    (repo / ".gitera/climb/frame.yaml").write_text(frame.replace("Does policy B beat policy A?", "Does a climbed B beat A?"))
    for args in (("lock",), ("split", "--accept-underpowered"), ("pilot",), ("run",)):
        assert run_gitera(repo, *args).code == 0, args
    (repo / "policy_b.txt").write_text("accuracy: 0.9\n")
    assert run_gitera(repo, "iterate", "-m", "climb higher").code == 0
    kept = json.loads(run_gitera(repo, "log", "--format", "jsonl").out.splitlines()[-1])
    # a third, locked; a fourth, only framed (each started from main, with a warning, since we are on an autoexp/ branch)
    assert run_gitera(repo, "init", "plain").code == 0
    (repo / ".gitera/plain/frame.yaml").write_text(frame.replace("Does policy B beat policy A?", "Is A enough?"))
    assert run_gitera(repo, "lock").code == 0
    assert run_gitera(repo, "init", "draft", "-q", "Should we even try C?").code == 0

    r = run_gitera(repo, "status", "--all")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["experiment", "state", "best", "dev", "verdict", "question"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == ["climb", "draft", "plain", "syn"]
    assert "syn (tag only)" in rows["syn"] and "concluded" in rows["syn"] and decision["decision"].replace("_", " ") in rows["syn"]
    assert rows["syn"].endswith("Does policy B beat policy A?")
    assert f"{kept['score']:.4f} (b #1)" in rows["climb"] and "iterating" in rows["climb"] and rows["climb"].endswith("Does a climbed B beat A?")
    assert " locked " in rows["plain"] and rows["plain"].endswith("Is A enough?")
    assert " framed " in rows["draft"] and rows["draft"].endswith("Should we even try C?")

    doc = {e["tag"]: e for e in json.loads(run_gitera(repo, "status", "--all", "--json").out)["experiments"]}
    assert doc["syn"]["branch"] is None and doc["syn"]["verdict"] == decision["decision"] and doc["syn"]["verdict_arm"] == decision["arm"]
    assert doc["climb"]["best_dev"] == kept["score"] and doc["climb"]["best_of"] == "b #1" and doc["climb"]["verdict"] is None
    # the same table from any branch: it reads refs, not the working tree
    git(repo, "switch", "-q", "main")
    assert run_gitera(repo, "status", "--all").out == r.out


def test_status_all_names_a_verdict_whose_tag_is_missing_and_an_empty_repo(repo: Path) -> None:
    r = run_gitera(repo, "status", "--all")
    assert r.code == 0 and "no experiments in this repository" in r.out
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    assert run_gitera(repo, "verdict").code == 0
    git(repo, "tag", "-d", "gitera/syn/verdict")
    rows = json.loads(run_gitera(repo, "status", "--all", "--json").out)["experiments"]
    assert [(e["tag"], e["state"], e["verdict"]) for e in rows] == [("syn", "concluded (tag missing)", None)]
