"""Real `gitera pilot` / `gitera run` against adversarial harnesses, in a real repository.

Each test gives the documented outcome (exit code, messages naming rows and lines, the per-row
statuses in the committed run file) and leaves the user's work exactly as it was: an unstaged
edit, a staged file and an untracked file byte-identical; status, staged diff and index the
same (gitera's own new run files aside).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project

ADVERSARY = Path(__file__).parent / "harnesses" / "adversary.py"
RUNS = ".gitera/syn/runs/"


@dataclass(frozen=True)
class UserWork:
    status: str
    staged: str
    index: str
    files: dict[str, bytes]

    @classmethod
    def of(cls, repo: Path) -> UserWork:
        index = "".join(x + "\n" for x in git(repo, "ls-files", "-s").splitlines() if RUNS not in x)
        files = {name: (repo / name).read_bytes() for name in ("README.md", "staged.txt", "notes.txt")}
        return cls(git(repo, "status", "--porcelain"), git(repo, "diff", "--cached"), index, files)


def _user_work(repo: Path) -> UserWork:
    """Uncommitted work of every kind: an unstaged edit, a staged new file, an untracked file."""
    (repo / "README.md").write_text("my unstaged edit\n")
    (repo / "staged.txt").write_text("staged, not committed\n")
    git(repo, "add", "staged.txt")
    (repo / "notes.txt").write_text("untracked notes\n")
    return UserWork.of(repo)


@pytest.fixture
def project(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Path, UserWork]]:
    """A locked, split, piloted experiment scored by adversary.py; its dev ids in `dev_ids`."""
    monkeypatch.setenv("ADVERSARY_LOG", str(tmp_path / "calls.jsonl"))
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("ADVERSARY_STATE", str(state))
    synthetic_project(repo, rows=80, harness=ADVERSARY, timeout_s=1.5)
    yield repo, _user_work(repo)


def dev_ids(repo: Path) -> list[str]:
    return [json.loads(x)["id"] for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]


def committed_rows(repo: Path, summary: dict[str, Any], arm: str) -> list[dict[str, Any]]:
    text = git(repo, "show", f"HEAD:{summary['arms'][arm]['rows_file']}")
    return [json.loads(x) for x in text.splitlines()]


def statuses(rows: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    return {(r["id"], r["trial"]): r["status"] for r in rows}


def run(repo: Path, monkeypatch: pytest.MonkeyPatch, mode: str, ids: list[str], trial: int | None = None) -> tuple[int, dict[str, Any], str]:
    monkeypatch.setenv("ADVERSARY", mode)
    monkeypatch.setenv("ADVERSARY_IDS", ",".join(ids))
    if trial is not None:
        monkeypatch.setenv("ADVERSARY_TRIAL", str(trial))
    r = run_gitera(repo, "run", "--json")
    return r.code, json.loads(r.out), r.err


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_deterministic_harness_scores_everything_and_a_rerun_is_free(
    project: tuple[Path, UserWork], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo, work = project
    code, summary, err = run(repo, monkeypatch, "", [])
    assert code == 0, err
    assert summary["complete"] and summary["noise_floor"] is not None
    for arm in ("a", "b"):
        rows = committed_rows(repo, summary, arm)
        assert len(rows) == len(dev_ids(repo)) * 3 and set(statuses(rows).values()) == {"ok"}
    assert UserWork.of(repo) == work
    before = len(calls(tmp_path))
    code, again, _ = run(repo, monkeypatch, "", [])
    assert code == 0 and len(calls(tmp_path)) == before  # served from the cache: no eval call
    assert again["arms"]["b"]["score"] == summary["arms"]["b"]["score"]
    assert UserWork.of(repo) == work


def test_flaky_rows_are_retried_until_scored(project: tuple[Path, UserWork], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo, work = project
    flaky = dev_ids(repo)[:3]
    code, summary, err = run(repo, monkeypatch, "flaky", flaky)
    assert code == 0, err
    assert summary["complete"] and set(statuses(committed_rows(repo, summary, "b")).values()) == {"ok"}
    tried = [(c["trial"], i) for c in calls(tmp_path) if c["arm"] == "b" for i in c["ids"]]
    assert all(tried.count((t, i)) == 3 for t in range(3) for i in flaky)  # two transient failures, then ok
    assert UserWork.of(repo) == work


def test_a_row_that_hangs_is_killed_at_timeout_s_and_only_it_is_unscored(
    project: tuple[Path, UserWork], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, work = project
    hung = dev_ids(repo)[7]
    t0 = time.monotonic()
    code, summary, err = run(repo, monkeypatch, "hang", [hung], trial=0)
    assert time.monotonic() - t0 < 40
    assert code == 5 and not summary["complete"]
    assert "the run is incomplete" in err
    rows = committed_rows(repo, summary, "b")
    bad = {k: v for k, v in statuses(rows).items() if v != "ok"}
    assert bad == {(hung, 0): "timeout"}
    error = next(r["error"] for r in rows if r["id"] == hung and r["trial"] == 0)
    assert error == "the command was killed after writing no result line for 1.5 s (timeout_s, per row) when scored alone"
    assert summary["arms"]["b"]["problems"][0].startswith(f"1 of {len(rows)} row x trial results are unscored (1 timeout), e.g. rows '{hung}'")
    assert set(statuses(committed_rows(repo, summary, "a")).values()) == {"ok"}
    assert UserWork.of(repo) == work


def test_the_frame_run_timeout_stops_an_arm_run_and_marks_what_is_left(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synthetic_project(repo, rows=80, harness=ADVERSARY, timeout_s=60, eval_extra=", run_timeout_s: 2")
    work = _user_work(repo)
    t0 = time.monotonic()
    code, summary, err = run(repo, monkeypatch, "hang", dev_ids(repo)[:1])
    assert time.monotonic() - t0 < 30  # not 60 s per row: the run timeout cut it
    assert code == 5 and not summary["complete"]
    rows = committed_rows(repo, summary, "b")
    assert "timeout" in set(statuses(rows).values())
    assert all("run timeout" in r["error"] for r in rows if r["status"] == "timeout")
    assert set(statuses(committed_rows(repo, summary, "a")).values()) == {"ok"}
    assert UserWork.of(repo) == work


def test_a_row_that_crashes_its_invocation_is_the_only_crash(project: tuple[Path, UserWork], monkeypatch: pytest.MonkeyPatch) -> None:
    repo, work = project
    poison = dev_ids(repo)[4]
    code, summary, err = run(repo, monkeypatch, "crash", [poison])
    assert code == 5 and not summary["complete"]
    rows = committed_rows(repo, summary, "b")
    assert {k: v for k, v in statuses(rows).items() if v != "ok"} == {(poison, t): "crash" for t in range(3)}
    for r in rows:
        if r["status"] == "crash":  # the stderr tail of its own, single-row invocation
            assert r["error"].startswith("the command exited with code 3; stderr tail:")
            assert f"adversary: crash on row {poison} with 1 rows" in r["error"]
    assert any(f"rows '{poison}' unscored; last stderr line: adversary: crash on row {poison} with 1 rows" in p
               for p in summary["arms"]["b"]["problems"])
    assert UserWork.of(repo) == work


def test_a_lying_harness_gets_each_lie_named_by_row_and_line(project: tuple[Path, UserWork], monkeypatch: pytest.MonkeyPatch) -> None:
    repo, work = project
    omit, dup, garbage = dev_ids(repo)[:3]
    code, summary, err = run(repo, monkeypatch, "lie", [omit, dup, garbage], trial=0)
    assert code == 5 and not summary["complete"]
    rows = committed_rows(repo, summary, "b")
    assert {k: v for k, v in statuses(rows).items() if v != "ok"} == {(omit, 0): "missing", (dup, 0): "invalid", (garbage, 0): "invalid"}
    errors = {r["id"]: r["error"] for r in rows if r["trial"] == 0 and r["status"] != "ok"}
    assert errors[dup].startswith("written 2 times (lines ")
    assert f"score 'high' for row '{garbage}' is not a number" in errors[garbage] and " line " in errors[garbage]
    problems = "\n".join(summary["arms"]["b"]["problems"])
    assert "line 1: not a JSON object: 'this is not json'" in problems
    assert "unknown row id 'ghost' (not among the rows given)" in problems
    assert f"no result line for rows '{omit}'" in problems
    assert UserWork.of(repo) == work


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("pilot-null", "arm b row '{row}' trial 0: `output` is null"),
        ("pilot-placeholder", "arm b row '{row}' trial 0: `answer` is a placeholder ('TODO')"),
        ("pilot-placeholder", "arm b row '{row}' trial 0: `meta.label` is a placeholder ('N/A')"),
    ],
)
def test_the_pilot_refuses_null_and_placeholder_fields_naming_arm_row_and_field(
    repo: Path, monkeypatch: pytest.MonkeyPatch, mode: str, expected: str
) -> None:
    synthetic_project(repo, rows=80, harness=ADVERSARY, pilot=False)
    work = _user_work(repo)
    monkeypatch.setenv("ADVERSARY", mode)
    r = run_gitera(repo, "pilot")
    row = json.loads((repo / ".gitera/syn/split/train.jsonl").read_text().splitlines()[0])["id"]
    assert r.code == 5
    assert expected.format(row=row) in r.out
    assert "`gitera run` refuses until a pilot passes" in r.err
    assert json.loads(git(repo, "show", "HEAD:.gitera/syn/runs/pilot.json"))["status"] == "fail"
    assert UserWork.of(repo) == work
    assert run_gitera(repo, "run").code == 3  # refused: no passed pilot
