"""The first hour with gitera (issue 14): what a newcomer meets, through the real CLI in real repos.

The gate line, the frame template's choices, `data.source`, `init` on an experiment branch, a
copied repository, and the restore advice of `gitera status`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gitera.core.gate import AGREED
from tests.conftest import git, run_gitera
from tests.helpers import fix_holdout_seed, synthetic_project


def gate_trailer(root: Path) -> dict[str, Any]:
    out = git(root, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)", "autoexp/syn")
    return dict(json.loads(out.strip()))


def numbers(text: str) -> list[str]:
    return re.findall(r"[+-]\d+\.\d{4}", text)


# --- the gate line ---------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "revealed"), [(1, True), (2, False)])
def test_the_gate_line_never_prints_two_equal_numbers_without_saying_why(repo: Path, seed: int, revealed: bool) -> None:
    # a sprint whose gain is real on every split: the reusable holdout either answers from the
    # climbing rows (then the "gate gain" IS the dev gain) or reveals the gate rows' own gain
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.5\n"})
    fix_holdout_seed(repo, seed=seed)
    assert run_gitera(repo, "run").code == 0
    out = ""
    for acc in ("0.6", "0.7", "0.8"):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        r = run_gitera(repo, "iterate", "-m", f"accuracy {acc}")
        assert r.code == 0, r.out + r.err
        out = r.out
    line = next(x for x in out.splitlines() if "gate after sprint 1" in x)
    gate = gate_trailer(repo)
    used = gate["holdout_queries"][0]["holdout_used"]
    assert used is revealed  # the seed's Thresholdout draws decide which answer this repo gets
    rep = gate["replication"]
    if used:
        assert AGREED not in line and f"gate gain {rep['gate_gain']:+.4f}" in line and f"(dev gain {rep['dev_gain']:+.4f})" in line
    else:
        assert rep["gate_gain"] == rep["dev_gain"]
        assert f"{AGREED} {rep['gate_gain']:+.4f} >= required {rep['required']:+.4f}" in line, line
    found = numbers(line)
    repeated = {n for n in found if found.count(n) > 1}
    assert not repeated or AGREED in line, line
    # the committed gate record says the same, so the reviewer reads what the user read
    assert line.split(" — ", 1)[1] == "; ".join(gate["reasons"])


# --- the frame template and the lock ---------------------------------------------------------


def init_filled(root: Path, *extra: str) -> Path:
    """`gitera init` with every option but the threshold, the slice loss floor and the data."""
    from tests.helpers import write_project

    write_project(root)
    r = run_gitera(root, "init", "t1", "-q", "Does v2 beat v1?", "--hypothesis", "v2 names the processor.",
                   "--arm", "v1=current rules", "--arm", "v2=adds one rule", "--baseline", "v1",
                   "--baseline-ref", "src/route.py:3", "--eval-command", "python eval/run.py", "--locked", "eval/run.py", *extra)
    assert r.code == 0, r.err
    return root / ".gitera/t1/frame.yaml"


def lock_error(root: Path) -> str:
    before = git(root, "rev-parse", "autoexp/t1")
    r = run_gitera(root, "lock")
    assert r.code == 2 and r.out == "", r.out + r.err
    assert git(root, "rev-parse", "autoexp/t1") == before and not (root / ".gitera/t1/lock.json").exists()
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    return r.err


def line_of(frame: Path, text: str) -> int:
    return next(i for i, line in enumerate(frame.read_text().splitlines(), 1) if text in line)


def test_the_template_leaves_threshold_and_loss_floor_to_the_user_and_lock_names_each(repo: Path) -> None:
    frame = init_filled(repo)
    text = frame.read_text()
    assert "effect: 0.05" not in text and "slice_loss_floor: 0.02" not in text  # no default a lock would accept
    err = lock_error(repo)
    assert f".gitera/t1/frame.yaml:{line_of(frame, 'effect:')}: threshold.effect: still holds the template's TODO placeholder" in err, err
    frame.write_text(re.sub(r"effect: .*", "effect: 0.04", text, count=1))
    err = lock_error(repo)
    assert f".gitera/t1/frame.yaml:{line_of(frame, 'slice_loss_floor:')}: threshold.slice_loss_floor: still holds" in err, err
    frame.write_text(frame.read_text().replace(re.search(r"slice_loss_floor: .*", text)[0], "slice_loss_floor: 0.03"))  # type: ignore[index]
    # every TODO filled, but no data named: the split would read whatever file someone names later
    err = lock_error(repo)
    assert f".gitera/t1/frame.yaml:{line_of(frame, 'source:')}: data.source: is empty (null); name the file of production rows" in err, err
    frame.write_text(frame.read_text().replace("source: null", 'source: "data/rows.csv"'))
    r = run_gitera(repo, "lock")
    assert r.code == 0, r.err
    assert (repo / ".gitera/t1/lock.json").exists()


def test_options_fill_the_threshold_and_the_data_so_the_template_locks_at_once(repo: Path) -> None:
    init_filled(repo, "--threshold", "0.05", "--slice-loss-floor", "0.02", "--data", "data/rows.csv")
    r = run_gitera(repo, "lock")
    assert r.code == 0, r.err


# --- init on an experiment branch, and a copied repository -------------------------------------


def test_init_on_an_experiment_branch_starts_from_the_default_branch_and_says_so(repo: Path) -> None:
    synthetic_project(repo)  # on autoexp/syn, locked and split
    (repo / "notes.txt").write_text("my uncommitted notes\n")
    r = run_gitera(repo, "init", "next")
    assert r.code == 0, r.err
    assert "warning: you are on experiment branch autoexp/syn: the new experiment starts from main instead" in r.err
    assert "--from HEAD" in r.err and "from main" in r.out
    assert git(repo, "rev-parse", "autoexp/next~1") == git(repo, "rev-parse", "main")
    tree = git(repo, "ls-tree", "-r", "--name-only", "autoexp/next")
    assert ".gitera/syn/lock.json" not in tree and ".gitera/next/frame.yaml" in tree  # syn's lock and split stay on syn
    assert (repo / "notes.txt").read_text() == "my uncommitted notes\n"  # carried over, not lost
    # told otherwise, it builds on the experiment branch
    assert run_gitera(repo, "init", "followup", "--from", "autoexp/syn").code == 0
    assert git(repo, "rev-parse", "autoexp/followup~1") == git(repo, "rev-parse", "autoexp/syn")
    r = run_gitera(repo, "init", "bad", "--from", "no-such-branch")
    assert r.code == 2 and "--from no-such-branch: no such branch, tag or commit." in r.err
    assert "autoexp/bad" not in git(repo, "branch", "--list")


def test_init_on_an_experiment_branch_of_a_clone_starts_from_origin_s_default_branch(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "switch", "-q", "-c", "autoexp/old")
    git(clone, "commit", "-q", "--allow-empty", "-m", "old experiment work")
    git(clone, "branch", "-q", "-D", "main")  # only origin/main is left
    r = run_gitera(clone, "init", "fresh")
    assert r.code == 0 and "starts from origin/main instead" in r.err, r.err
    assert git(clone, "rev-parse", "autoexp/fresh~1") == git(clone, "rev-parse", "origin/main")
    assert git(clone, "config", "--get", "branch.autoexp/fresh.merge", check=False) == ""  # never set to push to main


def test_init_on_an_experiment_branch_with_no_default_branch_asks_where_to_start(repo: Path) -> None:
    git(repo, "branch", "-q", "-m", "main", "autoexp/only")
    r = run_gitera(repo, "init", "x")
    assert r.code == 2 and "say where the new experiment starts with --from REF" in r.err
    assert run_gitera(repo, "init", "x", "--from", "HEAD").code == 0


def test_a_copied_repository_rebuilds_its_scoring_worktrees_and_never_touches_the_original(repo: Path, tmp_path: Path) -> None:
    import shutil
    import subprocess

    synthetic_project(repo)  # the pilot made the scoring checkouts under .git/gitera/worktrees/
    slot = repo / ".git/gitera/worktrees/arm-a"
    # written by gitera from git's objects (issue 12): plain folders, not `git worktree`s naming the repository's path
    assert slot.is_dir() and not (slot / ".git").exists()
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(repo), str(copy)], check=True)
    (slot / "marker.txt").write_text("the original's scratch file\n")
    r = run_gitera(copy, "run")
    assert r.code == 0, r.out + r.err
    assert (slot / "marker.txt").exists()  # the original's slot was not rewritten or cleaned
    assert not (copy / ".git/gitera/worktrees/arm-a/marker.txt").exists()
    shutil.rmtree(repo)  # the original gone: the copy scores on
    r = run_gitera(copy, "run", "--no-cache")
    assert r.code == 0, r.out + r.err
    assert "Run 2 recorded" in r.out


# --- status: restore advice and the next step ------------------------------------------------


def follow(root: Path, commands: list[str]) -> None:
    """Run the advised commands exactly as printed, as a user pasting them would."""
    import subprocess

    for cmd in commands:
        proc = subprocess.run(cmd, shell=True, cwd=root, capture_output=True, text=True)
        assert proc.returncode == 0, (cmd, proc.stderr)


def advice(root: Path) -> tuple[str, list[str]]:
    text = run_gitera(root, "status").out
    doc = json.loads(run_gitera(root, "status", "--json").out)
    assert "LOCK BROKEN" in text and "iterate" not in doc["next"] and "iterate" not in text.split("next:")[-1]
    for cmd in doc["restore"]:
        assert f"    {cmd}" in text  # the text shows the same commands as --json
    return text, doc["restore"]


@pytest.mark.parametrize("how", ["unstaged", "staged", "committed", "deleted and staged"])
def test_status_restore_advice_puts_the_locked_file_back_whatever_state_the_change_is_in(repo: Path, how: str) -> None:
    from tests.helpers import init_and_lock

    init_and_lock(repo)
    locked = repo / "eval/run.py"
    original = locked.read_bytes()
    if how == "deleted and staged":
        git(repo, "rm", "-q", "eval/run.py")
    else:
        locked.write_text("print('a better score')\n")
    if how in ("staged", "committed"):
        git(repo, "add", "eval/run.py")
    if how == "committed":
        git(repo, "commit", "-q", "--no-verify", "-m", "tweak the harness")
    text, commands = advice(repo)
    assert ("git checkout -- " not in text) and len(commands) == 1
    expected = {"unstaged": "git restore -- eval/run.py", "staged": "git restore --staged --worktree -- eval/run.py",
                "deleted and staged": "git restore --staged --worktree -- eval/run.py"}
    if how == "committed":
        lock_commit = git(repo, "log", "-1", "--format=%h", "--", ".gitera/exp1/lock.json").strip()
        assert commands[0].startswith(f"git restore --source={lock_commit} --staged --worktree -- eval/run.py && git commit")
        assert "`gitera verify` names it" in text
    else:
        assert commands == [expected[how]]
    follow(repo, commands)
    assert locked.read_bytes() == original
    assert git(repo, "status", "--porcelain", "--", "eval/run.py") == ""  # nothing staged or modified left behind
    after = run_gitera(repo, "status")
    assert "locked files intact" in after.out and "next: `gitera split`" in after.out, after.out


def test_status_never_suggests_iterate_once_the_loop_stopped(repo: Path) -> None:
    synthetic_project(repo, max_iterations=1)
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    r = run_gitera(repo, "iterate", "-m", "the only attempt the budget allows")
    assert "the loop stops" in r.out, r.out + r.err
    doc = json.loads(run_gitera(repo, "status", "--json").out)
    assert doc["loop"]["status"] != "active"
    text = run_gitera(repo, "status").out
    nxt = text.split("next:")[-1]
    assert "iterate" not in nxt and "`gitera verdict`" in nxt and doc["next"].startswith("`gitera verdict`"), text


def test_a_command_refused_for_a_broken_lock_gives_the_same_working_restore_command(repo: Path) -> None:
    from tests.helpers import init_and_lock

    init_and_lock(repo)
    (repo / "eval/run.py").write_text("print('a better score')\n")
    git(repo, "add", "eval/run.py")
    r = run_gitera(repo, "split")
    assert r.code == 3 and "locked files of experiment exp1 changed since the lock: eval/run.py" in r.err
    assert "`git checkout -- <file>`" not in r.err
    command = re.findall(r"`(git restore[^`]+)`", r.err)
    assert command == ["git restore --staged --worktree -- eval/run.py"], r.err
    follow(repo, command)
    r = run_gitera(repo, "split")
    assert "changed since the lock" not in r.err  # on to the next problem (this project has no data file)


def test_init_from_the_default_branch_reads_its_files_from_there_and_undoes_a_refusal(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "init", "--agent").code == 0  # syn's section in AGENTS.md, on autoexp/syn only
    assert "`syn`" in (repo / "AGENTS.md").read_text()
    r = run_gitera(repo, "init", "next", "--agent")
    assert r.code == 0, r.err
    agents = git(repo, "show", "autoexp/next:AGENTS.md")
    assert "`next`" in agents and "`syn`" not in agents, agents  # main's (absent) AGENTS.md, not syn's
    # a refusal after the switch puts the user back where they were, with no new branch
    git(repo, "switch", "-q", "autoexp/syn")
    (repo / "eval").mkdir(exist_ok=True)
    git(repo, "switch", "-q", "main")
    (repo / "eval/harness.py").write_text("print('mine')\n")
    git(repo, "add", "eval/harness.py")
    git(repo, "commit", "-q", "-m", "a harness of my own on main")
    git(repo, "switch", "-q", "autoexp/syn")
    r = run_gitera(repo, "init", "third", "--harness", "command")
    assert r.code == 3 and "eval/harness.py already exists" in r.err, r.err
    assert git(repo, "branch", "--show-current").strip() == "autoexp/syn"
    assert "autoexp/third" not in git(repo, "branch", "--list")
