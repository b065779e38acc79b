from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, run_gitera
from tests.helpers import FRAME, init_and_lock, write_project


def test_init_refuses_outside_a_repo(tmp_path: Path) -> None:
    r = run_gitera(tmp_path, "init", "exp1")
    assert r.code == 2
    assert r.err == f"gitera: error: {tmp_path} is not inside a git repository; run `git init` first or cd into one.\n"


def test_init_refuses_a_bad_tag_and_an_existing_branch(repo: Path) -> None:
    r = run_gitera(repo, "init", "Has Space")
    assert r.code == 2 and "is not a valid experiment tag" in r.err
    git(repo, "branch", "autoexp/exp1")
    r = run_gitera(repo, "init", "exp1")
    assert r.code == 3
    assert r.err.startswith("gitera: error: branch autoexp/exp1 already exists;")
    # an earlier experiment's verdict tag outlives its branch: reusing the tag would start closed
    git(repo, "branch", "-D", "autoexp/exp1")
    git(repo, "tag", "-a", "gitera/exp1/verdict", "-m", "verdict", "HEAD")
    r = run_gitera(repo, "init", "exp1")
    assert r.code == 3 and "an earlier experiment exp1 reached its verdict (tag gitera/exp1/verdict); choose another tag" in r.err
    assert not git(repo, "branch", "--list", "autoexp/exp1").strip()


def test_init_creates_the_branch_frame_and_program_without_touching_user_work(repo: Path) -> None:
    (repo / "README.md").write_text("edited but not committed\n")
    (repo / "notes.txt").write_text("untracked\n")
    git(repo, "add", "README.md")
    r = run_gitera(repo, "init", "exp1", "-q", "Does v2 beat v1?", "--arm", "v1=current", "--arm", "v2=new", "--baseline", "v1")
    assert r.code == 0, r.err
    assert git(repo, "branch", "--show-current").strip() == "autoexp/exp1"
    frame = (repo / ".gitera/exp1/frame.yaml").read_text()
    assert 'question: "Does v2 beat v1?"' in frame and "TODO" in frame
    program = (repo / ".gitera/exp1/program.md").read_text()
    assert "Never edit `.gitera/exp1/frame.yaml`" in program and "gitera iterate -m" in program
    # the user's staged and untracked work is exactly as it was
    assert (repo / "README.md").read_text() == "edited but not committed\n"
    assert (repo / "notes.txt").read_text() == "untracked\n"
    status = git(repo, "status", "--porcelain")
    assert status.splitlines() == ["M  README.md", "?? notes.txt"]
    assert git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Tag,valueonly)").strip() == "exp1"
    assert git(repo, "show", "--stat", "--format=", "HEAD").count("|") == 2


def test_lock_commits_frame_and_lock_with_parseable_trailers(repo: Path) -> None:
    init_and_lock(repo)
    assert git(repo, "status", "--porcelain") == ""
    parsed = subprocess.run(["git", "interpret-trailers", "--parse"], input=git(repo, "log", "-1", "--format=%B"), capture_output=True, text=True, check=True).stdout
    tag_line, lock_line = parsed.splitlines()
    assert tag_line == "Gitera-Tag: exp1"
    value = json.loads(lock_line.removeprefix("Gitera-Lock: "))
    assert set(value["locked"]) == {"eval/run.py", "eval/metric.py"}
    lock = json.loads((repo / ".gitera/exp1/lock.json").read_text())
    import hashlib

    assert lock["frame"]["sha256"] == hashlib.sha256(FRAME.encode()).hexdigest() == value["frame"]
    assert {f["path"] for f in lock["files"]} == {"eval/run.py", "eval/metric.py"}
    assert git(repo, "ls-files", ".gitera/exp1").split() == [".gitera/exp1/frame.yaml", ".gitera/exp1/lock.json", ".gitera/exp1/program.md"]


def test_lock_refuses_invalid_frame_missing_or_untracked_file_and_relock(repo: Path) -> None:
    write_project(repo)
    assert run_gitera(repo, "init", "exp1").code == 0
    r = run_gitera(repo, "lock")
    assert r.code == 2 and "TODO placeholder" in r.err and r.err.count("\n") == 1
    frame = repo / ".gitera/exp1/frame.yaml"
    frame.write_text(FRAME.replace("eval/metric.py]", "eval/judge.md]"))
    r = run_gitera(repo, "lock")
    assert r.code == 3 and "locked file eval/judge.md does not exist" in r.err
    (repo / "eval/judge.md").write_text("rubric\n")
    r = run_gitera(repo, "lock")
    assert r.code == 3 and "locked file eval/judge.md is not tracked by git" in r.err
    frame.write_text(FRAME)
    assert run_gitera(repo, "lock").code == 0
    r = run_gitera(repo, "lock")
    assert r.code == 3 and "is already locked" in r.err and "a new question needs a new experiment" in r.err


