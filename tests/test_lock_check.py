"""`gitera lock --check` (issue 13): the harness runs once per arm before the frame is frozen, and a
harness that produces no score is refused with the lock not made."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from tests.conftest import git, run_gitera
from tests.helpers import SYNTHETIC, SYNTHETIC_FRAME

BRANCH = "autoexp/syn"


def unlocked_project(root: Path, harness: str | None = None, policy_b: str = "accuracy: 0.5\ncost: 0.001\n", rows: int = 200) -> None:
    """The synthetic experiment `syn`, framed but not locked; ``harness`` replaces the working harness."""
    if harness is None:
        shutil.copy(SYNTHETIC / "harness.py", root / "harness.py")
    else:
        (root / "harness.py").write_text(harness)
    (root / "policy_a.txt").write_text("accuracy: 0.5\ncost: 0.001\n")
    (root / "policy_b.txt").write_text(policy_b)
    (root / "data").mkdir()
    with (root / "data/rows.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row_id", "text", "label", "group"])
        for i in range(rows):
            w.writerow([f"s{i:05d}", f"message {i} about topic {i % 17}", f"L{i % 5}", ("g1", "g2", "g3")[i % 3]])
    (root / ".gitignore").write_text("data/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    assert run_gitera(root, "init", "syn").code == 0
    frame = (SYNTHETIC_FRAME.replace("ARMS_EXTRA", "").replace("EFFECT", "0.05").replace("MAX_ITER", "10")
             .replace("TIMEOUT", "20").replace("EVAL_EXTRA", ""))
    (root / ".gitera/syn/frame.yaml").write_text(frame)


def lock_commits(repo: Path) -> list[str]:
    return git(repo, "log", "--format=%H", "--grep=^Gitera-Lock: ", BRANCH).split()


def test_a_harness_that_prints_nothing_is_refused_and_nothing_is_locked(repo: Path) -> None:
    unlocked_project(repo, harness="import sys\n")
    r = run_gitera(repo, "lock", "--check")
    assert r.code == 5, r.out + r.err
    assert ("refusing to lock experiment syn: the harness produced no score for arms a, b (above); make eval.command write one JSON "
            "line per row with its `id` and a numeric `score` to $GITERA_OUT (docs/eval-contract.md), commit the fix, and run "
            "`gitera lock --check` again — nothing was locked.") in r.err, r.err
    assert "a                NO SCORE — the command exited 0 but wrote nothing to GITERA_OUT and printed no `SCORE:` line" in r.out, r.out
    assert "Traceback" not in r.err
    assert not (repo / ".gitera/syn/lock.json").exists() and lock_commits(repo) == []
    assert run_gitera(repo, "split").code == 3  # still unlocked: nothing downstream can start
    # nothing the check scored is cached (a check row must not reach the eval cache)
    cache = repo / ".git/gitera/cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))

    # the user fixes the harness, commits, and locks with the check
    shutil.copy(SYNTHETIC / "harness.py", repo / "harness.py")
    git(repo, "commit", "-qam", "a harness that scores")
    r = run_gitera(repo, "lock", "--check")
    assert r.code == 0, r.out + r.err
    assert "Harness check on train row" in r.out and "Locked experiment syn" in r.out
    [commit] = lock_commits(repo)
    trailer = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Lock,valueonly)", commit))
    check = trailer["check"]
    assert check["split"] == "train" and set(check["arms"]) == {"a", "b"} and all(isinstance(v, float) for v in check["arms"].values())
    assert trailer["spent_usd"] == 0.002  # one row per arm at $0.001: charged to the experiment's budget
    # the check row is the first row the split puts in train: never a row of the sealed test set
    assert run_gitera(repo, "split", "--accept-underpowered").code == 0
    train = [json.loads(x)["id"] for x in (repo / ".gitera/syn/split/train.jsonl").read_text().splitlines()]
    assert check["row"] == train[0]
    status = json.loads(run_gitera(repo, "status", "--json").out)
    assert status["stage"] == "split"
    assert run_gitera(repo, "verify").code == 0


def test_one_arm_that_crashes_is_named_with_its_error(repo: Path) -> None:
    unlocked_project(repo, policy_b="crash\n")
    r = run_gitera(repo, "lock", "--check")
    assert r.code == 5 and "no score for arm b (above)" in r.err, r.out + r.err
    assert "b                NO SCORE — the command exited with code 1" in r.out and "policy says crash" in r.out, r.out
    assert "a                score " in r.out
    assert lock_commits(repo) == []


def test_a_score_line_alone_is_refused_for_a_per_row_experiment(repo: Path) -> None:
    unlocked_project(repo, harness="print('SCORE: 0.8')\n")
    r = run_gitera(repo, "lock", "--check")
    assert r.code == 5, r.out + r.err
    assert "it printed only a `SCORE:` aggregate and wrote no result line to $GITERA_OUT" in r.out
    assert lock_commits(repo) == []


def test_dry_run_checks_and_locks_nothing_and_json_says_so(repo: Path) -> None:
    unlocked_project(repo)
    r = run_gitera(repo, "lock", "--dry-run", "--json")
    assert r.code == 0, r.out + r.err
    doc = json.loads(r.out)
    assert doc["locked"] is False and doc["check"]["ok"] is True and [a["arm"] for a in doc["check"]["arms"]] == ["a", "b"]
    assert all(a["problem"] is None and a["notes"] == [] for a in doc["check"]["arms"])
    assert lock_commits(repo) == [] and not (repo / ".gitera/syn/lock.json").exists()


SCORE_ONLY = """\
import json, os
rows = [json.loads(x) for x in open(os.environ["GITERA_ROWS"]) if x.strip()]
with open(os.environ["GITERA_OUT"], "w") as out:
    for row in rows:
        out.write(json.dumps({"id": row["id"], "score": 1.0}) + "\\n")
"""


def test_a_harness_that_scores_passes_and_what_the_pilot_will_refuse_is_said_early(repo: Path) -> None:
    unlocked_project(repo, harness=SCORE_ONLY)
    r = run_gitera(repo, "lock", "--check")
    assert r.code == 0, r.out + r.err
    assert "a                score 1" in r.out
    assert "note (the pilot will refuse it): arm a row 's00003' trial 0: `cost_usd` is missing or null" in r.out, r.out
    assert len(lock_commits(repo)) == 1


def test_the_check_needs_rows_and_says_where_to_get_them(repo: Path) -> None:
    unlocked_project(repo)
    frame = (repo / ".gitera/syn/frame.yaml").read_text().replace("  source: data/rows.csv\n", "")
    (repo / ".gitera/syn/frame.yaml").write_text(frame)
    # issue 14: no lock without data.source, with or without --check (the data is pre-registered)
    for args in (("--check",), ("--check", "--data", "data/rows.csv")):
        r = run_gitera(repo, "lock", *args)
        assert r.code == 2 and ".gitera/syn/frame.yaml:" in r.err and "data.source: is empty (null)" in r.err, r.err
    (repo / ".gitera/syn/frame.yaml").write_text(frame.replace("data:\n", "data:\n  source: data/elsewhere.csv\n", 1))
    assert run_gitera(repo, "lock", "--data", "data/rows.csv").code == 2  # --data goes with the check
    r = run_gitera(repo, "lock", "--check", "--data", "data/rows.csv")  # the check may read other rows than data.source
    assert r.code == 0, r.out + r.err
