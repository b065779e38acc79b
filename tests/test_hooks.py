"""The hooks through the real pre-commit framework and through plain git hooks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, run_gitera
from tests.helpers import banking_project, init_and_lock, read_test_rows, synthetic_project

SOURCE = Path(__file__).resolve().parents[1]


def commit(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "commit", *args], cwd=repo, capture_output=True, text=True)


def hooks_repo(tmp_path: Path) -> tuple[Path, str]:
    """A git repo holding our real .pre-commit-hooks.yaml, as pre-commit fetches it."""
    root = tmp_path / "gitera-hooks"
    root.mkdir()
    shutil.copy(SOURCE / ".pre-commit-hooks.yaml", root / ".pre-commit-hooks.yaml")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "hooks")
    return root, git(root, "rev-parse", "HEAD").strip()


def use_precommit(repo: Path, source: Path, rev: str, hooks: str, *hook_types: str) -> None:
    """Commit a .pre-commit-config.yaml using ``hooks`` (YAML lines) from ``source`` at ``rev``
    and install the git hooks of ``hook_types`` (default: pre-commit)."""
    (repo / ".pre-commit-config.yaml").write_text(f"repos:\n- repo: {source}\n  rev: {rev}\n  hooks:\n{hooks}")
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-q", "-m", "use gitera hooks")
    types = [arg for t in (hook_types or ("pre-commit",)) for arg in ("-t", t)]
    proc = subprocess.run(["pre-commit", "install", *types], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def precommit_repo(repo: Path, tmp_path: Path) -> Path:
    init_and_lock(repo)
    hooks, rev = hooks_repo(tmp_path)
    use_precommit(repo, hooks, rev, "  - id: gitera-locked-system\n  - id: gitera-trailers-system\n  - id: gitera-test-leak-system\n",
                  "pre-commit", "commit-msg", "pre-push")
    return repo


def test_the_primary_hook_ids_run_from_our_manifest(repo: Path, tmp_path: Path) -> None:
    """gitera-locked / gitera-trailers themselves (entry, stages, pass_filenames from the manifest),
    with only the language overridden to the installed gitera so the test installs nothing."""
    init_and_lock(repo)
    hooks, rev = hooks_repo(tmp_path)
    use_precommit(repo, hooks, rev, "  - id: gitera-locked\n    language: system\n  - id: gitera-trailers\n    language: system\n",
                  "pre-commit", "commit-msg")
    (repo / "eval/metric.py").write_text("def accuracy(a, b):\n    return 1.0\n")
    git(repo, "add", "eval/metric.py")
    proc = commit(repo, "-m", "tweak")
    assert proc.returncode != 0 and "eval/metric.py is locked by experiment exp1" in proc.stdout + proc.stderr
    assert "- hook id: gitera-locked" in proc.stdout + proc.stderr


def test_manifest_is_valid() -> None:
    proc = subprocess.run(["pre-commit", "validate-manifest", str(SOURCE / ".pre-commit-hooks.yaml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_precommit_refuses_modifying_a_locked_file(precommit_repo: Path) -> None:
    repo = precommit_repo
    (repo / "eval/metric.py").write_text("def accuracy(a, b):\n    return 1.0  # always right\n")
    git(repo, "add", "eval/metric.py")
    proc = commit(repo, "-m", "tweak the metric")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "eval/metric.py is locked by experiment exp1 and this commit has it modified" in output
    assert "a new question needs a new experiment" in output
    assert git(repo, "log", "-1", "--format=%s").strip() == "use gitera hooks"


def test_precommit_refuses_deleting_and_renaming(precommit_repo: Path) -> None:
    repo = precommit_repo
    git(repo, "rm", "-q", "eval/run.py")
    proc = commit(repo, "-m", "drop the harness")
    assert proc.returncode != 0 and "eval/run.py is locked by experiment exp1 and this commit has it deleted" in proc.stdout + proc.stderr
    git(repo, "reset", "-q", "--hard")
    git(repo, "mv", "eval/run.py", "eval/run2.py")
    proc = commit(repo, "-m", "rename the harness")
    assert proc.returncode != 0 and "eval/run.py is locked by experiment exp1 and this commit has it renamed to eval/run2.py" in proc.stdout + proc.stderr
    git(repo, "reset", "-q", "--hard")
    git(repo, "rm", "-q", ".gitera/exp1/lock.json")
    proc = commit(repo, "-m", "unlock")
    assert proc.returncode != 0 and ".gitera/exp1/lock.json is locked by experiment exp1" in proc.stdout + proc.stderr


def test_precommit_lets_other_files_commit(precommit_repo: Path) -> None:
    repo = precommit_repo
    (repo / "rules_v2.txt").write_text("fee -> card_payment_fee_charged\nprocessor -> transfer\n")
    (repo / "notes.md").write_text("ideas\n")
    git(repo, "add", "rules_v2.txt", "notes.md")
    proc = commit(repo, "-m", "try a processor rule")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # restoring a locked file to its locked content is fine too
    (repo / "eval/run.py").write_text("print('scoring')\n")
    git(repo, "add", "eval/run.py")
    assert commit(repo, "--allow-empty", "-m", "no-op").returncode == 0


def test_commit_msg_hook_refuses_malformed_gitera_trailer(precommit_repo: Path) -> None:
    repo = precommit_repo
    (repo / "notes.md").write_text("x\n")
    git(repo, "add", "notes.md")
    proc = commit(repo, "-m", "note\n\nGitera-Result: {score: oops}")
    assert proc.returncode != 0
    assert "commit message line 3: Gitera-Result is not valid JSON" in proc.stdout + proc.stderr
    proc = commit(repo, "-m", 'note\n\nGitera-Tag: exp1\nGitera-Result: {"score": 1}')
    assert proc.returncode == 0, proc.stdout


def pushed(repo: Path, tmp_path: Path) -> Path:
    """The experiment branch pushed once to a bare remote `origin` (the pre-push hook then sees only new commits)."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    push = subprocess.run(["git", "push", "-q", "origin", "autoexp/exp1"], cwd=repo, capture_output=True, text=True)
    assert push.returncode == 0, push.stdout + push.stderr
    return repo