def test_status_reports_a_broken_lock_naming_each_file(repo: Path) -> None:
    init_and_lock(repo)
    r = run_gitera(repo, "status", "--json")
    assert r.code == 0 and json.loads(r.out)["changed_locked_files"] == []
    (repo / "eval/metric.py").write_text("def accuracy(a, b):\n    return 1.0\n")
    (repo / "eval/run.py").unlink()
    info = json.loads(run_gitera(repo, "status", "--json").out)
    assert info["changed_locked_files"] == ["eval/run.py (deleted)", "eval/metric.py"]
    assert "LOCK BROKEN" in run_gitera(repo, "status").out


def test_lock_only_on_the_experiment_branch(repo: Path) -> None:
    write_project(repo)
    assert run_gitera(repo, "init", "exp1").code == 0
    (repo / ".gitera/exp1/frame.yaml").write_text(FRAME)
    git(repo, "switch", "-q", "-c", "elsewhere")
    r = run_gitera(repo, "lock", "--tag", "exp1")
    assert r.code == 3 and "run `git switch autoexp/exp1` first" in r.err
    assert not (repo / ".gitera/exp1/lock.json").exists()


def test_version_and_help_everywhere(repo: Path) -> None:
    from gitera import __version__
    from gitera.cli import cli

    assert run_gitera(repo, "--version").out.strip() == f"gitera, version {__version__}"
    assert "Usage: gitera" in run_gitera(repo, "-h").out

    def walk(group, prefix):  # type: ignore[no-untyped-def]
        for name, cmd in group.commands.items():
            args = [*prefix, name]
            r = run_gitera(repo, *args, "-h")
            assert r.code == 0, args
            assert "Example:" in r.out, f"`gitera {' '.join(args)} -h` has no example"
            if hasattr(cmd, "commands"):
                walk(cmd, args)

    walk(cli, [])


def test_no_traceback_for_a_corrupt_lock_file(repo: Path) -> None:
    init_and_lock(repo)
    (repo / ".gitera/exp1/lock.json").write_text("{not json")
    r = run_gitera(repo, "lock")
    assert r.code == 2 and "Traceback" not in r.err and "lock.json is not valid JSON" in r.err


def test_init_with_a_starter_harness_that_runs(repo: Path, tmp_path: Path) -> None:
    import os
    import sys

    r = run_gitera(repo, "init", "exp1", "--harness", "command")
    assert r.code == 0, r.err
    frame = (repo / ".gitera/exp1/frame.yaml").read_text()
    assert 'command: "python eval/harness.py"' in frame and 'locked: ["eval/harness.py"]' in frame
    assert "eval/harness.py" in git(repo, "show", "--name-only", "--format=", "HEAD")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": "r1", "text": "I want a refund", "expected": "billing"}\n{"id": "r2", "text": "hello", "expected": "account"}\n')
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "GITERA_ROWS": str(rows), "GITERA_OUT": str(out), "GITERA_ARM": "v1", "GITERA_ARM_PARAMS": "{}",
           "GITERA_TRIAL": "0", "GITERA_SPLIT": "train", "GITERA_TAG": "exp1"}
    subprocess.run([sys.executable, "eval/harness.py"], cwd=repo, env=env, check=True)
    results = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in results] == ["r1", "r2"]
    assert results[0]["score"] in (1, True) and results[1]["score"] in (0, False)
    assert all("cost_usd" in x and "latency_ms" in x for x in results)
    r = run_gitera(repo, "init", "exp2", "--harness", "python", "--from", "HEAD")  # on exp1's branch, which has one
    assert r.code == 3 and "eval/harness.py already exists" in r.err


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("trials: 3", "trials: 1", "metric.trials"),
        ("question: Does", "question: [Does", "invalid YAML"),
        ("  v2: {change: adds", "  v3: {change: a}\n  v4: {change: b}\n  v5: {change: c}\n  v2: {change: adds", "arms"),
        ("effect: 0.05,", "effect: lots,", "threshold.effect"),
        ("question: Does v2 beat v1 on intent routing?\n", "", "question"),
    ],
)
def test_lock_on_a_malformed_frame_is_one_line_exit_2(repo: Path, old: str, new: str, field: str) -> None:
    write_project(repo)
    assert run_gitera(repo, "init", "exp1").code == 0
    assert old in FRAME
    (repo / ".gitera/exp1/frame.yaml").write_text(FRAME.replace(old, new, 1))
    r = run_gitera(repo, "lock")
    assert r.code == 2
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    assert r.err.startswith("gitera: error: .gitera/exp1/frame.yaml:") and field in r.err
    assert not (repo / ".gitera/exp1/lock.json").exists()
