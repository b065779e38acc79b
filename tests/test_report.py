"""gitera report (issue 7): the markdown summary for a pull request, read from git like verify.

Real repositories and the deterministic policy harness; each test reads the report as a
reviewer would in a PR comment: the numbers, the flags, the verify status.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project


def report(root: Path) -> tuple[str, dict[str, Any]]:
    r = run_gitera(root, "report", "--format", "md")
    j = run_gitera(root, "report", "--format", "md", "--json")
    assert r.code == 0 and j.code == 0, r.err + j.err
    doc: dict[str, Any] = json.loads(j.out)
    assert doc["markdown"] == r.out.rstrip("\n")
    return r.out, doc


def run_trailers(root: Path) -> dict[str, dict[str, Any]]:
    out = git(root, "log", "--format=%(trailers:key=Gitera-Result,valueonly,separator=%x1e)", "autoexp/syn")
    found = [json.loads(x) for x in out.replace("\n", "\x1e").split("\x1e") if x.strip()]
    return {d["arm"]: d for d in reversed(found) if d.get("kind") == "run"}


def line_of(text: str, start: str) -> str:
    (line,) = [x for x in text.splitlines() if x.startswith(start)]
    return line


def test_before_the_verdict_the_report_is_the_dev_dashboard(repo: Path) -> None:
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.5\ncost: 0.002\nlatency: 40\n"})
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.7\ncost: 0.002\nlatency: 40\n")
    assert run_gitera(repo, "iterate", "-m", "raise accuracy").code == 0
    text, doc = report(repo)
    assert text.startswith("## gitera: `syn`\n\n> Does policy B beat policy A?\n")
    assert "No verdict yet: dev results only (the sealed test set is still closed)." in text
    runs = run_trailers(repo)
    b = runs["b"]
    assert line_of(text, "| a (baseline) |").startswith(f"| a (baseline) | {runs['a']['score']:.4f} ± ")
    assert line_of(text, "| b |") == (f"| b | {b['score']:.4f} ± {b['sd']:.4f} | {b['delta']:+.4f} | [{b['ci'][0]:+.4f}, {b['ci'][1]:+.4f}] | "
                                      f"{b['cost_per_1k']:.4f} | 40.0 |")
    assert "| 1 | 1 |" in text and "raise accuracy" in text  # the attempt, from the log's table
    assert text.rstrip().endswith("**verify:** all checks pass")
    assert doc["verify_ok"] is True and doc["verdict"] is None and doc["violations"] == [] and doc["summary"]["attempts"] == 1


def test_the_report_shows_a_verify_violation(repo: Path) -> None:
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.8\n"})
    assert run_gitera(repo, "run").code == 0
    (repo / "harness.py").write_text((repo / "harness.py").read_text() + "# tuned\n")
    subprocess.run(["git", "commit", "-q", "--no-verify", "-am", "tune"], cwd=repo, check=True)
    text, doc = report(repo)
    assert "**verify:** 1 violation(s): locked files unchanged in every commit since the lock: harness.py in " in text
    assert doc["verify_ok"] is False and len(doc["violations"]) == 1


def test_after_the_verdict_the_report_reads_the_committed_verdict(repo: Path) -> None:
    synthetic_project(repo, rows=900, policies={"policy_a.txt": "accuracy: 0.5\ncost: 0.001\nlatency: 20\n",
                                                 "policy_b.txt": "accuracy: 0.85\ngroup.g3: 0.2\ncost: 0.003\nlatency: 55\n"})
    assert run_gitera(repo, "run").code == 0
    assert run_gitera(repo, "verdict").code == 0
    committed = json.loads((repo / ".gitera/syn/verdict.json").read_text())
    # a working-tree copy edited after the fact, or removed, changes nothing: the report reads git
    forged = json.loads(json.dumps(committed))
    forged["decision"]["decision"], forged["decision"]["arms"][0]["effect"] = "ship", 0.99
    (repo / ".gitera/syn/verdict.json").write_text(json.dumps(forged))
    text, doc = report(repo)
    (repo / ".gitera/syn/verdict.json").unlink()
    assert report(repo)[0] == text
    b = committed["decision"]["arms"][0]
    assert f"**Verdict: ship narrowly** b to group=g1, group=g2 — {committed['n_test']} sealed test rows; see `{committed['conclusion']}/conclusion.md`" in text
    assert "| arm | scored at | test score | test Δ vs baseline | 95% CI | aggregate | slice flags | $/1k rows | latency ms |" in text
    assert line_of(text, "| b |") == (f"| b | as registered | {committed['arms']['b']['score']:.4f} | {b['effect']:+.4f} | "
                                      f"[{b['ci_low']:+.4f}, {b['ci_high']:+.4f}] | PASS | ⚠ group=g3 FAIL | 3.0000 | 55.0 |")
    assert line_of(text, "| a |") == f"| a | as registered | {committed['arms']['a']['score']:.4f} | — | — | baseline | — | 1.0000 | 20.0 |"
    assert "0.99" not in text
    assert text.rstrip().endswith("**verify:** all checks pass")
    assert doc["verdict"]["decision"] == "ship_narrowly" and doc["verify_ok"] is True and doc["alarms"] == []