def test_pre_push_catches_a_no_verify_commit(precommit_repo: Path, tmp_path: Path) -> None:
    repo = pushed(precommit_repo, tmp_path)
    (repo / "eval/metric.py").write_text("def accuracy(a, b):\n    return 1.0\n")
    git(repo, "commit", "-q", "--no-verify", "-am", "sneak a metric change past the hook")
    push = subprocess.run(["git", "push", "origin", "autoexp/exp1"], cwd=repo, capture_output=True, text=True)
    assert push.returncode != 0
    assert "has eval/metric.py modified, but it is locked by experiment exp1" in push.stdout + push.stderr


def test_pre_push_catches_a_change_reverted_on_a_merged_side_branch(precommit_repo: Path, tmp_path: Path) -> None:
    # git's history simplification follows one parent of a merge that leaves the path as it was,
    # so without --full-history the change-and-revert on the side branch went out unnoticed
    repo = pushed(precommit_repo, tmp_path)
    original = (repo / "eval/metric.py").read_text()
    side_branch_changing(repo, "eval/metric.py")
    git(repo, "switch", "-q", "side")
    (repo / "eval/metric.py").write_text(original)
    git(repo, "commit", "-q", "--no-verify", "-am", "put it back")
    changed = git(repo, "rev-parse", "side~1").strip()
    git(repo, "switch", "-q", "autoexp/exp1")
    git(repo, "merge", "-q", "--no-ff", "--no-verify", "--no-edit", "side")
    push = subprocess.run(["git", "push", "origin", "autoexp/exp1"], cwd=repo, capture_output=True, text=True)
    assert push.returncode != 0
    assert f"commit {changed[:10]} has eval/metric.py modified, but it is locked by experiment exp1" in push.stdout + push.stderr


