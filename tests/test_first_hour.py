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
