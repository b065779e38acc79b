"""Judge mode: blind labels, cross-judge agreement recorded, the verdict refuses a flagged metric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gitera.domain.judging import blind_label, cross_check
from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project


def test_blind_labels_are_a_per_row_shuffle() -> None:
    arms = ["a", "b", "c"]
    labels = {arm: [blind_label("seed", f"r{i}", arms, arm) for i in range(50)] for arm in arms}
    for i in range(50):
        assert len({labels[a][i] for a in arms}) == 3  # distinct per row
    assert len({tuple(labels[a][i] for a in arms) for i in range(50)}) > 1  # the order changes across rows
    assert all(not lab.endswith(("a", "b", "c")) for lab in labels["a"])


def test_cross_check_thresholds() -> None:
    ones = {str(i): 1.0 for i in range(5)}
    assert cross_check(ones, {**ones, "0": 0.0})["fine"] is True
    flagged = cross_check(ones, {**ones, "0": 0.0, "1": 0.0})
    assert flagged["flagged"] is True and flagged["disagree"] == 2


def test_judge_replaces_scores_blind_and_cross_judge_flags(repo: Path) -> None:
    extra = ", judge: {command: JUDGE_SEEN_FILE=/tmp/none python judge.py, family: fam-x}, cross_judge: {command: python judge.py --contrarian, family: fam-y}"
    seen = repo.parent / "judge_seen.jsonl"
    extra = extra.replace("/tmp/none", str(seen))
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.7\n"},
                      eval_extra=extra, locked_extra=("judge.py",))
    r = run_gitera(repo, "run", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    # the judge's scores equal the harness's own (it reads label-<score>), so the result is unchanged but judged
    assert 0.6 < summary["arms"]["b"]["score"] < 0.8
    shown = [json.loads(x) for x in seen.read_text().splitlines()]
    assert shown and all(s["arm_env"] == "judge" for s in shown)
    assert all(c.startswith("response-") for s in shown for c in s["candidates"])
    assert "candidate" in shown[0]["keys"] and "output" in shown[0]["keys"]
    cj = summary["cross_judge"]
    assert cj["flagged"] is True and all(a["rows"] == 5 for a in cj["arms"].values())
    r = run_gitera(repo, "verdict")
    assert r.code == 3 and "cross-judge disagreed" in r.err


def test_lock_refuses_a_same_family_judge_without_cross_judge(repo: Path) -> None:
    from gitera.adapters.yamlio import load_with_lines
    from gitera.core.errors import ConfigError
    from gitera.core.frame import parse_frame
    from tests.helpers import SYNTHETIC_FRAME

    text = (SYNTHETIC_FRAME.replace("ARMS_EXTRA", "").replace("EFFECT", "0.05").replace("MAX_ITER", "5").replace("TIMEOUT", "10")
            .replace("EVAL_EXTRA", ", judge: {command: python judge.py, family: gpt}")
            .replace("params: {policy: policy_b.txt}", "params: {policy: policy_b.txt, family: gpt}"))
    data, lines = load_with_lines(text, "frame.yaml")
    try:
        parse_frame(data, lines, "frame.yaml")
    except ConfigError as exc:
        assert "shares family 'gpt' with arm b" in exc.message
    else:
        raise AssertionError("a same-family judge without a cross-judge was accepted")


def _seen(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_the_judge_runs_in_one_neutral_checkout_with_nothing_naming_the_arm_and_gets_the_full_output(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = repo.parent / "judge_seen.jsonl"
    monkeypatch.setenv("JUDGE_SEEN_FILE", str(seen))
    synthetic_project(
        repo, rows=100,
        policies={"policy_a.txt": "accuracy: 0.5\npad: 3000\n", "policy_b.txt": "accuracy: 0.7\npad: 70000\n", "policy_z.txt": "accuracy: 0.6\n"},
        extra_arms="  zebra: {change: a third policy, params: {policy: policy_z.txt}}",
        eval_extra=", judge: {command: python judge.py, family: fam-x}, cross_judge: {command: python judge.py, family: fam-y}",
        locked_extra=("judge.py",),
    )
    r = run_gitera(repo, "run", "--json")
    assert r.code == 0, r.err
    shown = _seen(seen)  # the pilot's judge calls and the run's, the cross-judge's included
    assert len(shown) > 6
    cwds = {s["cwd"] for s in shown}
    assert len(cwds) == 1 and cwds.pop().endswith("/.git/gitera/worktrees/judge")
    for s in shown:
        env = s["env"]
        assert env["GITERA_ARM"] == "judge" and env["GITERA_ARM_PARAMS"] == "{}"
        leaks = {k: v for k, v in env.items() for name in ("zebra", "policy_z", "policy_b", "arm-a", "arm-b") if name in v}
        assert leaks == {}
        assert Path(env["GITERA_ROWS"]).parent.parent.name.startswith("judge-")
        assert all(c.startswith("response-") for c in s["candidates"])
    lengths = {n for s in shown for n in s["lengths"]}
    assert {7, 3007, 64 * 1024} <= lengths and max(lengths) == 64 * 1024  # full outputs, capped at 64 KiB
    summary = json.loads(r.out)
    for arm in ("a", "b", "zebra"):
        rows = [json.loads(x) for x in (repo / summary["arms"][arm]["rows_file"]).read_text().splitlines()]
        assert max(len(x["output"]) for x in rows) <= 500  # the committed files keep the excerpt
    assert summary["cross_judge"]["flagged"] is False
    # the judge's checkout holds the project but not the run records that name each arm's outputs
    checkout = repo / ".git/gitera/worktrees/judge"
    assert (checkout / "judge.py").exists() and git(repo, "ls-tree", "autoexp/syn~1", ".gitera/syn/runs/pilot.json").strip()
    assert not (checkout / ".gitera/syn/runs").exists()


def test_judge_results_are_cached_by_judge_files_row_output_and_trial(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitera.adapters.git import Repo
    from gitera.adapters.output import Output
    from gitera.domain.experiment import Experiment
    from gitera.domain.scoring import Scorer, arm_commit, load_split

    seen = repo.parent / "judge_seen.jsonl"
    monkeypatch.setenv("JUDGE_SEEN_FILE", str(seen))
    synthetic_project(repo, rows=100, eval_extra=", judge: {command: python judge.py, family: fam-x}", pilot=False)
    exp = Experiment(Repo.find(repo), "syn")
    scorer = Scorer(exp, exp.load_frame(), exp.read_lock(), Output(quiet=True))
    rows = load_split(exp, "dev")[:6]

    def judged(trials: list[int], rows: list[dict[str, Any]] = rows) -> int:
        before = sum(len(s["ids"]) for s in _seen(seen))
        run = scorer.score("b", arm_commit(exp, scorer.frame, "b"), rows, "dev", trials)
        assert run.complete
        return sum(len(s["ids"]) for s in _seen(seen)) - before

    def commit(path: str, text: str) -> None:
        (repo / path).write_text(text)
        git(repo, "commit", "-q", "-am", f"edit {path}")

    assert judged([0]) == 6
    assert judged([0]) == 0  # unchanged: no judge call
    assert judged([0, 1]) == 6  # a new trial index is a new entry
    assert judged([0], [{**rows[0], "text": "edited"}, *rows[1:]]) == 1  # an edited row
    commit("policy_b.txt", "accuracy: 0.5\n# an iteration\n")
    assert judged([0]) == 0  # the arm ran again (new tree), same outputs: the judge is not paid again
    monkeypatch.setenv("SYN_OUTPUT_SUFFIX", " (reworded)")
    commit("policy_b.txt", "accuracy: 0.5\n# another iteration\n")
    assert judged([0]) == 6  # changed outputs
    commit("judge.py", (repo / "judge.py").read_text() + "# a changed rubric\n")
    assert judged([0]) == 0  # a judge file committed after the lock is not the judge: the lock commit's is (issue 12)


JUDGES = ", judge: {command: python judge.py, family: fam-x}, cross_judge: {command: python judge.py, family: fam-y}"


def test_judge_and_cross_judge_spend_is_recorded_in_the_trailers(repo: Path) -> None:
    from gitera.adapters.git import Repo
    from gitera.domain.scoring import spent_so_far

    synthetic_project(repo, rows=100, eval_extra=JUDGES, locked_extra=("judge.py",), max_cost_usd=10)
    before = spent_so_far(Repo.find(repo), "autoexp/syn", "syn")
    r = run_gitera(repo, "run", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    n = summary["arms"]["a"]["n"]
    cross = 2 * 5 * 0.00001
    assert summary["cross_judge"]["spent_usd"] == pytest.approx(cross)
    assert summary["arms"]["a"]["spent_usd"] == pytest.approx(n * 3 * (0.0001 + 0.00001) + 5 * 0.00001)
    after = spent_so_far(Repo.find(repo), "autoexp/syn", "syn")
    assert after - before == pytest.approx(2 * n * 3 * (0.0001 + 0.00001) + cross)


def test_a_judge_dearer_than_the_pilot_said_is_stopped_in_flight_within_the_cap(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pilot judged at $0.00001 a row; in the run the judge costs $0.003 (300x) and takes 30 ms
    a row: its running invocations are stopped as soon as its first costs stream in."""
    from gitera.adapters.git import Repo
    from gitera.domain.scoring import spent_so_far

    pilot = 2 * (0.0001 + 0.00001)
    dev = 240  # 600 rows: 300 dev, 20 % of them reserved for the gate; the judge's shards hold 30 rows
    cap = pilot + dev * 3 * 0.0001 + 0.03  # arm a fits; of its 720 judge calls, ten
    synthetic_project(repo, eval_extra=JUDGES, locked_extra=("judge.py",), max_cost_usd=cap)
    monkeypatch.setenv("JUDGE_COST", "0.003")
    monkeypatch.setenv("JUDGE_SLEEP", "0.03")
    r = run_gitera(repo, "run", "--json")
    assert r.code == 5, r.out + r.err
    summary = json.loads(r.out)
    assert list(summary["arms"]) == ["a"] and summary["arms"]["a"]["statuses"]["missing"] > 0
    assert "arm a: judge: at the observed $0.0030 per call" in r.err and "running invocation(s)" in r.err, r.err
    spent = spent_so_far(Repo.find(repo), "autoexp/syn", "syn")
    assert pilot + dev * 3 * 0.0001 < spent <= cap + 1e-9  # before: both 120-row judge shards ran to their end, $0.79 in all


def test_judge_calls_are_charged_to_the_arm_budget_and_stop_before_exceeding_it(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitera.adapters.git import Repo
    from gitera.domain.scoring import spent_so_far

    monkeypatch.setenv("JUDGE_COST", "0.0001")  # the judge costs as much as the arm
    pilot = 2 * (0.0001 + 0.0001)
    dev = 40  # 100 rows: 50 dev, of which 20 % are reserved for the gate
    cap = pilot + dev * 3 * 0.0001 + 0.006  # the baseline arm fits, its judge only in part
    synthetic_project(repo, rows=100, eval_extra=JUDGES, locked_extra=("judge.py",), max_cost_usd=cap)
    r = run_gitera(repo, "run", "--json")
    assert r.code == 5, r.out + r.err
    summary = json.loads(r.out)
    assert summary["arms"]["a"]["n"] == dev and list(summary["arms"]) == ["a"]  # arm b was not started
    assert summary["arms"]["a"]["statuses"]["missing"] > 0 and "budget" in r.err
    spent = spent_so_far(Repo.find(repo), "autoexp/syn", "syn")
    assert pilot + dev * 3 * 0.0001 < spent <= cap + 1e-9  # judge calls were made, charged and recorded
