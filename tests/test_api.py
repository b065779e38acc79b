from __future__ import annotations

from pathlib import Path

import pytest

import gitera
from tests.conftest import run_gitera
from tests.helpers import synthetic_project


def test_library_reads_frame_attempts_and_rows(repo: Path) -> None:
    synthetic_project(repo)
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    assert run_gitera(repo, "iterate", "-m", "more accurate").code == 0
    exp = gitera.open_experiment(repo, tag="syn")
    assert exp.frame.question == "Does policy B beat policy A?"
    attempts = exp.attempts()
    assert [a["status"] for a in attempts] == ["keep"]
    results = exp.results(attempts[0])
    assert len(results) == attempts[0]["n"] * 3
    mean = sum(r["score"] for r in results) / len(results)
    assert abs(mean - attempts[0]["score"]) < 1e-6  # trailers keep 6 decimals
    assert len(exp.rows("dev")) == attempts[0]["n"]
    with pytest.raises(ValueError):
        exp.rows("test")
    assert exp.verdict() is None
    assert {r["arm"] for r in exp.runs()} == {"a", "b"}


def test_library_reads_the_committed_verdict(repo: Path) -> None:
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.8\n"})
    assert run_gitera(repo, "run").code == 0
    assert run_gitera(repo, "verdict").code == 0
    (repo / ".gitera/syn/verdict.json").write_text("{}")  # an edit in the working tree is not the verdict
    doc = gitera.open_experiment(repo, tag="syn").verdict()
    assert doc is not None and doc["decision"]["decision"] == "ship" and doc["decision"]["arm"] == "b"
