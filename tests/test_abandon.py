"""`gitera abandon` (issue 13): why is recorded, nothing is released, the tag is free again, and the
abandoned history stays on a branch a reviewer can read, which `verify` and the hooks understand."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

from tests.conftest import git, run_gitera
from tests.helpers import all_blobs, synthetic_project

TODAY = datetime.now(timezone.utc).strftime("%Y-%m-%d")
KEPT = f"autoexp-abandoned/syn-{TODAY}"


def current_branch(repo: Path) -> str:
    return git(repo, "symbolic-ref", "--short", "HEAD").strip()


def test_abandon_records_why_releases_nothing_and_frees_the_tag(repo: Path) -> None:
    synthetic_project(repo, rows=150)
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    assert run_gitera(repo, "iterate", "-m", "a first idea").code == 0
    assert run_gitera(repo, "gate").code == 0  # its record key MACs the gate records
    assert (repo / ".git/gitera/keys/syn.recordkey").exists()
    key_file = repo / ".git/gitera/keys/syn.key"
    key = key_file.read_text().strip()
    (repo / "notes.md").write_text("my notes, untracked\n")

    r = run_gitera(repo, "abandon", "-m", "the harness scored the wrong field")
    assert r.code == 0, r.out + r.err
    assert f"Its history is kept on branch {KEPT} (now checked out" in r.out and "the sealed test set stays sealed" in r.out
    assert current_branch(repo) == KEPT and git(repo, "branch", "--list", "autoexp/syn").strip() == ""
    kept_tip = git(repo, "rev-parse", KEPT).strip()
    assert (repo / "notes.md").read_text() == "my notes, untracked\n"
    record = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Abandon,valueonly)", KEPT))
    assert record["reason"] == "the harness scored the wrong field" and record["released"] is False
    assert record["branch"] == KEPT and record["from"] == "autoexp/syn" and record["iteration"] == 1 and record["split"] is True

    # nothing is released: the key is in no git object and no message, and it is kept (0600) under another name
    assert not key_file.exists()
    kept = repo / f".git/gitera/keys/syn.key.abandoned-{TODAY}"
    assert kept.read_text().strip() == key and stat.S_IMODE(os.stat(kept).st_mode) == 0o600
    gate_key = repo / f".git/gitera/keys/gate/syn.key.abandoned-{TODAY}"  # the gate rows' key, set aside alike
    assert stat.S_IMODE(os.stat(gate_key).st_mode) == 0o600 and not (repo / ".git/gitera/keys/gate/syn.key").exists()
    assert (repo / f".git/gitera/keys/source/syn.abandoned-{TODAY}/rows.csv").exists()  # the moved data file too
    assert (repo / f".git/gitera/keys/syn.recordkey.abandoned-{TODAY}").exists() and not (repo / ".git/gitera/keys/syn.recordkey").exists()
    assert all(key.encode() not in blob for blob in all_blobs(repo))
    assert key not in git(repo, "log", "--all", "--format=%B")
    assert not (repo / ".gitera/syn/verdict.json").exists()

    # the abandoned experiment: readable, refused by every command that would change it, audited by verify
    status = run_gitera(repo, "status")
    assert "stage: abandoned" in status.out and "ABANDONED" in status.out and "next:" not in status.out
    assert "abandoned" in run_gitera(repo, "log").out
    for args in (("iterate", "-m", "one more"), ("run",), ("verdict",), ("gate",), ("pilot",)):
        r = run_gitera(repo, *args)
        assert r.code == 3 and "experiment syn was abandoned" in r.err and f"its history stays on branch {KEPT}" in r.err, (args, r.err)
    r = run_gitera(repo, "verify")
    assert r.code == 0, r.out
    assert "ok   the experiment was abandoned, not concluded" in r.out and "ok   nothing recorded for the experiment after its abandonment" in r.out
    assert run_gitera(repo, "abandon", "-m", "again").code == 3

    # the tag is free: from main, a new experiment `syn` starts, splits (its own key) and is audited on its own
    r = run_gitera(repo, "init", "syn")
    assert r.code == 3 and "the branch an abandoned experiment is kept on" in r.err
    git(repo, "switch", "-q", "main")
    r = run_gitera(repo, "iterate", "--tag", "syn", "-m", "x")
    assert r.code == 2 and f"experiment syn was abandoned (its history is on {KEPT}" in r.err, r.err
    assert run_gitera(repo, "init", "syn").code == 0
    (repo / ".gitera/syn/frame.yaml").write_text(git(repo, "show", f"{KEPT}:.gitera/syn/frame.yaml").replace("seed: 3", "seed: 4"))
    assert run_gitera(repo, "lock").code == 0
    (kept_source,) = (repo / ".git/gitera/keys/source").glob("syn.abandoned-*/rows.csv")  # the first split moved it there
    (repo / "data/rows.csv").write_bytes(kept_source.read_bytes())
    r = run_gitera(repo, "split", "--accept-underpowered")
    assert r.code == 0, r.err
    assert key_file.read_text().strip() != key
    assert "abandoned" not in run_gitera(repo, "log").out and run_gitera(repo, "verify").code == 0
    assert git(repo, "rev-parse", KEPT).strip() == kept_tip  # the new experiment leaves the kept branch as it was

    # abandoned twice on one day: each keeps its own branch and key
    r = run_gitera(repo, "abandon", "-m", "second thoughts")
    assert r.code == 0 and current_branch(repo) == f"{KEPT}-2", r.out + r.err
    assert (repo / f".git/gitera/keys/syn.key.abandoned-{TODAY}-2").exists()


def test_what_happens_to_an_abandoned_branch_later_is_caught(repo: Path) -> None:
    synthetic_project(repo, rows=150)
    assert run_gitera(repo, "abandon", "-m", "wrong question").code == 0
    # the hooks still protect its locked files: the abandoned history is evidence
    (repo / "harness.py").write_text("print('SCORE: 1.0')\n")
    git(repo, "add", "harness.py")
    r = run_gitera(repo, "hook", "locked", "--stage", "pre-commit")
    assert r.code == 3 and "harness.py is locked by experiment syn" in r.err, r.err
    git(repo, "reset", "-q", "--hard")
    # a result forged onto the abandoned branch afterwards (hooks skipped) is a violation for verify
    (repo / ".gitera/syn/runs/late.json").write_text("{}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", "a late attempt\n\nGitera-Tag: syn\nGitera-Result: {\"kind\":\"attempt\",\"iteration\":9}")
    r = run_gitera(repo, "verify")
    assert r.code == 1 and "FAIL nothing recorded for the experiment after its abandonment: later commits" in r.out, r.out


def test_abandon_needs_a_reason_and_the_experiments_branch(repo: Path) -> None:
    synthetic_project(repo, rows=150)
    assert run_gitera(repo, "abandon").code == 2
    r = run_gitera(repo, "abandon", "-m", "   ")
    assert r.code == 2 and 'say why the experiment is abandoned' in r.err
    git(repo, "switch", "-q", "main")
    r = run_gitera(repo, "abandon", "--tag", "syn", "-m", "from main")
    assert r.code == 2 and "run `git switch autoexp/syn` first" in r.err, r.err
    assert git(repo, "branch", "--list", "autoexp/syn").strip() != ""


def test_an_experiment_abandoned_before_its_lock_verifies_and_frees_its_tag(repo: Path) -> None:
    assert run_gitera(repo, "init", "draft").code == 0
    r = run_gitera(repo, "abandon", "-m", "asked the wrong question", "--json")
    assert r.code == 0 and json.loads(r.out)["locked"] is False and json.loads(r.out)["key"] is None
    r = run_gitera(repo, "verify")
    assert r.code == 0 and "the experiment was abandoned, not concluded: " in r.out, r.out
    git(repo, "switch", "-q", "main")
    assert run_gitera(repo, "init", "draft").code == 0


def test_an_abandon_killed_before_the_rename_is_finished_by_running_it_again(repo: Path) -> None:
    synthetic_project(repo, rows=150)
    assert run_gitera(repo, "abandon", "-m", "stop").code == 0
    # put things back as a kill right after the commit leaves them: the branch and the key not renamed yet
    git(repo, "branch", "-m", KEPT, "autoexp/syn")
    keys = repo / ".git/gitera/keys"
    (keys / f"syn.key.abandoned-{TODAY}").rename(keys / "syn.key")
    r = run_gitera(repo, "iterate", "-m", "sneaking in")
    assert r.code == 3 and "experiment syn was abandoned" in r.err  # the committed record already closes it
    r = run_gitera(repo, "abandon", "-m", "stop")
    assert r.code == 0, r.err
    assert current_branch(repo) == KEPT and (keys / f"syn.key.abandoned-{TODAY}").exists() and not (keys / "syn.key").exists()
    assert git(repo, "log", "--format=%s", KEPT).count("gitera abandon: syn") == 1  # recorded once
