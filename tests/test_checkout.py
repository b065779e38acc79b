"""The scoring checkouts (gitera.adapters.checkout): a commit's tree written by gitera, exactly, with no
git filter, and kept exact across reuse — files changed or planted in a slot do not survive."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gitera.adapters.checkout import materialize
from gitera.adapters.git import Repo
from gitera.core.errors import RefusedError
from tests.conftest import git

FILES = {"eval/run.py": "print('score')\n", "eval/lib/helpers.py": "X = 1\n", "run.sh": "#!/bin/sh\necho hi\n", "é t.txt": "unicode name\n",
         "data.bin": "\x00\x01 bytes\r\n"}


def make(tmp: Path) -> tuple[Repo, str]:
    root = tmp / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for path, text in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, newline="")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("eval/run.py", root / "link")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "tree")
    return Repo.find(root), git(root, "rev-parse", "HEAD").strip()


def snapshot(path: Path) -> dict[str, tuple[str, bytes]]:
    out = {}
    for here, dirs, files in os.walk(path):
        for name in [*files, *(d for d in dirs if (Path(here) / d).is_symlink())]:
            full = Path(here) / name
            rel = str(full.relative_to(path))
            if full.is_symlink():
                out[rel] = ("link", os.readlink(full).encode())
            else:
                out[rel] = ("x" if full.stat().st_mode & stat.S_IXUSR else "f", full.read_bytes())
    return out


def test_the_checkout_is_the_tree_byte_for_byte_with_modes_and_links(tmp_path: Path) -> None:
    r, commit = make(tmp_path)
    path, entries = materialize(r, commit, "arm-a")
    assert snapshot(path) == {**{p: ("x" if p == "run.sh" else "f", t.encode()) for p, t in FILES.items()},
                              "link": ("link", b"eval/run.py")}
    assert set(entries) == {*FILES, "link"} and entries["run.sh"][0] == "100755" and entries["link"][0] == "120000"


def test_no_filter_of_the_repository_runs_when_a_tree_is_written(tmp_path: Path) -> None:
    r, _ = make(tmp_path)
    repo = r.root
    (repo / "eval/new.py").write_text("Y = 2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    commit = git(repo, "rev-parse", "HEAD").strip()
    marker = repo.parent / "smudge-ran"  # configured once the tree is committed: a checkout-time attack
    git(repo, "config", "filter.evil.smudge", f"touch {marker}; echo evil")
    git(repo, "config", "filter.evil.clean", "cat")
    (repo / ".git/info/attributes").write_text("* filter=evil\n* eol=crlf\n")
    path, _ = materialize(r, commit, "arm-a")
    assert (path / "eval/new.py").read_bytes() == b"Y = 2\n" and (path / "data.bin").read_bytes() == b"\x00\x01 bytes\r\n"
    assert not marker.exists()


def test_a_reused_slot_loses_planted_and_edited_files_and_verify_catches_a_stat_preserving_edit(tmp_path: Path) -> None:
    r, commit = make(tmp_path)
    path, _ = materialize(r, commit, "arm-a")
    before = snapshot(path)
    (path / "eval/json.py").write_text("planted\n")  # a planted module
    (path / "stray").mkdir()
    (path / "eval/lib/helpers.py").unlink()
    (path / "eval/lib/helpers.py").mkdir()  # a folder where a file belongs
    (path / "run.sh").chmod(0o644)  # the executable bit dropped
    os.unlink(path / "link")
    (path / "link").write_text("a file where a link belongs\n")
    assert snapshot(materialize(r, commit, "arm-a")[0]) == before
    target = path / "eval/run.py"
    st = target.stat()
    target.write_text("print('SCORE')\n")  # same size …
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # … and mtime: the stat check cannot see it
    assert materialize(r, commit, "arm-a")[0] == path and target.read_text() == "print('SCORE')\n"
    materialize(r, commit, "arm-a", verify=True)  # the gate and the verdict re-read every file
    assert snapshot(path) == before


def test_a_slot_left_by_git_worktree_is_replaced(tmp_path: Path) -> None:
    r, commit = make(tmp_path)
    repo = r.root
    slot = repo / ".git/gitera/worktrees/arm-a"
    slot.parent.mkdir(parents=True)
    git(repo, "worktree", "add", "-q", "--detach", str(slot), commit)
    (slot / "untracked.txt").write_text("left over\n")
    path, _ = materialize(r, commit, "arm-a")
    assert not (path / ".git").exists() and not (path / "untracked.txt").exists()
    assert git(repo, "worktree", "list").count("\n") == 1


def test_a_crafted_tree_with_a_dot_dot_path_is_refused(tmp_path: Path) -> None:
    import subprocess

    r, _ = make(tmp_path)
    repo = r.root
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"x\n", capture_output=True, check=True).stdout.decode().strip()
    body = b"100644 ..\x00" + bytes.fromhex(blob)
    tree = subprocess.run(["git", "hash-object", "-w", "-t", "tree", "--literally", "--stdin"], cwd=repo, input=body,
                          capture_output=True, check=True).stdout.decode().strip()
    commit = subprocess.run(["git", "commit-tree", tree, "-m", "crafted"], cwd=repo, capture_output=True, check=True, text=True).stdout.strip()
    with pytest.raises(RefusedError, match="outside its checkout"):
        materialize(r, commit, "arm-a")


@pytest.mark.parametrize(("links", "escaping"), [
    ({"policy.json": "/etc/hostname"}, "policy.json"),  # absolute
    ({"policy.json": "../../../../policy.json"}, "policy.json"),  # up from the slot into the work tree
    # each link looks inside on its own ("a/b/L/../evil.json" is "a/b/evil.json" as text); resolved, L is the
    # tree's root, so the chain ends beside the slot, in a file anyone can write
    ({"a/b/L": "../..", "policy.json": "a/b/L/../evil.json"}, "policy.json"),
])
def test_a_symbolic_link_resolving_outside_the_tree_is_refused(tmp_path: Path, links: dict[str, str], escaping: str) -> None:
    r, _ = make(tmp_path)
    repo = r.root
    for rel, to in links.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(to, repo / rel)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links")
    commit = git(repo, "rev-parse", "HEAD").strip()
    with pytest.raises(RefusedError, match=f"symbolic link '{escaping}' -> .*points outside it"):
        materialize(r, commit, "arm-a")
    with pytest.raises(RefusedError):  # and again on a reused slot, where nothing is rewritten
        materialize(r, commit, "arm-a", verify=True)


def test_links_that_stay_inside_the_tree_are_kept(tmp_path: Path) -> None:
    r, _ = make(tmp_path)
    repo = r.root
    os.symlink("../run.py", repo / "eval/lib/up.py")
    os.symlink("eval/lib", repo / "lib")
    os.symlink("missing.txt", repo / "dangling")  # dangling, but inside: reads fail as they would in git's checkout
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "inner links")
    path, _ = materialize(r, git(repo, "rev-parse", "HEAD").strip(), "arm-a")
    assert (path / "eval/lib/up.py").read_text() == FILES["eval/run.py"] and (path / "lib/helpers.py").read_text() == "X = 1\n"
