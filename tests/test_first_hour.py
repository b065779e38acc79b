"""The first hour with gitera (issue 14): what a newcomer meets, through the real CLI in real repos.

The gate line, the frame template's choices, `data.source`, `init` on an experiment branch, a
copied repository, and the restore advice of `gitera status`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gitera.core.gate import AGREED
from tests.conftest import git, run_gitera
from tests.helpers import fix_holdout_seed, synthetic_project


def gate_trailer(root: Path) -> dict[str, Any]:
    out = git(root, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)", "autoexp/syn")
    return dict(json.loads(out.strip()))


def numbers(text: str) -> list[str]:
    return re.findall(r"[+-]\d+\.\d{4}", text)


# --- the gate line ---------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "revealed"), [(1, True), (2, False)])
def test_the_gate_line_never_prints_two_equal_numbers_without_saying_why(repo: Path, seed: int, revealed: bool) -> None:
    # a sprint whose gain is real on every split: the reusable holdout either answers from the
    # climbing rows (then the "gate gain" IS the dev gain) or reveals the gate rows' own gain
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.5\n"})
    fix_holdout_seed(repo, seed=seed)
    assert run_gitera(repo, "run").code == 0
    out = ""
    for acc in ("0.6", "0.7", "0.8"):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        r = run_gitera(repo, "iterate", "-m", f"accuracy {acc}")
        assert r.code == 0, r.out + r.err
        out = r.out
    line = next(x for x in out.splitlines() if "gate after sprint 1" in x)
    gate = gate_trailer(repo)
    used = gate["holdout_queries"][0]["holdout_used"]
    assert used is revealed  # the seed's Thresholdout draws decide which answer this repo gets
    rep = gate["replication"]
    if used:
        assert AGREED not in line and f"gate gain {rep['gate_gain']:+.4f}" in line and f"(dev gain {rep['dev_gain']:+.4f})" in line
    else:
        assert rep["gate_gain"] == rep["dev_gain"]
        assert f"{AGREED} {rep['gate_gain']:+.4f} >= required {rep['required']:+.4f}" in line, line
    found = numbers(line)
    repeated = {n for n in found if found.count(n) > 1}
    assert not repeated or AGREED in line, line
    # the committed gate record says the same, so the reviewer reads what the user read
    assert line.split(" — ", 1)[1] == "; ".join(gate["reasons"])


# --- the frame template and the lock ---------------------------------------------------------


def init_filled(root: Path, *extra: str) -> Path:
    """`gitera init` with every option but the threshold, the slice loss floor and the data."""
    from tests.helpers import write_project

    write_project(root)
    r = run_gitera(root, "init", "t1", "-q", "Does v2 beat v1?", "--hypothesis", "v2 names the processor.",
                   "--arm", "v1=current rules", "--arm", "v2=adds one rule", "--baseline", "v1",
                   "--baseline-ref", "src/route.py:3", "--eval-command", "python eval/run.py", "--locked", "eval/run.py", *extra)
    assert r.code == 0, r.err
    return root / ".gitera/t1/frame.yaml"


def lock_error(root: Path) -> str:
    before = git(root, "rev-parse", "autoexp/t1")
    r = run_gitera(root, "lock")
    assert r.code == 2 and r.out == "", r.out + r.err
    assert git(root, "rev-parse", "autoexp/t1") == before and not (root / ".gitera/t1/lock.json").exists()
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    return r.err


def line_of(frame: Path, text: str) -> int:
    return next(i for i, line in enumerate(frame.read_text().splitlines(), 1) if text in line)


def test_the_template_leaves_threshold_and_loss_floor_to_the_user_and_lock_names_each(repo: Path) -> None:
    frame = init_filled(repo)
    text = frame.read_text()
    assert "effect: 0.05" not in text and "slice_loss_floor: 0.02" not in text  # no default a lock would accept
    err = lock_error(repo)
    assert f".gitera/t1/frame.yaml:{line_of(frame, 'effect:')}: threshold.effect: still holds the template's TODO placeholder" in err, err
    frame.write_text(re.sub(r"effect: .*", "effect: 0.04", text, count=1))
    err = lock_error(repo)
    assert f".gitera/t1/frame.yaml:{line_of(frame, 'slice_loss_floor:')}: threshold.slice_loss_floor: still holds" in err, err
    frame.write_text(frame.read_text().replace(re.search(r"slice_loss_floor: .*", text)[0], "slice_loss_floor: 0.03"))  # type: ignore[index]
    # every TODO filled, but no data named: the split would read whatever file someone names later
    err = lock_error(repo)
    assert f".gitera/t1/frame.yaml:{line_of(frame, 'source:')}: data.source: is empty (null); name the file of production rows" in err, err
    frame.write_text(frame.read_text().replace("source: null", 'source: "data/rows.csv"'))
    r = run_gitera(repo, "lock")
    assert r.code == 0, r.err
    assert (repo / ".gitera/t1/lock.json").exists()


def test_options_fill_the_threshold_and_the_data_so_the_template_locks_at_once(repo: Path) -> None:
    init_filled(repo, "--threshold", "0.05", "--slice-loss-floor", "0.02", "--data", "data/rows.csv")
    r = run_gitera(repo, "lock")
    assert r.code == 0, r.err
