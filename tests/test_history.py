"""The history cache: grown branches read only new commits; a torn cache is never trusted."""

from __future__ import annotations

from pathlib import Path

from gitera.git import Repo
from gitera.history import attempts, read
from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project


def test_cache_follows_the_branch_and_survives_tearing(repo: Path) -> None:
    synthetic_project(repo)
    r = Repo.find(repo)
    for acc in ("0.6", "0.7"):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        assert run_gitera(repo, "iterate", "-m", f"accuracy {acc}").code == 0
        cached = [x.data["score"] for x in attempts(read(r, "autoexp/syn", "syn"))]
        fresh = [x.data["score"] for x in attempts(read(r, "autoexp/syn", "syn", use_cache=False))]
        assert cached == fresh
    assert len(fresh) == 2
    history = r.common_dir / "gitera" / "history"
    (history / "syn.log").write_text("garbage that is not git log output\x1e")
    (history / "syn.tip").unlink()  # a torn write: the tip is missing, so the log text is not trusted
    assert [x.data["score"] for x in attempts(read(r, "autoexp/syn", "syn"))] == fresh
    # a branch that moved to an unrelated history is read again from scratch
    git(repo, "branch", "-f", "other", "main")
    assert read(r, "other", "syn") == []