def side_branch_changing(repo: Path, path: str, branch: str = "side") -> None:
    """A branch off HEAD whose commit (made past the hooks) changes ``path``; HEAD moves on too,
    so merging ``branch`` back creates a merge commit."""
    start = git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    git(repo, "switch", "-q", "-c", branch)
    (repo / path).write_text("print('changed on a side branch')\n")
    git(repo, "commit", "-q", "--no-verify", "-am", f"change {path}")
    git(repo, "switch", "-q", start)
    (repo / "notes.md").write_text("meanwhile\n")
    git(repo, "add", "notes.md")
    git(repo, "commit", "-q", "--no-verify", "-m", "notes")


def merge(repo: Path, branch: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "merge", "--no-edit", branch], cwd=repo, capture_output=True, text=True)


def test_precommit_refuses_a_merge_bringing_a_changed_locked_file(repo: Path, tmp_path: Path) -> None:
    init_and_lock(repo)
    hooks, rev = hooks_repo(tmp_path)
    use_precommit(repo, hooks, rev, "  - id: gitera-locked-system\n", "pre-commit", "pre-merge-commit")
    side_branch_changing(repo, "eval/run.py")
    before = git(repo, "rev-parse", "HEAD")
    proc = merge(repo, "side")
    assert proc.returncode != 0
    assert "eval/run.py is locked by experiment exp1 and this commit has it modified" in proc.stdout + proc.stderr
    assert git(repo, "rev-parse", "HEAD") == before  # no merge commit was made
    # concluding the stopped merge with `git commit` runs the pre-commit stage: refused as well
    proc = commit(repo, "--no-edit")
    assert proc.returncode != 0 and "eval/run.py is locked by experiment exp1" in proc.stdout + proc.stderr
    assert git(repo, "rev-parse", "HEAD") == before


def test_merge_into_a_branch_without_the_lock_is_refused_too(repo: Path) -> None:
    """On main (no lock), merging the experiment branch while main changed a locked file would
    make a tree whose lock is broken: the lock comes from the merged side."""
    init_and_lock(repo)
    assert run_gitera(repo, "hooks", "install").code == 0
    git(repo, "switch", "-q", "main")
    (repo / "eval/run.py").write_text("print('main moved on')\n")
    git(repo, "commit", "-q", "-am", "main changes the harness")  # no lock on main: allowed
    proc = merge(repo, "autoexp/exp1")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "eval/run.py is locked by experiment exp1" in proc.stderr
    git(repo, "merge", "--abort")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    (repo / "other.txt").write_text("unrelated\n")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-q", "-m", "unrelated work on main")
    proc = merge(repo, "autoexp/exp1")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plain_git_hooks_install_and_refuse(repo: Path) -> None:
    init_and_lock(repo)
    r = run_gitera(repo, "hooks", "install")
    assert r.code == 0, r.err
    for name in ("pre-commit", "pre-merge-commit", "commit-msg", "pre-push"):
        installed = repo / ".git/hooks" / name
        assert installed.read_bytes() == (SOURCE / "hooks" / name).read_bytes()
    (repo / "eval/run.py").write_text("print('changed')\n")
    git(repo, "add", "eval/run.py")
    proc = commit(repo, "-m", "change harness")
    assert proc.returncode != 0 and "eval/run.py is locked by experiment exp1" in proc.stderr
    git(repo, "reset", "-q", "--hard")
    side_branch_changing(repo, "eval/run.py")
    proc = merge(repo, "side")
    assert proc.returncode != 0 and "eval/run.py is locked by experiment exp1 and this commit has it modified" in proc.stderr


def test_hooks_install_keeps_a_foreign_hook(repo: Path) -> None:
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho mine\n")
    r = run_gitera(repo, "hooks", "install")
    assert r.code == 3 and "already exists and is not gitera's" in r.err
    assert run_gitera(repo, "hooks", "install", "--force").code == 0
    assert (repo / ".git/hooks/pre-commit.orig").read_text() == "#!/bin/sh\necho mine\n"


def test_package_hook_scripts_match_the_top_level_hooks() -> None:
    for script in (SOURCE / "hooks").iterdir():
        assert script.read_bytes() == (SOURCE / "gitera/hook_scripts" / script.name).read_bytes()


