"""pilot, run and iterate end to end on a real repo with a real (deterministic) harness."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project


def trailer_json(repo: Path, key: str, rev: str = "HEAD") -> list[dict[str, object]]:
    out = git(repo, "log", "-1", f"--format=%(trailers:key=Gitera-{key},valueonly,separator=%x1e)", rev)
    return [json.loads(x) for x in out.strip().split("\x1e") if x.strip()]


def test_run_records_each_arm_and_the_noise_floor_without_touching_user_work(repo: Path) -> None:
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\nnoise: 0.05\n", "policy_b.txt": "accuracy: 0.7\n"})
    (repo / "notes.txt").write_text("my untracked notes\n")
    (repo / "README.md").write_text("edited, unstaged\n")
    before = git(repo, "status", "--porcelain")
    r = run_gitera(repo, "run")
    assert r.code == 0, r.err
    assert git(repo, "status", "--porcelain") == before
    assert (repo / "notes.txt").read_text() == "my untracked notes\n"
    results = trailer_json(repo, "Result")
    assert [x["arm"] for x in results] == ["a", "b"]
    base, b = results
    assert base["status"] == "baseline" and base["noise_floor"] is not None and base["noise_floor"] > 0
    assert b["n"] == base["n"] and b["trials"] == 3
    assert abs(b["delta"] - (b["score"] - base["score"])) <= 1.5e-6  # each of the three is rounded to 6 decimals
    rows = [json.loads(x) for x in (repo / str(b["rows"])).read_text().splitlines()]
    assert len(rows) == b["n"] * 3 and {x["trial"] for x in rows} == {0, 1, 2}
    # a second run is served from the cache: identical scores, no harness call
    r2 = run_gitera(repo, "run", "--json")
    assert r2.code == 0
    assert json.loads(r2.out)["arms"]["b"]["score"] == b["score"]


def test_run_refuses_without_a_passed_pilot(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    synthetic_project(root)
    git(root, "rm", "-q", "--cached", ".gitera/syn/runs/pilot.json")
    git(root, "commit", "-q", "-m", "drop the pilot (test)")
    (root / ".gitera/syn/runs/pilot.json").unlink()
    r = run_gitera(root, "run")
    assert r.code == 3 and "has no passed pilot" in r.err


def test_iterate_keep_discard_crash_guard_and_restore(repo: Path) -> None:
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.5\n"})
    policy = repo / "policy_b.txt"
    (repo / "scratch.md").write_text("untouched\n")

    policy.write_text("accuracy: 0.65\n")
    r = run_gitera(repo, "iterate", "-m", "raise accuracy to 0.65")
    assert r.code == 0, r.err
    assert "#1 KEEP" in r.out
    assert trailer_json(repo, "Result")[0]["status"] == "keep"

    policy.write_text("accuracy: 0.651\n")  # within the noise of a paired comparison: no row changes
    r = run_gitera(repo, "iterate", "-m", "a tiny nudge")
    assert "#2 DISCARD" in r.out, r.out + r.err
    assert policy.read_text() == "accuracy: 0.65\n"  # restored to the best
    assert "Gitera-Restore" in git(repo, "log", "-1", "--format=%B")

    policy.write_text("accuracy: 0.8\nlatency: 100\n")
    r = run_gitera(repo, "iterate", "-m", "a slower but better policy")
    assert "guard_fail" in r.out.lower() or "GUARD_FAIL" in r.out, r.out
    # the third attempt closed sprint 1: the gate ran
    assert git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)").strip()

    policy.write_text("crash\n")
    r = run_gitera(repo, "iterate", "-m", "this breaks the harness")
    assert r.code == 5 and "#4 CRASH" in r.out
    assert policy.read_text() == "accuracy: 0.65\n"
    assert (repo / "scratch.md").read_text() == "untouched\n"
    log = run_gitera(repo, "log", "--format", "jsonl")
    lines = [json.loads(x) for x in log.out.splitlines()]
    assert lines[0]["type"] == "config"
    assert [x["status"] for x in lines[1:]] == ["keep", "discard", "guard_fail", "crash"]
    tsv = run_gitera(repo, "log", "--format", "tsv").out.splitlines()
    assert tsv[0] == "commit\tmetric\tguard\tstatus\tdescription"
    assert tsv[3].split("\t")[2:4] == ["fail", "guard_fail"]
    raw = git(repo, "log", "--format=%(trailers:key=Gitera-Result,valueonly)", "autoexp/syn")
    assert all(json.loads(x) for x in raw.splitlines() if x.strip())
    assert subprocess.run(["git", "fsck", "--no-progress"], cwd=repo, capture_output=True).returncode == 0


def test_iterate_refuses_other_dirty_files_and_no_change(repo: Path) -> None:
    synthetic_project(repo)
    r = run_gitera(repo, "iterate", "-m", "nothing changed")
    assert r.code == 3 and "unchanged from the current best" in r.err
    (repo / "harness.py").write_text((repo / "harness.py").read_text() + "\n# tweak\n")
    (repo / "policy_b.txt").write_text("accuracy: 0.9\n")
    r = run_gitera(repo, "iterate", "-m", "two changes")
    assert r.code == 3 and "locked files of experiment syn changed since the lock: harness.py" in r.err
    git(repo, "checkout", "--", "harness.py")
    (repo / "policy_a.txt").write_text("accuracy: 0.9\n")
    r = run_gitera(repo, "iterate", "-m", "two changes")
    assert r.code == 3 and "files other than the target files changed: policy_a.txt" in r.err


def test_score_only_harness_is_recorded_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "agg"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    synthetic_project(root)
    from gitera.adapters.evalrun import EvalRun
    from gitera.adapters.git import Repo
    from gitera.domain.experiment import resolve
    from gitera.domain.runs import summarize

    exp = resolve(Repo.find(root), "syn")
    frame = exp.load_frame()
    runs = {arm: EvalRun(arm=arm, split="dev", trials=(0, 1, 2), results=(), complete=True, aggregate_only=True,
                         aggregate_scores={0: 0.5, 1: 0.52, 2: 0.51}) for arm in ("a", "b")}
    summary = summarize(frame, "0" * 64, ["x", "y"], runs)
    assert summary["aggregate_only"] is True
    assert summary["arms"]["b"]["score"] == 0.51 and "delta" not in summary["arms"]["b"]
    assert "paired tests and slices are impossible" in summary["arms"]["b"]["problems"][0]
    assert summary["noise_floor"] == 0.01


def test_the_pilot_refuses_a_score_only_harness_that_reports_no_cost_or_latency(repo: Path) -> None:
    synthetic_project(repo, harness=Path(__file__).parent / "harnesses" / "score_only.py", pilot=False)
    r = run_gitera(repo, "pilot")
    assert r.code == 5, r.out + r.err  # the eval's output failed the pilot (docs/commands.md exit codes)
    assert "arm a: the harness prints only `SCORE:`, so `cost_usd` and `latency_ms` are missing" in r.out + r.err
    assert "paired tests, slices, iterate and the verdict need per-row results" in r.err
    r = run_gitera(repo, "run")
    assert r.code == 3 and "pilot" in r.err, r.err


def test_run_stops_before_the_cost_cap_using_the_pilots_cost_estimate(repo: Path) -> None:
    # each arm costs 240 dev rows x 3 trials x $0.0001 = $0.072; a $0.08 cap has room for one arm
    # and the pilot, not two: the first arm's first shard must not be admitted blind
    synthetic_project(repo, max_cost_usd=0.08)
    r = run_gitera(repo, "run")
    assert "Traceback" not in r.err and "RuntimeWarning" not in r.err, r.err
    assert "of the $0.08 budget" in r.err and "the budget of $0.08 is spent" in r.err, r.err
    spent = 0.0
    raw = git(repo, "log", "--format=%(trailers:key=Gitera-Result,valueonly,separator=%x1e)%x1e%(trailers:key=Gitera-Pilot,valueonly)", "autoexp/syn")
    for chunk in raw.split("\x1e"):
        if chunk.strip():
            spent += float(json.loads(chunk).get("spent_usd") or 0.0)
    assert 0.07 < spent <= 0.08 + 1e-9, spent


def test_untracked_files_the_change_could_read_are_refused_and_unrelated_scratch_is_not(repo: Path) -> None:
    synthetic_project(repo)
    (repo / "notes.md").write_text("root scratch, named by no target\n")
    (repo / "scratch").mkdir()
    (repo / "scratch" / "draft.txt").write_text("an unrelated draft\n")
    (repo / "fragments").mkdir()
    (repo / "fragments" / "extra.txt").write_text("accuracy: 0.9\n")
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n# include: fragments/extra.txt\n")
    r = run_gitera(repo, "iterate", "-m", "reads an untracked fragment")
    assert r.code == 3, r.out + r.err
    assert "files other than the target files changed: fragments/extra.txt (untracked, named in policy_b.txt)" in r.err
    assert "notes.md" not in r.err and "draft.txt" not in r.err
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n# see notes.md\n")  # a root file is exempt only while no target names it
    r = run_gitera(repo, "iterate", "-m", "names the root notes")
    assert r.code == 3 and "notes.md (untracked, named in policy_b.txt)" in r.err, r.err
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n# rules: glob('scratch/*.txt')\n")  # a folder it reads from
    r = run_gitera(repo, "iterate", "-m", "reads a folder of untracked files")
    assert r.code == 3 and "scratch/draft.txt (untracked, named in policy_b.txt)" in r.err, r.err
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n# a scratch note\n")  # the bare word names no folder
    r = run_gitera(repo, "iterate", "-m", "names no untracked file")
    assert r.code == 0 and "#1 KEEP" in r.out, r.out + r.err
    assert (repo / "notes.md").exists() and (repo / "fragments" / "extra.txt").exists()


def test_untracked_files_anywhere_under_a_target_folder_are_refused(repo: Path) -> None:
    from gitera.adapters.git import Repo
    from gitera.domain.loop import dirty_outside_targets

    (repo / "prompts" / "parts").mkdir(parents=True)
    (repo / "prompts" / "v2.txt").write_text("v2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "prompts")
    (repo / "prompts" / "parts" / "deep.txt").write_text("read by a glob, perhaps\n")
    (repo / "prompts" / "side.txt").write_text("beside the target\n")
    (repo / "todo.txt").write_text("root scratch\n")
    (repo / "prompts" / "v2.txt").write_text("v2, edited\n")
    bad = dirty_outside_targets(Repo.find(repo), ["prompts/v2.txt"], {"prompts/v2.txt": b"v2, edited\n"})
    assert sorted(bad) == ["prompts/parts/deep.txt (untracked, under a target file's folder)",
                           "prompts/side.txt (untracked, under a target file's folder)"]
