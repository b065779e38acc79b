"""User mistakes that once ended in a traceback: each is now one sentence and a documented exit code."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_gitera
from tests.helpers import init_and_lock, synthetic_project, write_project


def test_a_frame_nested_thousands_deep_is_a_config_error(repo: Path) -> None:
    write_project(repo)
    assert run_gitera(repo, "init", "deep").code == 0
    (repo / ".gitera/deep/frame.yaml").write_text("question: " + "[" * 5000 + "]" * 5000 + "\n")
    r = run_gitera(repo, "lock")
    assert r.code == 2 and "Traceback" not in r.err, r.err
    assert ".gitera/deep/frame.yaml:1: invalid YAML: nested too deeply" in r.err


def test_the_trailers_hook_given_a_directory_says_so(repo: Path) -> None:
    init_and_lock(repo)
    r = run_gitera(repo, "hook", "trailers", str(repo))
    assert r.code == 2 and "is a directory" in r.err and "Traceback" not in r.err, r.err


def test_a_progression_chart_before_any_attempt_is_refused_in_words(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    r = run_gitera(repo, "log", "--chart", str(repo / "p.png"))
    assert r.code == 2 and "has no iterate attempt yet" in r.err and "Traceback" not in r.err, r.err
    assert not (repo / "p.png").exists()
