"""Issue 6 item 2 on a real repo: the pareto and weighted decision modes, and confirmation runs for marginal gains."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project

SECONDARY = {"  guards: [{name: latency_ms, max_increase: 1.0}]": "  secondary: [cost_usd, latency_ms]\n  guards: [{name: latency_ms, max_increase: 1.0}]"}


def mode_project(repo: Path, iterate_lines: str) -> None:
    synthetic_project(repo, frame_edits={**SECONDARY, "  sprint: 3\n": "  sprint: 3\n" + iterate_lines})


def last_attempt(repo: Path) -> dict[str, Any]:
    raw = git(repo, "log", "--format=%(trailers:key=Gitera-Result,valueonly)", "autoexp/syn")
    return next(r for r in map(json.loads, filter(str.strip, raw.splitlines())) if r["kind"] == "attempt")


def attempt(repo: Path, policy: str, hypothesis: str) -> tuple[str, dict[str, Any]]:
    (repo / "policy_b.txt").write_text(policy)
    r = run_gitera(repo, "iterate", "-m", hypothesis)
    assert r.code == 0, r.out + r.err
    return r.out, last_attempt(repo)


def test_pareto_keeps_a_cheaper_change_at_equal_accuracy_and_refuses_a_trade_off(repo: Path) -> None:
    mode_project(repo, "  mode: pareto\n  directions: {cost_usd: lower, latency_ms: lower}\n")
    out, res = attempt(repo, "accuracy: 0.5\ncost: 0.00005\n", "half the cost, same answers")
    assert "#1 KEEP: kept (pareto): better on cost_usd" in out and "not worse on accuracy, latency_ms" in out, out
    assert res["mode"] == "pareto" and res["status"] == "keep" and res["delta"] == 0.0
    gains = res["gains"]
    assert set(gains) == {"accuracy", "cost_usd", "latency_ms"}
    assert gains["cost_usd"]["gain"] == 0.00005 and gains["cost_usd"]["direction"] == "lower" and gains["accuracy"]["field"] == "score"
    # more accurate but slower (within the latency guard): worse on one criterion beyond noise, so not kept
    out, res = attempt(repo, "accuracy: 0.6\ncost: 0.00005\nlatency: 12\n", "more accurate, a little slower")
    assert "#2 DISCARD: discarded (pareto): worse on latency_ms (-2 beyond its noise tolerance)" in out, out
    assert res["gains"]["accuracy"]["gain"] > res["gains"]["accuracy"]["threshold"]  # primary mode would have kept it
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.5\ncost: 0.00005\n"
    assert run_gitera(repo, "verify").code == 0


def test_weighted_mode_trades_accuracy_against_cost_and_verify_recomputes_it(repo: Path) -> None:
    mode_project(repo, "  mode: weighted\n  weights: {accuracy: 1.0, cost_usd: -1000}\n")
    out, res = attempt(repo, "accuracy: 0.6\ncost: 0.0003\n", "more accurate but three times the cost")
    assert "#1 DISCARD: discarded (weighted): weighted gain" in out, out
    assert res["outcome"] == "falsified" and res["weights"] == {"score": 1.0, "cost_usd": -1000.0}
    g = res["gains"]
    assert g["accuracy"]["gain"] > g["accuracy"]["threshold"]  # the primary mode would have kept it
    assert g["cost_usd"]["gain"] < 0 and g["weighted"]["gain"] < 0
    assert abs(g["weighted"]["gain"] - (g["accuracy"]["gain"] - 0.2)) < 1e-6  # 1 × Δaccuracy − 1000 × Δcost
    out, res = attempt(repo, "accuracy: 0.6\ncost: 0.00005\n", "more accurate and cheaper")
    assert "#2 KEEP: kept (weighted)" in out and res["status"] == "keep", out
    assert run_gitera(repo, "verify").code == 0

    # a trailer whose weighted gain was edited is caught by verify
    log = git(repo, "log", "-1", "--format=%B", "HEAD")
    assert "Gitera-Result" in log  # the kept attempt is the tip (no restore after a keep)
    edited = log.replace(f'"gain":{g_w(log)}', '"gain":0.5', 1)
    assert edited != log
    (repo / "msg.txt").write_text(edited)
    git(repo, "commit", "-q", "--amend", "-F", "msg.txt")
    r = run_gitera(repo, "verify")
    assert r.code == 1 and "#2: recorded weighted gain 0.5 but rows give" in r.out, r.out


def g_w(message: str) -> str:
    """The weighted criterion's recorded gain, as written in the trailer."""
    line = next(x for x in message.splitlines() if x.startswith("Gitera-Result:"))
    gain = json.loads(line.split(":", 1)[1])["gains"]["weighted"]["gain"]
    return json.dumps(gain)


