"""gitera verify (issue 7): the self-audit recomputed from git alone names each tampering.

Every tampering is made the way a user could make it: a plain `git commit` (with
--no-verify, with crafted trailers, with a backdated date) on the experiment branch.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, run_gitera
from tests.helpers import read_test_rows, synthetic_project

RESULTS = "every Gitera-Result matches its per-row file"
LOCKED = "locked files unchanged in every commit since the lock"
NO_ROWS = "no sealed test row in any committed file"
AFTER = "nothing but the verdict's files after the opening"
SPRINTS = "sprints of at most 3 attempts, each closed by its gate"


def ran(root: Path, **kw: Any) -> None:
    synthetic_project(root, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.8\n"}, **kw)
    r = run_gitera(root, "run")
    assert r.code == 0, r.out + r.err


def decided(root: Path) -> None:
    ran(root)
    r = run_gitera(root, "verdict")
    assert r.code == 0, r.out + r.err


def commit(root: Path, message: str, *args: str, env: dict[str, str] | None = None) -> str:
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", message, *args], cwd=root, check=True,
                   env={**os.environ, **(env or {})}, capture_output=True)
    return git(root, "rev-parse", "HEAD").strip()


def results(root: Path, rev: str = "HEAD") -> list[dict[str, Any]]:
    out = git(root, "log", "-1", "--format=%(trailers:key=Gitera-Result,valueonly,separator=%x1e)", rev)
    return [json.loads(x) for x in out.split("\x1e") if x.strip()]


def verify(root: Path) -> tuple[int, str, dict[str, Any]]:
    r = run_gitera(root, "verify")
    j = run_gitera(root, "verify", "--json")
    assert j.code == r.code
    return r.code, r.out, json.loads(j.out)


def failing(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("FAIL ")]


SPLIT_UNCHANGED = "the split files are unchanged since the split"


def assert_only_violation(root: Path, check: str, *named: str, also: tuple[str, ...] = ()) -> str:
    """``check`` fails naming ``named``, and nothing else fails but the checks in ``also``."""
    code, out, doc = verify(root)
    assert code == 1, out
    fails = failing(out)
    main = [f for f in fails if f.startswith(f"FAIL {check}")]
    assert len(main) == 1 and sorted(f[5:].split(":")[0] for f in fails if f not in main) == sorted(also), out
    for n in named:
        assert n in main[0], (n, main[0])
    assert f"{1 + len(also)} violation(s)." in out
    assert doc["ok"] is False and len(doc["violations"]) == 1 + len(also) and any(v.startswith(check) for v in doc["violations"])
    assert sorted(c["check"] for c in doc["checks"] if not c["ok"]) == sorted([main[0][5:].split(":")[0], *also])
    return main[0]


def test_a_clean_history_passes(repo: Path) -> None:
    ran(repo)
    code, out, doc = verify(repo)
    assert code == 0 and "All checks pass." in out and doc["ok"] is True and doc["violations"] == []
    assert "ok   the verdict: not run yet" in out


def test_a_locked_file_changed_with_no_verify_is_named(repo: Path) -> None:
    ran(repo)
    (repo / "harness.py").write_text((repo / "harness.py").read_text() + "\n# quietly tuned\n")
    git(repo, "add", "harness.py")
    bad = commit(repo, "tune the harness")
    assert_only_violation(repo, LOCKED, f"harness.py in {bad[:10]}")


def test_an_edited_trailer_score_is_caught(repo: Path) -> None:
    ran(repo)
    run_b = next(x for x in results(repo) if x["arm"] == "b")
    forged = {**run_b, "score": round(float(run_b["score"]) + 0.1, 6)}
    bad = commit(repo, f"x\n\nGitera-Tag: syn\nGitera-Result: {json.dumps(forged, separators=(',', ':'))}", "--allow-empty")
    line = assert_only_violation(repo, RESULTS, bad[:10], f"trailer score {forged['score']}")
    assert f"rows give {run_b['score']}"[:18] in line


def test_a_sealed_test_row_in_a_committed_file_is_caught(repo: Path) -> None:
    ran(repo)
    row = read_test_rows(repo, tag="syn")[0]
    (repo / "notes.md").write_text(f"# notes\n\nan interesting example:\n{row['text']}\n")
    git(repo, "add", "notes.md")
    commit(repo, "my notes")
    assert_only_violation(repo, NO_ROWS, "notes.md:4")


def test_a_committed_dev_row_is_not_a_leak(repo: Path) -> None:
    ran(repo)
    dev = json.loads((repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()[0])  # the source left the work tree at the split
    (repo / "notes.md").write_text(f"{dev['text']}\n")
    git(repo, "add", "notes.md")
    commit(repo, "notes on a dev row")
    code, out, _ = verify(repo)
    assert code == 0, out


def test_a_file_under_the_experiment_changed_after_the_verdict_is_caught(repo: Path) -> None:
    decided(repo)
    (repo / ".gitera/syn/notes.md").write_text("an afterthought\n")
    git(repo, "add", ".gitera/syn/notes.md")
    bad = commit(repo, "afterthought")
    assert_only_violation(repo, AFTER, bad[:10])


def test_an_attempt_after_the_verdict_is_caught_even_backdated(repo: Path) -> None:
    decided(repo)
    run_b = next(x for x in results(repo, "HEAD~1") if x["arm"] == "b")
    attempt = {"kind": "attempt", "arm": "b", "iteration": 1, "sprint": 1, "rows": run_b["rows"], "score": run_b["score"]}
    # committed after the verdict, but dated before it: the audit follows the history, not the clock
    bad = commit(repo, f"sneaky\n\nGitera-Tag: syn\nGitera-Result: {json.dumps(attempt)}", "--allow-empty",
                 env={"GIT_COMMITTER_DATE": "2001-01-01T00:00:00Z", "GIT_AUTHOR_DATE": "2001-01-01T00:00:00Z"})
    assert_only_violation(repo, AFTER, bad[:10])


def four_attempts_without_a_gate(root: Path) -> None:
    ran(root)
    run_b = next(x for x in results(root) if x["arm"] == "b")
    for i in range(1, 5):
        attempt = {"kind": "attempt", "arm": "b", "iteration": i, "sprint": 1, "rows": run_b["rows"], "score": run_b["score"]}
        commit(root, f"attempt {i}\n\nGitera-Tag: syn\nGitera-Result: {json.dumps(attempt)}", "--allow-empty")


def test_a_fourth_attempt_in_a_sprint_without_a_gate_is_caught(repo: Path) -> None:
    four_attempts_without_a_gate(repo)
    assert_only_violation(repo, SPRINTS, "attempt #4 is attempt 4 of a sprint of 3 without a gate")


def test_a_sealed_test_row_in_a_predictions_dump_under_a_runs_folder_is_caught(repo: Path) -> None:
    # only the experiment's own .gitera/<tag>/runs/ results are exempt from the scan, not any runs/ folder
    ran(repo)
    row = read_test_rows(repo, tag="syn")[3]
    (repo / "analysis/runs").mkdir(parents=True)
    (repo / "analysis/runs/preds.jsonl").write_text(json.dumps({"input": row["text"], "pred": "L1"}) + "\n")
    git(repo, "add", "analysis/runs/preds.jsonl")
    commit(repo, "save some predictions")
    assert_only_violation(repo, NO_ROWS, "analysis/runs/preds.jsonl:1")


def test_a_conclusion_rewritten_after_the_verdict_is_caught(repo: Path) -> None:
    decided(repo)
    doc = json.loads((repo / ".gitera/syn/verdict.json").read_text())
    md = repo / doc["conclusion"] / "conclusion.md"
    md.write_text(md.read_text().replace("Ship b", "Ship b everywhere, forever"))
    git(repo, "add", str(md.relative_to(repo)))
    bad = commit(repo, "polish the conclusion")
    assert_only_violation(repo, AFTER, bad[:10])


def test_a_gate_trailer_whose_outcome_contradicts_its_checks_is_caught(repo: Path) -> None:
    ran(repo)
    forged = {"sprint": 1, "after_iteration": 3, "outcome": "pass", "reasons": ["looks fine"], "hardcode": [],
              "hardcode_hits": 2, "replication": None, "holdout_queries": [],
              "saturation": {"saturated": False, "reason": "", "attempts": 3, "best": 0.8}, "locked_iteration": 3}
    bad = commit(repo, f"gate\n\nGitera-Tag: syn\nGitera-Gate: {json.dumps(forged)}", "--allow-empty")
    assert_only_violation(repo, "every gate outcome follows from its recorded checks", bad[:10], "recorded 'pass' but its checks give 'fail'")


# --------------------------------------------------------------------------------------------
# the leak scan exempts no path: only the split's own ciphertexts, and test texts the split
# itself made public inside a train/dev/gate row
# --------------------------------------------------------------------------------------------


def test_a_user_file_dropped_into_the_split_or_runs_folder_is_scanned(repo: Path) -> None:
    ran(repo)
    rows = read_test_rows(repo, tag="syn")
    (repo / ".gitera/syn/split/extra.csv").write_text(f"id,text\nx1,{rows[0]['text']}\n")
    (repo / ".gitera/syn/runs/scratch.jsonl").write_text(json.dumps({"id": "x2", "input": rows[1]["text"]}) + "\n")
    git(repo, "add", ".gitera/syn/split/extra.csv", ".gitera/syn/runs/scratch.jsonl")
    commit(repo, "keep a few examples next to the experiment")
    assert_only_violation(repo, NO_ROWS, ".gitera/syn/runs/scratch.jsonl:1", ".gitera/syn/split/extra.csv:2", also=(SPLIT_UNCHANGED,))


def test_a_test_row_added_to_a_file_gitera_wrote_is_scanned(repo: Path) -> None:
    # the file names are gitera's, the commits are not: dev.jsonl and a run's per-row results
    ran(repo)
    rows = read_test_rows(repo, tag="syn")
    dev = repo / ".gitera/syn/split/dev.jsonl"
    n_dev = len(dev.read_text().splitlines())
    dev.write_text(dev.read_text() + json.dumps({**rows[0], "id": "extra"}) + "\n")
    per_row = next((repo / ".gitera/syn/runs").glob("run-*/b.jsonl"))
    per_row.write_text(json.dumps({"id": "extra", "score": 1, "output": rows[2]["text"]}) + "\n" + per_row.read_text())
    git(repo, "add", "-A", ".gitera/syn")
    commit(repo, "more rows")
    rel = per_row.relative_to(repo).as_posix()
    assert_only_violation(repo, NO_ROWS, f".gitera/syn/split/dev.jsonl:{n_dev + 1}", f"{rel}:1", also=(SPLIT_UNCHANGED,))


def test_a_test_text_quoted_inside_an_open_row_is_no_leak(repo: Path) -> None:
    # real data has near-duplicates (BANKING77: "…how can I get a virtual card?" in a dev row, the
    # shorter question in test): the split made that text public itself, so neither dev.jsonl nor a
    # harness output repeating that dev row is a leak
    def text(i: int) -> str:
        short = f"please help me with request number {i // 2} about my card"
        return short if i % 2 == 0 else f"{short} because it is urgent and i am waiting"

    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.8\n"}, row_text=text)
    assert run_gitera(repo, "run").code == 0
    test_texts = {r["text"] for r in read_test_rows(repo, tag="syn")}
    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]
    quoting = [r for r in dev if any(t in r["text"] and t != r["text"] for t in test_texts)]
    assert len(quoting) > 5  # the near-duplicates exist
    (repo / "notes.md").write_text("".join(f"{r['text']}\n" for r in quoting))
    git(repo, "add", "notes.md")
    commit(repo, "notes on dev rows")
    code, out, _ = verify(repo)
    assert code == 0, out


# --------------------------------------------------------------------------------------------
# a change on a merged side branch is not hidden by git's history simplification
# --------------------------------------------------------------------------------------------


def side_branch_change_and_revert(root: Path, path: str) -> str:
    """Change ``path`` on a side branch, revert it there, merge the branch back: the tree is as before."""
    target = root / path
    original = target.read_bytes()
    git(root, "switch", "-q", "-c", "side")
    target.write_bytes(original + b"\n# tuned for a while\n")
    changed = commit(root, "try something", "-a")
    target.write_bytes(original)
    commit(root, "put it back", "-a")
    git(root, "switch", "-q", "autoexp/syn")
    git(root, "merge", "-q", "--no-ff", "--no-verify", "-m", "merge side", "side")
    assert git(root, "diff", "HEAD~1", "HEAD", "--stat") == ""
    assert git(root, "rev-list", "HEAD~1..HEAD", "--", path) == ""  # what the default walk sees
    return changed


def test_a_locked_file_changed_and_reverted_on_a_merged_side_branch_is_named(repo: Path) -> None:
    ran(repo)
    changed = side_branch_change_and_revert(repo, "harness.py")
    assert_only_violation(repo, LOCKED, f"harness.py in {changed[:10]}")


def test_the_seal_changed_and_reverted_on_a_merged_side_branch_is_named(repo: Path) -> None:
    ran(repo)
    changed = side_branch_change_and_revert(repo, ".gitera/syn/split/test.seal")
    assert_only_violation(repo, "the seal is unchanged since the split", changed[:10])


def test_a_verdict_json_from_before_every_slice_column_was_analysed_still_recomputes(repo: Path) -> None:
    # older verdicts recorded one "slice_column" and plain slice names ("g1"); verify still reads them
    decided(repo)
    path = repo / ".gitera/syn/verdict.json"
    doc = json.loads(path.read_text())
    (column,) = doc.pop("slice_columns")
    doc.pop("severity_column")
    doc["slice_column"] = column
    d = doc["decision"]
    d["slices"] = [s.split("=", 1)[1] for s in d["slices"]]
    for arm in d["arms"]:
        arm.pop("unweighted")
        for s in arm["slices"]:
            s["name"] = s["name"].split("=", 1)[1]
            s.pop("column")
    assert d["slices"] == ["g1", "g2", "g3"]
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    git(repo, "add", str(path.relative_to(repo)))
    git(repo, "commit", "-q", "--amend", "--no-edit", "--no-verify")  # the verdict commit as an older gitera wrote it
    git(repo, "tag", "-f", "-a", "-m", "verdict", "gitera/syn/verdict", "HEAD")
    code, out, _ = verify(repo)
    assert code == 0, out
    assert "ok   the verdict recomputed from the test rows is the same" in out


# --------------------------------------------------------------------------------------------
# the recomputed verdict applies the LOCKED frame's rules, not the ones verdict.json records
# --------------------------------------------------------------------------------------------


def forge_verdict(root: Path, edit: Any) -> None:
    """Rewrite the verdict commit (amend, trailer included) with ``edit(doc)`` applied to verdict.json."""
    path = root / ".gitera/syn/verdict.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    message = git(root, "log", "-1", "--format=%B").replace("ship_narrowly", doc["decision"]["decision"])
    git(root, "add", str(path.relative_to(root)))
    git(root, "commit", "-q", "--amend", "--no-verify", "-m", message)
    git(root, "tag", "-f", "-a", "-m", "verdict", "gitera/syn/verdict", "HEAD")  # a thorough forger moves the tag too


def test_a_verdict_json_that_drops_the_losing_slice_column_is_caught(repo: Path) -> None:
    # b loses slice g3: ship narrowly. The forged verdict.json analyses no slice column and ships b
    # everywhere; recomputed with its own (forged) columns the decision would agree
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.85\ngroup.g3: 0.2\n"}, rows=900)
    assert run_gitera(repo, "run").code == 0
    assert run_gitera(repo, "verdict").code == 0

    def everywhere(doc: dict[str, Any]) -> None:
        assert doc["decision"]["decision"] == "ship_narrowly"
        doc["slice_columns"] = []
        doc["decision"].update(decision="ship", slices=[])
        for arm in doc["decision"]["arms"]:
            arm["slices"] = []

    forge_verdict(repo, everywhere)
    code, out, doc = verify(repo)
    assert code == 1 and failing(out) == [
        "FAIL verdict.json records the locked frame's rules: verdict.json records slice columns [] but the locked frame registers ['group']",
        "FAIL the verdict recomputed from the test rows is the same: recorded ship b, recomputed ship_narrowly b with the locked frame's rules",
    ], out
    assert len(doc["violations"]) == 2


@pytest.mark.parametrize("keep_key", [False, True])
def test_a_verdict_json_with_a_lowered_threshold_is_caught(repo: Path, keep_key: bool) -> None:
    # the decision is unchanged, so only the record of the rules gives it away — with the key kept too
    ran(repo)
    assert run_gitera(repo, "verdict", *(["--keep-key"] if keep_key else [])).code == 0

    def lowered(doc: dict[str, Any]) -> None:
        doc["decision"]["threshold"]["effect"] = 0.001

    forge_verdict(repo, lowered)
    assert_only_violation(repo, "verdict.json records the locked frame's rules", "records threshold {",
                          "'effect': 0.001", "but the locked frame registers {", "'effect': 0.05")


def test_a_verdict_commit_rewritten_after_the_verdict_is_named_by_its_tag(repo: Path) -> None:
    decided(repo)
    verdict_commit = git(repo, "rev-parse", "HEAD").strip()
    md = next((repo / "docs/experiments").glob("*/conclusion.md"))
    md.write_text(md.read_text() + "\nA reviewer's note, slipped into the verdict commit.\n")
    git(repo, "commit", "-q", "-a", "--amend", "--no-edit", "--no-verify")
    rewritten = git(repo, "rev-parse", "HEAD").strip()
    assert_only_violation(repo, "the verdict commit is the one its tag names", f"gitera/syn/verdict names {verdict_commit[:10]}",
                          f"the branch's verdict is {rewritten[:10]}")
    git(repo, "tag", "-d", "gitera/syn/verdict")  # a clone without the tag cannot tell, and says so
    code, out, _ = verify(repo)
    assert code == 0 and "ok   the verdict commit is the one its tag names: gitera/syn/verdict not in this clone" in out, out


def test_an_unreadable_verdict_json_is_a_failed_check_not_a_crash(repo: Path) -> None:
    decided(repo)
    path = repo / ".gitera/syn/verdict.json"
    for text, says in (("not json", "is missing or not a JSON object"), ('{"tag": "syn"}', "is malformed (KeyError: ")):
        path.write_text(text)
        git(repo, "commit", "-q", "-a", "--amend", "--no-edit", "--no-verify")
        git(repo, "tag", "-f", "-a", "-m", "verdict", "gitera/syn/verdict", "HEAD")
        code, out, doc = verify(repo)
        assert code == 1 and "Traceback" not in out, out
        assert [line for line in failing(out) if line.startswith("FAIL the verdict can be recomputed: ") and says in line], out
        report = run_gitera(repo, "report", "--format", "md")
        assert report.code == 0 and "violation(s): the verdict can be recomputed" in report.out, report.out + report.err
        assert "No verdict yet" not in report.out and "**Verdict:** recorded in " in report.out, report.out


def test_verify_reads_the_trailers_from_git_not_from_gitera_s_history_cache(repo: Path) -> None:
    # .git/gitera/history/<tag>.log is a speed-up any process can edit: erasing the fourth
    # attempt of a sprint there must not make the audit pass
    four_attempts_without_a_gate(repo)
    assert run_gitera(repo, "log").code == 0  # the cache now holds every record
    cache = repo / ".git/gitera/history/syn.log"
    entries = cache.read_text().split("\x1e")
    cache.write_text("\x1e".join(e for e in entries if '"iteration": 4' not in e))
    assert_only_violation(repo, SPRINTS, "attempt #4 is attempt 4 of a sprint of 3 without a gate")
