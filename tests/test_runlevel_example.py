"""The autoresearch example end to end: init → lock → split → pilot → run → iterate --loop with the
proposer → verdict → verify, a real numpy model trained on real BANKING77 text, in a real repo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import git, run_gitera
from tests.runproject import AUTORESEARCH, autoresearch_project

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "autoresearch"


def test_the_example_folder_is_the_packaged_project() -> None:
    assert (EXAMPLE / "project").resolve() == AUTORESEARCH.resolve()
    for name in ("train.py", "prepare.py", "propose.py", "frame.yaml", "data/train.txt", "data/val.txt", "data/test.txt", "data/gate.txt"):
        assert (EXAMPLE / "project" / name).is_file(), name


def test_make_data_rebuilds_the_shards_exactly(tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in (AUTORESEARCH / "data").glob("*.txt")}
    subprocess.run([sys.executable, str(EXAMPLE / "make_data.py")], check=True, capture_output=True)
    assert {p.name: p.read_bytes() for p in (AUTORESEARCH / "data").glob("*.txt")} == before
    shards = {name: set(text.decode().splitlines()) for name, text in before.items()}
    names = sorted(shards)
    assert all(not shards[a] & shards[b] for a in names for b in names if a < b)  # no query in two files


def test_autoresearch_pipeline_one_run_when_clearly_worse_the_cap_when_marginal(repo: Path) -> None:
    autoresearch_project(repo)
    r = run_gitera(repo, "split")
    assert r.code == 0, r.err
    # the held-out shards left the work tree; git never held them
    assert not (repo / "data/test.txt").exists() and not (repo / "data/gate.txt").exists()
    assert git(repo, "log", "--all", "--format=%H", "--", "data/test.txt", "data/gate.txt") == ""
    for step in ("pilot", "run"):
        r = run_gitera(repo, step)
        assert r.code == 0, r.out + r.err
    assert "Sizing: to detect 0.05 with noise sd" in r.out
    r = run_gitera(repo, "iterate", "--loop", "--propose", "python propose.py")
    assert r.code == 0, r.out + r.err
    log = json.loads(run_gitera(repo, "log", "--format", "json").out)
    attempts = {a["iteration"]: a for a in log["attempts"]}
    assert len(attempts) == 6
    # LR 0.05 -> 0.005: clearly worse than the noise allows, so one training run
    assert attempts[1]["status"] == "discard" and attempts[1]["trials"] == 1 and "after 1 run" in attempts[1]["reason"]
    # HIDDEN 64 -> 72: within noise of a keep, so runs are added, up to the frame's cap (5)
    assert 1 < attempts[3]["trials"] <= 5 and attempts[3]["status"] in ("keep", "discard")
    assert all(1 <= a["trials"] <= 5 for a in attempts.values())
    assert [attempts[i]["status"] for i in (1, 2, 4, 5, 6)] == ["discard", "keep", "keep", "discard", "keep"]
    table = run_gitera(repo, "log").out
    assert "[1 run]" in table and f"[{attempts[3]['trials']} runs]" in table
    gates = [r["data"] for r in log["records"] if r["kind"] == "Gate"]
    assert [g["outcome"] for g in gates] == ["pass", "pass"]
    assert all(q["holdout_used"] in (True, False) for g in gates for q in g["holdout_queries"])  # the gate shard, through the holdout
    r = run_gitera(repo, "verdict", "--json")
    assert r.code == 0, r.err
    verdict = json.loads(r.out)
    assert verdict["decision"]["decision"] == "ship" and verdict["decision"]["arm"] == "agent"
    doc = json.loads((repo / ".gitera/ar/verdict.json").read_text())
    assert doc["level"] == "run" and doc["locked_iteration"] == 6 and doc["n_test"] == 3
    assert doc["arms"]["baseline"]["what"] == "the target files as locked"
    # the decrypted test shard lived only in the verdict's checkouts, for its runs
    assert not list((repo / ".git/gitera/worktrees").glob("*/data/test.txt"))
    assert not (repo / "data/test.txt").exists()
    conclusion = (repo / verdict["conclusion"]).read_text()
    assert "3 runs per arm on the sealed test files (data/test.txt)" in conclusion
    # the script reports no cost, so there is no cost chart
    assert {Path(c).name for c in verdict["charts"] if c.endswith(".png")} == {"arm-bar.png", "progression.png", "forest-plot.png"}
    r = run_gitera(repo, "verify")
    assert r.code == 0, r.out
    assert "the verdict recomputed from the test runs is the same" in r.out
