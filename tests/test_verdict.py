"""gitera verdict end to end (issue 7): each decision on prepared data, the refusals, and what it records.

Real git repositories, the real deterministic policy harness, real encryption; every
assertion is what a user would check: the decision, the message, the exit code, the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project

ARM_C = "  c: {change: another policy, params: {policy: policy_c.txt}}\n"


def project(root: Path, *, a: str, b: str, c: str | None = None, **kw: Any) -> None:
    policies = {"policy_a.txt": a, "policy_b.txt": b}
    if c is not None:
        policies["policy_c.txt"] = c
    synthetic_project(root, policies=policies, extra_arms=ARM_C if c is not None else "", **kw)
    r = run_gitera(root, "run")
    assert r.code == 0, r.out + r.err


def verdict(root: Path, *args: str) -> dict[str, Any]:
    r = run_gitera(root, "verdict", *args)
    assert r.code == 0, r.out + r.err
    return json.loads((root / ".gitera/syn/verdict.json").read_text())


def tip(root: Path) -> str:
    return git(root, "rev-parse", "refs/heads/autoexp/syn").strip()


# --------------------------------------------------------------------------------------------
# 1. each decision, reached on prepared data
# --------------------------------------------------------------------------------------------


def test_ship_an_arm_better_everywhere(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.8\n")
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.err
    assert "Ship b: it beats a by at least the registered 0.05 on the sealed test set and holds on every slice." in r.out
    doc = json.loads((repo / ".gitera/syn/verdict.json").read_text())
    d = doc["decision"]
    assert d["decision"] == "ship" and d["arm"] == "b"
    assert d["slices"] == ["g1", "g2", "g3"]
    (b,) = d["arms"]
    assert b["aggregate"] == "PASS" and {s["state"] for s in b["slices"]} == {"PASS"}
    assert b["effect"] > 0.2
    trailer = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Verdict,valueonly)").strip())
    assert trailer["decision"] == "ship" and trailer["arm"] == "b" and trailer["key_released"] is True


def test_ship_narrowly_to_the_passing_slices(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.85\ngroup.g3: 0.2\n", rows=900)
    doc = verdict(repo)
    d = doc["decision"]
    assert d["decision"] == "ship_narrowly" and d["arm"] == "b"
    assert d["slices"] == ["g1", "g2"]
    assert "g3" not in d["slices"]
    states = {s["name"]: s["state"] for s in d["arms"][0]["slices"]}
    assert states == {"g1": "PASS", "g2": "PASS", "g3": "FAIL"}
    assert d["arms"][0]["aggregate"] == "PASS"
    md = (repo / doc["conclusion"] / "conclusion.md").read_text()
    assert "Ship b narrowly, to g1, g2 only: it clears the threshold overall but not on every slice." in md
    assert "b loses on slice g3" in md


def test_underpowered_reports_the_rows_needed(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.56\n", rows=150, effect=0.05)
    doc = verdict(repo)
    d = doc["decision"]
    assert d["decision"] == "underpowered" and d["arm"] is None and d["slices"] == []
    assert d["arms"][0]["aggregate"] == "INCONCLUSIVE"
    assert isinstance(d["rows_needed"], int) and d["rows_needed"] > doc["n_test"]
    md = (repo / doc["conclusion"] / "conclusion.md").read_text()
    assert f"about {d['rows_needed']} test rows would decide it" in md


def test_kill_when_the_candidate_is_worse(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.45\n", rows=900, effect=0.1)
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.err
    assert "Kill: no arm beats a by the registered 0.1 on the sealed test set." in r.out
    d = json.loads((repo / ".gitera/syn/verdict.json").read_text())["decision"]
    assert d["decision"] == "kill" and d["arm"] is None
    assert d["arms"][0]["aggregate"] == "FAIL" and d["arms"][0]["ci_high"] < 0.1


def test_three_arms_the_one_that_holds_everywhere_ships(repo: Path) -> None:
    # b wins the aggregate but regresses g3; c wins less but everywhere: c ships, b does not
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.95\ngroup.g3: 0.35\n", c="accuracy: 0.7\n", rows=900)
    doc = verdict(repo)
    d = doc["decision"]
    by = {x["name"]: x for x in d["arms"]}
    assert set(by) == {"b", "c"}
    assert by["b"]["effect"] > by["c"]["effect"]
    assert by["b"]["aggregate"] == "PASS" and by["c"]["aggregate"] == "PASS"
    assert {s["name"]: s["state"] for s in by["b"]["slices"]}["g3"] == "FAIL"
    assert {s["state"] for s in by["c"]["slices"]} == {"PASS"}
    assert d["decision"] == "ship" and d["arm"] == "c"
    assert "b passes the aggregate but not every slice" in d["reasons"][0]
    assert set(doc["arms"]) == {"a", "b", "c"}
