"""gitera verdict end to end (issue 7): each decision on prepared data, the refusals, and what it records.

Real git repositories, the real deterministic policy harness, real encryption; every
assertion is what a user would check: the decision, the message, the exit code, the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gitera.core import stats
from tests.conftest import git, run_gitera
from tests.helpers import fix_holdout_seed, synthetic_project

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
    doc: dict[str, Any] = json.loads((root / ".gitera/syn/verdict.json").read_text())
    return doc


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
    assert d["slices"] == ["group=g1", "group=g2", "group=g3"]
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
    assert d["slices"] == ["group=g1", "group=g2"]
    states = {s["name"]: s["state"] for s in d["arms"][0]["slices"]}
    assert states == {"group=g1": "PASS", "group=g2": "PASS", "group=g3": "FAIL"}
    assert d["arms"][0]["aggregate"] == "PASS"
    md = (repo / doc["conclusion"] / "conclusion.md").read_text()
    assert "Ship b narrowly, to group=g1, group=g2 only: it clears the threshold overall but not on every slice." in md
    assert "b loses on slice group=g3" in md


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
    assert {s["name"]: s["state"] for s in by["b"]["slices"]}["group=g3"] == "FAIL"
    assert {s["state"] for s in by["c"]["slices"]} == {"PASS"}
    assert d["decision"] == "ship" and d["arm"] == "c"
    assert "b passes the aggregate but not every slice" in d["reasons"][0]
    assert set(doc["arms"]) == {"a", "b", "c"}


# --------------------------------------------------------------------------------------------
# 2. refusals
# --------------------------------------------------------------------------------------------


def test_after_the_verdict_verdict_iterate_and_run_refuse(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.8\n")
    verdict(repo)
    head = tip(repo)
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "has its verdict" in r.err, r.err
    assert "Traceback" not in r.err
    (repo / "policy_b.txt").write_text("accuracy: 0.9\n")
    r = run_gitera(repo, "iterate", "-m", "one more try after the verdict")
    assert r.code == 3 and "has its verdict" in r.err, r.err
    git(repo, "checkout", "--", "policy_b.txt")
    r = run_gitera(repo, "run")
    assert r.code == 3 and "has its verdict" in r.err, r.err
    assert tip(repo) == head
    assert git(repo, "tag", "--list", "gitera/syn/*").split() == ["gitera/syn/verdict"]
    # deleting verdict.json reopens nothing: the verdict's tag is in history
    git(repo, "rm", "-q", ".gitera/syn/verdict.json")
    git(repo, "commit", "-q", "--no-verify", "-m", "forget the verdict")
    head = tip(repo)
    for args in (("verdict",), ("run",)):
        r = run_gitera(repo, *args)
        assert r.code == 3 and "has its verdict" in r.err, (args, r.err)
    assert tip(repo) == head


def test_a_locked_file_committed_changed_and_restored_on_disk_is_refused(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.8\n")
    harness = repo / "harness.py"
    original = harness.read_bytes()
    harness.write_bytes(original + b"# a quiet change\n")
    git(repo, "commit", "-q", "--no-verify", "-am", "tweak the harness")
    harness.write_bytes(original)  # the work tree looks intact; the commit that would be scored is not
    for args in (("run",), ("verdict",), ("pilot",)):
        r = run_gitera(repo, *args)
        assert r.code == 3 and "harness.py (changed in the commit autoexp/syn points at)" in r.err, (args, r.err)


def test_verdict_refuses_a_dirty_tracked_file_and_names_it(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.8\n")
    head = tip(repo)
    (repo / "README.md").write_text("edited but not committed\n")
    r = run_gitera(repo, "verdict")
    assert r.code == 3, r.err
    assert "uncommitted changes (README.md)" in r.err and "commit or stash them" in r.err
    assert tip(repo) == head and not (repo / ".gitera/syn/verdict.json").exists()
    assert git(repo, "tag", "--list", "gitera/syn/*") == ""


def test_verdict_refuses_a_sprint_without_its_gate(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.5\n")
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    r = run_gitera(repo, "iterate", "-m", "raise accuracy to 0.7")
    assert r.code == 0, r.out + r.err
    head = tip(repo)
    r = run_gitera(repo, "verdict")
    assert r.code == 3, r.err
    assert "sprint 1 has 1 attempt(s) without its generalization gate; run `gitera gate` first." in r.err
    assert tip(repo) == head and not (repo / ".gitera/syn/verdict.json").exists()


def test_verdict_without_the_key_exits_4_and_records_nothing(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.8\n")
    head = tip(repo)
    (repo / ".git/gitera/keys/syn.key").unlink()
    r = run_gitera(repo, "verdict")
    assert r.code == 4, r.out + r.err
    assert "no seal key for experiment 'syn'" in r.err and "GITERA_SEAL_KEY" in r.err
    assert "Traceback" not in r.err
    assert tip(repo) == head
    assert git(repo, "status", "--porcelain") == ""
    assert not (repo / ".gitera/syn/verdict.json").exists() and not (repo / "docs").exists()
    assert git(repo, "tag", "--list", "gitera/syn/*") == ""


# --------------------------------------------------------------------------------------------
# 3. what the verdict records
# --------------------------------------------------------------------------------------------


def test_verdict_records_key_opening_tag_conclusion_and_charts(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.8\n")
    doc = verdict(repo)
    # the released key and the commitment's opening
    manifest = json.loads((repo / ".gitera/syn/split/manifest.json").read_text())
    assert doc["key_released"] is True and isinstance(doc["key"], str) and len(doc["key"]) >= 40
    assert doc["opening"]["commitment"] == manifest["commitment"]["value"]
    assert len(doc["opening"]["salt"]) == 64
    assert doc["n_test"] == len(doc["row_ids"]) == 120
    # the annotated tag on the verdict commit
    assert git(repo, "cat-file", "-t", "gitera/syn/verdict").strip() == "tag"
    assert git(repo, "rev-parse", "gitera/syn/verdict^{commit}").strip() == tip(repo)
    assert "Ship b" in git(repo, "tag", "-n1", "gitera/syn/verdict")
    # the one-page conclusion
    folder = repo / doc["conclusion"]
    assert folder.parent == repo / "docs/experiments" and folder.name.endswith("-syn")
    md = (folder / "conclusion.md").read_text()
    assert "**Ship b: it beats a by at least the registered 0.05 on the sealed test set and holds on every slice.**" in md
    assert "> Does policy B beat policy A?" in md
    assert "| slice | rows | a | b | effect | one-sided bounds | state |" in md
    for g in ("group=g1", "group=g2", "group=g3"):
        assert any(line.startswith(f"| {g} | 40 |") and line.endswith("| PASS |") for line in md.splitlines()), g
        # each side's slice score, with its Wilson interval (the harness scores 0 or 1 per row)
        for arm in ("a", "b"):
            info = doc["arms"][arm]["slices"][g]
            low, high = info["wilson"]
            assert info["n"] == 40 and low < info["score"] < high
            w = stats.wilson_interval(round(info["score"] * 40), 40, 0.05)
            assert (low, high) == (pytest.approx(w.low, abs=1e-6), pytest.approx(w.high, abs=1e-6))
            assert f"{info['score']:.3f} [{low:.3f}, {high:.3f}]" in next(line for line in md.splitlines() if line.startswith(f"| {g} | 40 |"))
    assert "- [x] locked files unchanged in every commit since the lock" in md
    assert "- [x] no sealed test row in any committed file before the verdict" in md
    assert "- [ ]" not in md
    data = json.loads((folder / "data.json").read_text())
    assert data["decision"]["decision"] == "ship" and "key" not in data and "row_ids" not in data
    assert all(c["ok"] for c in data["audit"])
    # charts: no attempts were made, so no progression chart
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["arm-bar.png", "arm-bar.svg", "conclusion.md", "cost-vs-accuracy.png", "cost-vs-accuracy.svg",
                            "data.json", "forest-plot.png", "forest-plot.svg"])
    assert (folder / "arm-bar.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (folder / "forest-plot.svg").read_bytes()[:2000]
    # everything is committed, nothing left behind
    assert git(repo, "status", "--porcelain") == ""
    committed = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert f"{doc['conclusion']}/conclusion.md" in committed and ".gitera/syn/verdict.json" in committed
    # the audit passes from git alone
    r = run_gitera(repo, "verify")
    assert r.code == 0, r.out
    assert "All checks pass." in r.out
    assert "ok   the verdict recomputed from the test rows is the same" in r.out


def test_verdict_after_iterations_draws_the_progression_and_locks_the_gate_passed_state(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.5\n")
    for acc in ("0.7", "0.72", "0.8"):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        r = run_gitera(repo, "iterate", "-m", f"accuracy {acc}")
        assert r.code == 0, r.out + r.err
    assert git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)").strip()  # sprint 1 closed by its gate
    seed = int((repo / ".git/gitera/keys/syn.holdout").read_text())
    assert str(seed) not in git(repo, "log", "--all", "-p", "--format=%B")  # secret while the loop runs
    doc = verdict(repo)
    assert doc["holdout_seed"] == seed  # released with the key, so a reviewer can replay the gate
    folder = repo / doc["conclusion"]
    assert (folder / "progression.png").exists() and (folder / "progression.svg").exists()
    md = (folder / "conclusion.md").read_text()
    assert "## Iterations" in md and "**#1**" in md
    assert doc["locked_iteration"] == 3  # the kept 0.8 policy passed sprint 1's gate
    assert "← locked for the verdict (latest gate-passed)" in md
    assert doc["arms"]["b"]["what"] == "iteration 3 (the latest gate-passed state)"
    assert doc["decision"]["decision"] == "ship" and doc["decision"]["arm"] == "b"
    r = run_gitera(repo, "verify")
    assert r.code == 0 and "All checks pass." in r.out, r.out


def test_keep_key_leaves_the_key_out_and_verify_still_passes(repo: Path) -> None:
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.8\n")
    doc = verdict(repo, "--keep-key")
    assert doc["key"] is None and doc["key_released"] is False and doc["holdout_seed"] is None
    assert doc["opening"]["commitment"]
    trailer = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Verdict,valueonly)").strip())
    assert trailer["key_released"] is False
    md = (repo / doc["conclusion"] / "conclusion.md").read_text()
    assert "kept by its custodian: --keep-key" in md
    r = run_gitera(repo, "verify")
    assert r.code == 0, r.out
    assert "key kept by its custodian (--keep-key): recomputed decision not checked here" in r.out
    assert "All checks pass." in r.out


def test_an_edited_loop_state_cannot_choose_the_iteration_the_verdict_scores(repo: Path) -> None:
    # runs/iterate.json is an ordinary committed file: an agent that marks its latest attempt as
    # gate-passed there is refused, because the Gitera-Gate trailers say which iteration passed
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.5\n")
    for acc in ("0.6", "0.7", "0.8", "0.9"):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        r = run_gitera(repo, "iterate", "-m", f"accuracy {acc}")
        assert r.code == 0, r.out + r.err
    state_path = repo / ".gitera/syn/runs/iterate.json"
    state = json.loads(state_path.read_text())
    assert state["gate_passed"]["iteration"] == 3 and state["best"]["iteration"] == 4
    state["in_sprint"], state["gate_passed"] = 0, state["best"]
    state_path.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    git(repo, "commit", "-q", "--no-verify", "-am", "mark #4 as gate-passed")
    head = tip(repo)
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "the Gitera-Gate trailers say 3" in r.err and "was edited" in r.err, r.err
    assert tip(repo) == head and not (repo / ".gitera/syn/verdict.json").exists()


# --------------------------------------------------------------------------------------------
# 4. every slice column, and severity weights (rule 16)
# --------------------------------------------------------------------------------------------


def tier(i: int) -> str:
    return "free" if (i // 3) % 3 == 0 else "gold"  # cuts across the groups (group = i % 3)


def test_every_slice_column_is_analysed_and_a_second_column_can_narrow_the_rollout(repo: Path) -> None:
    # b wins on every group but loses on the free tier, which cuts across the groups: analysing
    # only the first slice column (group) would ship it everywhere
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.85\ntier.free: 0.3\n", rows=900, columns={"tier": tier},
            frame_edits={"slices: [group]": "slices: [group, tier]"})
    doc = verdict(repo)
    d = doc["decision"]
    states = {s["name"]: (s["column"], s["state"]) for s in d["arms"][0]["slices"]}
    assert states == {"group=g1": ("group", "PASS"), "group=g2": ("group", "PASS"), "group=g3": ("group", "PASS"),
                      "tier=free": ("tier", "FAIL"), "tier=gold": ("tier", "PASS")}
    assert d["decision"] == "ship_narrowly" and d["arm"] == "b"
    assert d["slices"] == ["group=g1", "group=g2", "group=g3", "tier=gold"]
    assert doc["slice_columns"] == ["group", "tier"]
    md = (repo / doc["conclusion"] / "conclusion.md").read_text()
    assert ("Ship b narrowly, to rows in group=g1 or group=g2 or group=g3, and in tier=gold only: "
            "it clears the threshold overall but not on every slice.") in md
    assert any(line.startswith("| tier=free |") and "FAIL" in line for line in md.splitlines())
    svg = (repo / doc["conclusion"] / "forest-plot.svg").read_text()
    for name in states:
        assert f'id="marker-b-{name}"' in svg, name
    r = run_gitera(repo, "verify")
    assert r.code == 0 and "ok   the verdict recomputed from the test rows is the same" in r.out, r.out


def severity(i: int) -> str:
    return "10" if i % 3 == 0 else "1"  # group g1 (i % 3 == 0) is ten times as costly to get wrong


def test_severity_weights_decide_and_both_effects_are_recorded(repo: Path) -> None:
    # b gains 0.2 on the light groups and nothing on the heavy one: unweighted it clears the 0.05
    # threshold (+0.13), weighted it does not (+0.03); the frame registered the weights, so no ship
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.7\ngroup.g1: 0.5\n", rows=900, columns={"sev": severity},
            frame_edits={"trials: 3": "trials: 3\n  severity: sev"})
    doc = verdict(repo)
    d = doc["decision"]
    (b,) = d["arms"]
    assert doc["severity_column"] == "sev"
    assert 0.0 < b["effect"] < 0.045 and 0.08 < b["unweighted"]["effect"] < 0.18
    assert b["unweighted"]["ci_low"] < b["unweighted"]["effect"] < b["unweighted"]["ci_high"]
    assert b["aggregate"] != "PASS" and d["decision"] in ("underpowered", "kill")
    md = (repo / doc["conclusion"] / "conclusion.md").read_text()
    assert "severity-weighted by column `sev`" in md
    ci, uci = f"[{b['ci_low']:+.4f}, {b['ci_high']:+.4f}]", f"[{b['unweighted']['ci_low']:+.4f}, {b['unweighted']['ci_high']:+.4f}]"
    assert "| arm | effect vs baseline (weighted) | 95% CI | unweighted effect | unweighted 95% CI | p (Holm) | aggregate |" in md
    assert f"| b | {b['effect']:+.4f} | {ci} | {b['unweighted']['effect']:+.4f} | {uci} | {b['p_holm']:.3g} | {b['aggregate']} |" in md
    r = run_gitera(repo, "verify")
    assert r.code == 0, r.out
    assert "ok   the verdict recomputed from the test rows is the same" in r.out
    assert "ok   the recorded test effects match the per-row files" in r.out


def test_an_unweighted_winner_still_needs_the_weighted_effect(repo: Path) -> None:
    # rule 16 the other way round: weighted about +0.15 clears, unweighted about 0 does not: no ship either
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.4\ngroup.g1: 0.7\n", rows=900, columns={"sev": severity},
            frame_edits={"trials: 3": "trials: 3\n  severity: sev"})
    doc = verdict(repo)
    (b,) = doc["decision"]["arms"]
    assert b["effect"] > 0.1 and b["unweighted"]["effect"] < 0.05
    assert b["aggregate"] != "PASS" and doc["decision"]["decision"] != "ship"
    assert any("the severity-weighted effect clears the threshold but the unweighted one" in r for r in b["reasons"])


def test_a_bad_severity_weight_is_refused_at_the_split_before_the_test_set_is_sealed(repo: Path) -> None:
    # the verdict could find a bad weight only after recording the opening, which closes the
    # experiment: the split, which holds the rows in the clear, refuses it instead
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.8\n"}, columns={"sev": lambda i: "n/a"},
                      frame_edits={"trials: 3": "trials: 3\n  severity: sev"}, split=False)
    head = tip(repo)
    r = run_gitera(repo, "split", "--accept-underpowered")
    assert r.code == 2, r.out + r.err
    assert "has severity 'n/a' in column 'sev' (metric.severity); give every row a finite weight >= 0" in r.err
    assert "Traceback" not in r.err
    assert tip(repo) == head and not (repo / ".gitera/syn/split/test.seal").exists()


# --------------------------------------------------------------------------------------------
# 5. the loop in the conclusion: the gates, a kill, the dev–test gap (rule 21), best of N
# --------------------------------------------------------------------------------------------


def climb(root: Path, policies: list[str]) -> None:
    for i, text in enumerate(policies):
        (root / "policy_b.txt").write_text(text)
        r = run_gitera(root, "iterate", "-m", f"attempt {i + 1}")
        assert r.code == 0, r.out + r.err


def test_an_arm_that_climbed_on_dev_alone_raises_the_overfitting_alarm(repo: Path) -> None:
    # b's gains exist on the dev and gate rows only (the gate passes them), not on the test rows
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.5\n")
    fix_holdout_seed(repo)
    climb(repo, [f"accuracy: 0.5\nsplit.dev: {x}\nsplit.gate: {x}\n" for x in ("0.6", "0.7", "0.8")])
    doc = verdict(repo)
    assert doc["locked_iteration"] == 3
    locked_dev = next(x for x in results_of(repo) if x.get("kind") == "attempt" and x["iteration"] == 3)["score"]
    folder = repo / doc["conclusion"]
    data = json.loads((folder / "data.json").read_text())
    gap = {g["arm"]: g for g in data["dev_test_gap"]}
    assert gap["b"]["dev"] == locked_dev and gap["b"]["dev_source"] == "iteration 3, locked"  # not the run's pre-iteration 0.5
    assert gap["b"]["gap"] == pytest.approx(locked_dev - doc["arms"]["b"]["score"]) and gap["b"]["gap"] > 0.2
    assert gap["b"]["alarm"] is True and gap["a"]["alarm"] is False and gap["a"]["tuned"] is False
    md = (folder / "conclusion.md").read_text()
    assert "## Dev–test gap (rule 21)" in md
    assert f"| b | {locked_dev:.4f} (iteration 3, locked) | {doc['arms']['b']['score']:.4f} | {gap['b']['gap']:+.4f} | 0.0000 | ⚠ overfitting alarm |" in md
    assert f"Overfitting alarm: b: dev {locked_dev:.4f} (iteration 3, locked) vs test" in md
    assert data["best_of_n"]["n"] == 3 and data["best_of_n"]["optimism"] > 0
    assert "kept among 3 scored attempts" in md
    # the gate rows disagreed with dev (0.8 there too, but other rows): the holdout answered from them, noised
    gate = json.loads(next(x for x in git(repo, "log", "--format=%(trailers:key=Gitera-Gate,valueonly)", "autoexp/syn").splitlines() if x.strip()))
    assert gate["holdout_queries"][-1]["holdout_used"] is True and gate["replication"]["gate_gain"] != gate["replication"]["dev_gain"]
    assert "; the gate gain is the gate rows' own gain plus the reusable holdout's noise." in md.split("## Generalization gates")[1]
    # verify reports the alarm but it is no process violation
    r = run_gitera(repo, "verify")
    assert r.code == 0 and "All checks pass." in r.out, r.out
    assert f"ALARM overfitting alarm (rule 21): b: dev {locked_dev:.4f} (iteration 3, locked)" in r.out
    j = json.loads(run_gitera(repo, "verify", "--json").out)
    assert j["ok"] is True and j["violations"] == [] and len(j["alarms"]) == 1 and j["alarms"][0].startswith("overfitting alarm (rule 21): b:")


def test_a_gate_that_kills_the_arm_is_reported_with_its_numbers(repo: Path) -> None:
    # the sprint's gain exists on the dev rows only: replication on the gate rows fails, the arm is killed
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.5\n")
    fix_holdout_seed(repo)
    climb(repo, [f"accuracy: 0.5\nsplit.dev: {x}\n" for x in ("0.6", "0.7", "0.8")])
    gate = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)", "autoexp/syn").strip())
    assert gate["outcome"] == "fail" and gate["replication"]["passed"] is False
    doc = verdict(repo)
    assert doc["locked_iteration"] == 0 and doc["arms"]["b"]["what"].startswith("iteration 0 ")
    md = (repo / doc["conclusion"] / "conclusion.md").read_text()
    section = md.split("## Generalization gates")[1].split("\n## ")[0]
    assert "**Sprint 1** (after iteration 3" in section and "**fail** — the arm was killed." in section
    rep = gate["replication"]
    assert f"Replication failed: gate gain {rep['gate_gain']:+.4f} vs required {rep['required']:+.4f} (dev gain {rep['dev_gain']:+.4f})" in section
    # the gate rows disagreed with dev: the reusable holdout answered from them (a gate gain that is not the dev gain)
    assert gate["holdout_queries"][-1]["holdout_used"] is True
    assert "; the gate gain is the gate rows' own gain plus the reusable holdout's noise." in section
    assert "Hardcode scan: no hit." in section and "Saturation: not saturated" in section
    assert ("The generalization gate killed b after sprint 1; the verdict scored b at the state registered in the frame "
            "(no iteration passed a gate).") in section
    gaps = {g["arm"]: g for g in json.loads((repo / doc["conclusion"] / "data.json").read_text())["dev_test_gap"]}
    assert gaps["b"]["dev_source"] == "dev run" and gaps["b"]["alarm"] is False  # the killed climb is not what was scored


def results_of(root: Path) -> list[dict[str, Any]]:
    out = git(root, "log", "--format=%(trailers:key=Gitera-Result,valueonly,separator=%x1e)", "autoexp/syn")
    return [json.loads(x) for x in out.replace("\n", "\x1e").split("\x1e") if x.strip()]


def test_a_gate_gain_that_is_the_dev_gain_is_reported_as_such() -> None:
    # when the gate rows agree with dev within its tolerance, Thresholdout answers with the dev
    # gain itself (docs/gate.md): "gate gain +0.0088 (dev gain +0.0088)" must not read as a measurement
    from gitera.domain.conclusion import _replication

    rep = {"passed": True, "gate_gain": 0.00875, "required": 0.0, "dev_gain": 0.00875, "informative": False}
    assert _replication(rep, [{"query": 1, "holdout_used": False}]) == (
        "Replication passed: gate gain +0.0088 vs required +0.0000 (dev gain +0.0088), too few gate rows to tell half the gain "
        "from none; the gate rows agreed with dev within the reusable holdout's tolerance, so the gate gain is the dev gain.")
    assert _replication(rep, []).endswith("(dev gain +0.0088), too few gate rows to tell half the gain from none.")


# --------------------------------------------------------------------------------------------
# 6. a verdict killed mid-way leaves no test row in the clear for the next command
# --------------------------------------------------------------------------------------------


def test_a_killed_verdict_leaves_no_plaintext_test_rows_behind_and_stays_opened(repo: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import BIN_DIR
    from tests.helpers import SYNTHETIC, read_test_rows

    # the harness hangs when it scores the test split, so the verdict is killed while the sealed
    # rows sit decrypted in its work directory and in the scoring work dir's rows file
    harness = tmp_path / "harness.py"
    harness.write_text((SYNTHETIC / "harness.py").read_text().replace(
        "    trial = int(os.environ[\"GITERA_TRIAL\"])",
        "    if os.environ.get(\"GITERA_SPLIT\") == \"test\":\n        time.sleep(120)\n    trial = int(os.environ[\"GITERA_TRIAL\"])", 1))
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.8\n", harness=harness)
    state = repo / ".git/gitera"
    test_text = read_test_rows(repo, tag="syn")[0]["text"]

    def plaintext() -> list[Path]:
        # os.walk, not rglob: a directory the dead man's switch removes mid-walk is skipped, not an error
        found = []
        for d, _, files in os.walk(state):
            for name in files:
                p = Path(d) / name
                try:
                    if name.endswith(".jsonl") and p.is_file() and test_text in p.read_text(errors="replace"):
                        found.append(p)
                except OSError:  # removed while we looked
                    continue
        return found

    env = {**os.environ, "PATH": BIN_DIR + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "gitera", "verdict"], cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not plaintext() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert plaintext(), "the verdict never reached its test scoring"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # no finally runs on SIGKILL: the verdict's dead man's switch destroys what it left, with no
    # gitera command run meanwhile (tests/test_integrity_verdict.py plays every kill point)
    deadline = time.monotonic() + 30
    while plaintext() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert plaintext() == []
    r = run_gitera(repo, "run")  # the opening was recorded before the key was used: the experiment is closed
    assert r.code == 3 and "opened the sealed test set" in r.err, r.out + r.err


def test_without_slice_columns_the_conclusion_says_no_slice_was_checked() -> None:
    from gitera.domain.conclusion import _slice_floor

    assert _slice_floor(0.02, {"slice_columns": []}) == (
        "- Slice loss floor: 0.02, unused: the frame registers no slice column (data.slices), so no slice was checked.")
    assert _slice_floor(0.02, {"slice_columns": ["tier", "region"]}) == "- Slice loss floor: 0.02 (one-sided lower bound per slice of `tier`, `region`)."
    assert _slice_floor(0.02, {"slice_column": "tier"}).endswith("per slice of `tier`).")  # an older verdict.json


def test_a_verdict_whose_tag_is_missing_still_closes_the_experiment(repo: Path) -> None:
    # the verdict commits, then tags: a kill in between (or a clone without tags) leaves no tag.
    # Removing verdict.json must not be the way out — that reopened the sealed set for a second verdict
    project(repo, a="accuracy: 0.5\n", b="accuracy: 0.8\n")
    verdict(repo)
    opened = tip(repo)
    git(repo, "tag", "-d", "gitera/syn/verdict")
    for command in (("run",), ("verdict",), ("iterate", "-m", "more")):
        r = run_gitera(repo, *command)
        assert r.code == 3, r.out + r.err
        assert f"the verdict of experiment syn ran in {opened[:10]} but its tag gitera/syn/verdict is missing" in r.err, r.err
    assert tip(repo) == opened
    status = run_gitera(repo, "status")  # status explains it too, rather than showing an open experiment
    assert "stage: concluded?" in status.out and "its tag gitera/syn/verdict is missing" in status.out, status.out
    git(repo, "tag", "-a", "gitera/syn/verdict", opened[:10], "-m", "verdict")  # the sentence's own fix
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "has its verdict" in r.err, r.err
    assert json.loads(run_gitera(repo, "status", "--json").out)["stage"] == "concluded"
