"""Judge mode: blind labels, cross-judge agreement recorded, the verdict refuses a flagged metric."""

from __future__ import annotations

import json
from pathlib import Path

from gitera.judging import blind_label, cross_check
from tests.conftest import run_gitera
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
    from gitera.errors import ConfigError
    from gitera.frame import parse_frame
    from gitera.yamlio import load_with_lines
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
