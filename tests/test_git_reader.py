"""The long-lived `git cat-file --batch-command` behind Repo.rev / show / ls_tree / ls_modes:
it must answer exactly what the one-shot git commands answer, and never a stale answer when
another process moves a branch or writes objects while a command runs."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.adapters.git import GitFailed
from tests.conftest import git
from tests.test_git_trees import POOL, START, make_repo


def _ls_tree(root: Path, rev: str, paths: list[str]) -> dict[str, tuple[str, str]]:
    out = git(root, "ls-tree", "-r", "-z", "--full-tree", rev, "--", *paths)
    result = {}
    for entry in out.split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            mode, _, oid = meta.split()
            result[path] = (mode, oid)
    return result


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([*POOL, "link", "b", "b/d", "nope", "b/nope", "./a", "b//c.txt", "a/", "run.sh"]), min_size=1, max_size=5))
def test_names_modes_and_ids_match_git_ls_tree(tmp_path_factory: object, paths: list[str]) -> None:
    root = tmp_path_factory.mktemp("reader")  # type: ignore[attr-defined]
    repo = make_repo(root)
    want = _ls_tree(root, "HEAD", paths)
    assert repo.tree_entries("HEAD", paths) == want
    assert repo.ls_modes("HEAD", paths) == {p: m for p, (m, _) in want.items()}
    assert repo.ls_tree("HEAD", paths) == {p: o for p, (_, o) in want.items()}
    for path in paths:
        shown = subprocess.run(["git", "cat-file", "blob", f"HEAD:{path}"], cwd=root, capture_output=True, check=False)
        assert repo.show("HEAD", path) == (shown.stdout if shown.returncode == 0 else None)


def test_a_branch_moved_by_another_process_is_seen_at_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = repo.rev("refs/heads/main")
    assert first is not None and repo.rev("refs/heads/nope") is None
    (tmp_path / "a").write_text("changed by someone else\n")
    git(tmp_path, "commit", "-q", "-am", "elsewhere")  # a separate git process: new objects and a moved ref
    second = git(tmp_path, "rev-parse", "HEAD").strip()
    assert repo.rev("refs/heads/main") == second != first
    assert repo.show("refs/heads/main", "a") == b"changed by someone else\n"
    git(tmp_path, "pack-refs", "--all")  # now a packed ref, then moved again
    git(tmp_path, "update-ref", "refs/heads/main", first)
    assert repo.rev("refs/heads/main") == first
    git(tmp_path, "gc", "-q")  # objects moved into a pack under the reader's feet
    assert repo.show(second, "a") == b"changed by someone else\n"


def test_the_index_is_never_read_from_the_long_lived_process(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    assert repo.show("", "a") == START["a"].encode()
    (tmp_path / "a").write_text("staged\n")
    git(tmp_path, "add", "a")
    assert repo.show("", "a") == b"staged\n"  # it caches the index it read once; gitera asks a fresh git


def test_a_killed_reader_is_replaced(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    head = repo.rev("HEAD")
    proc = repo._reader._proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert repo.rev("HEAD") == head
    assert repo._reader._proc is not proc and repo._reader._proc is not None


def test_the_reader_ends_with_its_repo(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.rev("HEAD")
    proc = repo._reader._proc
    assert proc is not None and proc.poll() is None
    del repo
    assert proc.wait(timeout=5) == 0  # closed and waited for, not left to the interpreter's exit


def test_a_revision_that_does_not_resolve_fails_as_ls_tree_does(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for call in (repo.ls_tree, repo.ls_modes, repo.tree_entries):
        with pytest.raises(GitFailed):
            call("refs/heads/nope", ["a"])


def test_a_commit_listed_once_per_command_is_not_changed_by_its_callers(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    head = git(tmp_path, "rev-parse", "HEAD").strip()
    first = repo.tree_entries(head)
    first["a"] = ("100644", "0" * 40)  # a caller editing what it got
    assert repo.tree_entries(head) == _ls_tree(tmp_path, head, [])


def test_an_interrupt_mid_reply_never_leaves_a_half_read_answer_for_the_next_question(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    head = repo.rev("HEAD")
    proc = repo._reader._proc
    assert proc is not None and proc.stdout is not None
    real = proc.stdout.read

    def interrupted(n: int = -1) -> bytes:  # Ctrl-C arrives after the header, before the body is read
        raise KeyboardInterrupt

    monkeypatch.setattr(proc.stdout, "read", interrupted)
    with pytest.raises(KeyboardInterrupt):
        repo.show("HEAD", "a")
    monkeypatch.setattr(proc.stdout, "read", real)
    assert repo.rev("HEAD") == head and repo.show("HEAD", "b.txt") == b"b\n"  # a fresh process, not the stale body
    assert repo._reader._proc is not proc