def u(*parts: object) -> float:
    """The synthetic harness's stable per-row number (tests/synthetic/harness.py)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:12], 16) / 16**12


def two_row_gain(repo: Path) -> float:
    """An accuracy that turns exactly two more climbing dev rows right than 0.5 does: a marginal gain."""
    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]
    above = sorted(v for v in (u("row", r["id"]) for r in dev) if v >= 0.5)
    return (above[1] + above[2]) / 2


def test_a_marginal_gain_is_confirmed_with_fresh_trials_and_kept_only_if_it_holds(repo: Path) -> None:
    synthetic_project(repo)
    acc = two_row_gain(repo)
    # a gain that is luck of the first trials: the fresh ones (GITERA_TRIAL 3-5) score worse, the pooled gain does not clear
    lucky = f"accuracy: {acc:.6f}\n" + "".join(f"trial.{t}: 0.45\n" for t in (3, 4, 5))
    out, res = attempt(repo, lucky, "two more rows right, but only in the first trials")
    assert "by less than one paired SE: confirming with 3 fresh trials" in out, out
    assert "#1 DISCARD: not confirmed with 3 fresh trials: discarded" in out, out
    assert res["confirm"] == {"first_gain": res["confirm"]["first_gain"], "first_threshold": res["confirm"]["first_threshold"],
                              "fresh_trials": [3, 4, 5], "complete": True, "held": False}
    assert res["confirm"]["first_gain"] > res["confirm"]["first_threshold"] > 0  # kept on the first three trials alone
    assert res["delta"] < 0 and res["trials"] == 6
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.5\n"  # restored

    # the same gain, real in every trial: the fresh trials confirm it
    out, res = attempt(repo, f"accuracy: {acc:.6f}\n", "two more rows right")
    assert "#2 KEEP: confirmed with 3 fresh trials: kept" in out, out
    assert res["confirm"]["held"] is True and res["trials"] == 6 and res["delta"] > res["threshold"] > 0
    rows = [json.loads(x) for x in (repo / res["rows"]).read_text().splitlines()]
    assert sorted({r["trial"] for r in rows}) == [0, 1, 2, 3, 4, 5] and len(rows) == 6 * res["n"]
    # the next attempt is compared with the best's six trials, and verify recomputes every gain the same way
    out, res = attempt(repo, "accuracy: 0.7\n", "a clear gain")
    assert "#3 KEEP" in out and "confirming" not in out and res["best_score"] > 0.5
    assert run_gitera(repo, "verify").code == 0


def test_confirmation_can_be_switched_off(repo: Path) -> None:
    synthetic_project(repo, frame_edits={"  sprint: 3\n": "  sprint: 3\n  confirm: false\n"})
    out, res = attempt(repo, f"accuracy: {two_row_gain(repo):.6f}\n", "two more rows right")
    assert "#1 KEEP: kept: gain" in out and "confirming" not in out, out
    assert res["confirm"] is None and res["trials"] == 3 and res["mode"] == "primary"


def test_diagnose_compares_a_confirmed_attempt_on_every_trial_its_decision_used(repo: Path) -> None:
    synthetic_project(repo)
    acc = two_row_gain(repo)
    # marginal on the first three trials; the fresh trials answer every row below 0.6 too, so the pooled gain is larger
    out, res = attempt(repo, f"accuracy: {acc:.6f}\n" + "".join(f"trial.{t}: 0.6\n" for t in (3, 4, 5)), "better in the fresh trials")
    assert "#1 KEEP: confirmed with 3 fresh trials" in out and res["trials"] == 6, out
    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]
    better = [r["id"] for r in dev if 0.5 <= u("row", r["id"]) < 0.6]  # right in some trial of the attempt, never for the baseline
    d = json.loads(run_gitera(repo, "diagnose", "--json").out)
    assert d["totals"] == {"win": len(better), "loss": 0, "tie": len(dev) - len(better), "crash": 0}, d["totals"]
