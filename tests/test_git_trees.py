"""make_commit writes the trees of SHA-1 repositories itself: they must be git's own, byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.adapters.git import Repo
from tests.conftest import git

# names whose order is tricky: git sorts a folder as if its name ended in "/"
START = {
    "a": "file a\n", "a.b": "dot\n", "a-b": "dash\n", "a0": "zero\n", "b/c.txt": "c\n", "b/d/e.txt": "e\n",
    "b.txt": "b\n", "b-c/x": "x\n", "deep/er/est/f": "f\n", "run.sh": "#!/bin/sh\n", "Z": "upper\n",
}
POOL = [*START, "a/new.txt", "b/c", "b/d/new", "b/dd/n", "new/folder/file", "deep/er/est/g", "deep/x", "é.txt", "sp ace/f"]


def make_repo(root: Path) -> Repo:
    git(root, "init", "-q", "-b", "main")
    for path, text in START.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    os.chmod(root / "run.sh", 0o755)
    os.symlink("a", root / "link")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    return Repo.find(root)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(POOL), st.one_of(st.none(), st.binary(max_size=20)), min_size=1, max_size=6))
def test_trees_written_here_are_the_trees_git_writes(tmp_path_factory: object, changes: dict[str, bytes | None]) -> None:
    root = tmp_path_factory.mktemp("trees")  # type: ignore[attr-defined]
    repo = make_repo(root)
    parent = git(root, "rev-parse", "HEAD").strip()
    names = [p for p, c in changes.items() if c is not None]
    blobs = dict(zip(names, repo.write_blobs([changes[p] or b"" for p in names], len(parent))))
    wanted = {p: ("100644", blobs[p]) if p in blobs else None for p in changes}
    ours = repo._tree_written(parent, wanted)
    theirs = repo._tree_via_index(parent, wanted)
    if ours is not None:  # None: an unusual change left to git's index
        assert ours == theirs
    commit = repo.make_commit(parent, changes, "change")
    assert git(root, "rev-parse", f"{commit}^{{tree}}").strip() == theirs
    git(root, "fsck", "--strict", "--no-dangling")


def test_ordinary_changes_take_the_fast_path_and_unusual_ones_fall_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    parent = git(tmp_path, "rev-parse", "HEAD").strip()
    (oid,) = repo.write_blobs([b"new\n"], 40)
    blob = ("100644", oid)
    for changes in ({"b/d/e.txt": blob}, {"deep/er/est/f": None}, {"new/folder/file": blob, "a": None}, {"b/d/e.txt": None}):
        ours = repo._tree_written(parent, changes)
        assert ours is not None and ours == repo._tree_via_index(parent, changes), changes
    assert repo._tree_written(parent, {"a/inside": blob}) is None  # "a" is a file
    assert repo._tree_written(parent, {"b": blob}) is None  # "b" is a folder
    assert repo._tree_written(parent, {"x\ny": blob}) is None