def test_a_hand_written_verdict_does_not_unlock(precommit_repo: Path) -> None:
    """Only a verdict that really ran ends the lock: a committed verdict.json, a lightweight tag, or
    an annotated tag on a commit that is not the verdict's leave the locked files guarded."""
    repo = precommit_repo
    (repo / ".gitera/exp1/verdict.json").write_text('{"tag": "exp1", "seal": {"seal_id": "x"}}\n')
    git(repo, "add", ".gitera/exp1/verdict.json")
    assert commit(repo, "-m", "verdict, honest").returncode == 0
    forgeries = (("tag", "gitera/exp1/verdict"), ("tag", "-f", "-a", "-m", "verdict", "gitera/exp1/verdict"))
    for forge in ((), *forgeries):
        if forge:
            git(repo, *forge)
        (repo / "eval/run.py").write_text("print('v2 of the harness')\n")
        git(repo, "add", "eval/run.py")
        proc = commit(repo, "-m", "new harness")
        assert proc.returncode != 0, forge
        assert "eval/run.py is locked by experiment exp1 and this commit has it modified" in proc.stdout + proc.stderr
        git(repo, "reset", "-q", "--hard")


def test_a_real_verdict_unlocks_and_a_stray_verdict_file_blocks_the_commands(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    (repo / ".gitera/syn/verdict.json").write_text('{"tag": "syn"}\n')
    git(repo, "add", ".gitera/syn/verdict.json")
    git(repo, "commit", "-q", "-m", "a verdict.json nobody ran")
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "exists but no verdict ran on autoexp/syn" in r.err and "remove the file" in r.err, r.err
    assert json.loads(run_gitera(repo, "status", "--json").out)["stage"] != "concluded"
    git(repo, "rm", "-q", ".gitera/syn/verdict.json")
    git(repo, "commit", "-q", "-m", "remove it")
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.err
    (repo / "harness.py").write_text("print('the next question')\n")
    git(repo, "add", "harness.py")
    r = run_gitera(repo, "hook", "locked")
    assert r.code == 0, r.err
    # deleting verdict.json reopens nothing: the verdict's tag still names its commit
    git(repo, "rm", "-q", ".gitera/syn/verdict.json")
    r = run_gitera(repo, "hook", "locked")
    assert r.code == 0, r.err
    assert json.loads(run_gitera(repo, "status", "--json").out)["stage"] == "concluded"


def test_language_python_hook_installs_gitera_and_refuses(repo: Path) -> None:
    """The plain `gitera-locked` id as users get it: pre-commit builds its own environment with
    gitera from this repository (about 15 s here) and the hook refuses a locked-file commit."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=SOURCE, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the source tree is not a git checkout")
    init_and_lock(repo)
    use_precommit(repo, SOURCE, head.stdout.strip(), "  - id: gitera-locked\n")
    proc = subprocess.run(["pre-commit", "install-hooks"], cwd=repo, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (repo / "eval/run.py").write_text("print('changed')\n")
    git(repo, "add", "eval/run.py")
    proc = commit(repo, "-m", "change the harness")
    assert proc.returncode != 0 and "eval/run.py is locked by experiment exp1" in proc.stdout + proc.stderr


@pytest.fixture
def split_repo(repo: Path) -> Path:
    banking_project(repo)
    assert run_gitera(repo, "split").code == 0
    return repo


def sealed_text(repo: Path) -> str:
    """A test row the leak index guards: long enough, and not also a train/dev/gate text."""
    split = repo / ".gitera/banking/split"
    open_texts = {json.loads(line)["text"] for part in ("train", "dev") for line in (split / f"{part}.jsonl").read_text().splitlines()}
    return next(str(r["text"]) for r in read_test_rows(repo) if len(str(r["text"])) >= 30 and r["text"] not in open_texts)


LEAK = "contains a row of experiment banking's sealed test set"


def test_leak_hook_scans_what_is_staged_not_the_work_tree(split_repo: Path) -> None:
    repo = split_repo
    assert run_gitera(repo, "hooks", "install").code == 0
    row = sealed_text(repo)
    notes = repo / "notes.md"
    notes.write_text(f"a hard one:\n{row}\n")
    git(repo, "add", "notes.md")
    notes.write_text("nothing to see\n")  # gone from the work tree, still staged
    proc = commit(repo, "-m", "notes")
    assert proc.returncode != 0 and f"notes.md:2 {LEAK}" in proc.stderr
    assert row not in proc.stderr
    git(repo, "add", "notes.md")
    notes.write_text(f"a hard one:\n{row}\n")  # only in the work tree: not committed, not refused
    proc = commit(repo, "-m", "notes")
    assert proc.returncode == 0, proc.stderr
    git(repo, "checkout", "--", "notes.md")


def test_leak_hook_reads_the_committed_index_and_guards_every_branch(split_repo: Path) -> None:
    repo = split_repo
    assert run_gitera(repo, "hooks", "install").code == 0
    row = sealed_text(repo)
    (repo / ".gitera/banking/split/leak.json").unlink()  # removing the index from the work tree switches nothing off
    (repo / "notes.md").write_text(row + "\n")
    git(repo, "add", "notes.md")
    proc = commit(repo, "-m", "notes")
    assert proc.returncode != 0 and f"notes.md:1 {LEAK}" in proc.stderr
    git(repo, "reset", "-q", "--hard")
    git(repo, "switch", "-q", "main")  # a branch that never had the experiment
    (repo / "notes.md").write_text(row + "\n")
    git(repo, "add", "notes.md")
    proc = commit(repo, "-m", "notes on main")
    assert proc.returncode != 0 and f"notes.md:1 {LEAK}" in proc.stderr


def test_leak_hook_scans_the_split_folder(split_repo: Path, tmp_path: Path) -> None:
    """A test row copied into the open split files, or into a new file there, is refused
    (through the pre-commit framework, with its file-type filter)."""
    repo = split_repo
    hooks, rev = hooks_repo(tmp_path)
    use_precommit(repo, hooks, rev, "  - id: gitera-test-leak-system\n")
    row = sealed_text(repo)
    dev = repo / ".gitera/banking/split/dev.jsonl"
    lines = dev.read_text().count("\n")
    dev.write_text(dev.read_text() + json.dumps({"id": "extra-1", "text": row, "intent": "card_arrival"}) + "\n")
    git(repo, "add", str(dev))
    proc = commit(repo, "-m", "more dev rows")
    assert proc.returncode != 0 and f".gitera/banking/split/dev.jsonl:{lines + 1} {LEAK}" in proc.stdout + proc.stderr
    git(repo, "reset", "-q", "--hard")
    (repo / ".gitera/banking/split/notes.md").write_text(row + "\n")
    git(repo, "add", ".gitera/banking/split/notes.md")
    proc = commit(repo, "-m", "notes next to the split")
    assert proc.returncode != 0 and f".gitera/banking/split/notes.md:1 {LEAK}" in proc.stdout + proc.stderr


def test_merging_the_experiment_branch_does_not_flag_its_own_split_files(split_repo: Path) -> None:
    """Train and dev queries may quote a long test query (2 do in this split); concluding a
    conflicted merge of the experiment branch into main commits those files unchanged: accepted."""
    repo = split_repo
    assert run_gitera(repo, "hooks", "install").code == 0
    (repo / "README.md").write_text("the experiment's view\n")
    git(repo, "commit", "-q", "-am", "readme on the experiment branch")
    git(repo, "switch", "-q", "main")
    (repo / "README.md").write_text("main's view\n")
    git(repo, "commit", "-q", "-am", "readme on main")
    proc = merge(repo, "autoexp/banking")
    assert proc.returncode != 0 and "CONFLICT" in proc.stdout
    git(repo, "add", "README.md")
    proc = commit(repo, "--no-edit")
    assert proc.returncode == 0, proc.stderr
    assert (repo / ".gitera/banking/split/train.jsonl").exists()
