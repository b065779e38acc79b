"""Run-level experiments end to end on a fast synthetic script, in real repos with real git and real
encryption: split seals files, the pilot and the dev run, the sequential keep rule, the baseline as
the iterated file, the gate, the verdict, verify — and the attacks on each rule."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from gitera.adapters import keys
from gitera.core import runstats
from gitera.domain.runaudit import recheck_attempt
from gitera.domain.runseal import unpack
from tests.conftest import git, run_gitera
from tests.runproject import FRAME, TRAIN, autoresearch_project, set_lr, synthetic_project, through_run


def attempts(root: Path) -> list[dict[str, object]]:
    return json.loads(run_gitera(root, "log", "--format", "json").out)["attempts"]


def iterate(root: Path, lr: str, hypothesis: str = "") -> tuple[int, str]:
    set_lr(root, lr)
    r = run_gitera(root, "iterate", "-m", hypothesis or f"LR {lr}")
    return r.code, r.out + r.err


# --- split: files instead of rows ----------------------------------------------------------------------


def test_split_seals_the_declared_files_and_takes_them_out_of_the_work_tree(repo: Path) -> None:
    autoresearch_project(repo)
    test_text, gate_text = (repo / "data/test.txt").read_bytes(), (repo / "data/gate.txt").read_bytes()
    r = run_gitera(repo, "split")
    assert r.code == 0, r.err
    assert "removed them from the work tree" in r.out
    assert not (repo / "data/test.txt").exists() and not (repo / "data/gate.txt").exists()
    manifest = json.loads((repo / ".gitera/ar/split/manifest.json").read_text())
    assert manifest["level"] == "run" and manifest["files"]["test"] == [{"path": "data/test.txt", "bytes": len(test_text)}]
    # the test seal opens with the (test-only) local key to exactly the files; the gate shard has its own key
    from gitera.adapters import seal

    key = keys.parse_data_key((repo / ".git/gitera/keys/ar.key").read_text(), "key file")
    gate_key = keys.read_gate_key(repo / ".git", "ar")
    assert gate_key.key_id != key.key_id and manifest["gate_seal"]["key_id"] == gate_key.key_id
    assert stat.S_IMODE(os.stat(keys.gate_key_path(repo / ".git", "ar")).st_mode) == 0o600
    for part, k, want in (("seal", key, {"data/test.txt": test_text}), ("gate_seal", gate_key, {"data/gate.txt": gate_text})):
        rel = manifest[part]["path"]
        with tempfile.TemporaryDirectory() as tmp:
            seal.open_seal(repo / rel, k, seal.Binding("ar", manifest["frame_hash"], rel), Path(tmp) / "x.tar")
            assert unpack((Path(tmp) / "x.tar").read_bytes(), list(want)) == want
    # the seal, never the plaintext, is in git
    assert git(repo, "log", "--all", "--format=%H", "--", "data/test.txt", "data/gate.txt") == ""
    # a line of a sealed shard copied into the target file is refused by the leak hook
    line = next(x for x in test_text.decode().splitlines() if len(x) > 30)
    (repo / "train.py").write_text((repo / "train.py").read_text() + f"# {line}\n")
    git(repo, "add", "train.py")
    r = run_gitera(repo, "hook", "test-leak")
    assert r.code == 3 and "train.py" in r.err


def test_split_refuses_a_sealed_file_that_git_has_seen(repo: Path) -> None:
    synthetic_project(repo)
    git(repo, "add", "-f", "data/test.txt")
    git(repo, "commit", "-q", "-m", "oops: the test shard")
    git(repo, "rm", "-q", "--cached", "data/test.txt")
    git(repo, "commit", "-q", "-m", "remove it again")
    git(repo, "switch", "-q", "autoexp/rl")
    r = run_gitera(repo, "split")
    assert r.code == 3
    assert "data/test.txt is in git history, so it is not secret and cannot be sealed" in r.err
    assert (repo / "data/test.txt").exists()  # nothing of the user's is touched


def test_split_refuses_a_missing_sealed_file(repo: Path) -> None:
    synthetic_project(repo)
    (repo / "data/gate.txt").unlink()
    r = run_gitera(repo, "split")
    assert r.code == 3 and "data/gate.txt (declared in data.seal / data.gate_seal) is not a file in the work tree" in r.err
    assert (repo / "data/test.txt").exists() and not (repo / ".gitera/rl/split/manifest.json").exists()


# --- the pilot and the dev run ------------------------------------------------------------------------------


def test_the_pilot_refuses_a_script_that_reports_no_score(repo: Path) -> None:
    synthetic_project(repo, train=TRAIN.replace('print(f"loss: ', 'print(f"the loss is '))
    assert run_gitera(repo, "split").code == 0
    r = run_gitera(repo, "pilot")
    assert r.code == 5
    assert "the run reported no loss: no JSON object with `score` in $GITERA_OUT, no `SCORE: <number>` line and no `loss: <number>` line" in r.out
    r = run_gitera(repo, "run")
    assert r.code == 3 and "no passed pilot" in r.err


def test_the_pilot_refuses_a_declared_secondary_the_script_does_not_print(repo: Path) -> None:
    synthetic_project(repo, train=TRAIN.replace('print("peak_mb: 12.5")\n', ""))
    assert run_gitera(repo, "split").code == 0
    r = run_gitera(repo, "pilot")
    assert r.code == 5 and "no stdout line matches the pattern of memory_mb" in r.out


def test_a_score_in_gitera_out_and_no_mandatory_cost(repo: Path) -> None:
    train = ('import json, os\nfrom prepare import evaluate\nLR = 0.1\n'
             'json.dump({"score": evaluate(LR), "memory_mb": 3.0}, open(os.environ["GITERA_OUT"], "w"))\n')
    synthetic_project(repo, train=train, edits={"secondary: [{name: memory_mb, pattern: '^peak_mb:\\s*(\\S+)'}]": "secondary: [memory_mb]"})
    through_run(repo)
    pilot = json.loads((repo / ".gitera/rl/runs/pilot.json").read_text())
    assert pilot["status"] == "pass" and pilot["arms"]["agent"]["source"] == "GITERA_OUT" and pilot["arms"]["agent"]["cost_usd"] is None


def test_the_dev_run_measures_the_noise_and_sizes_in_runs(repo: Path) -> None:
    synthetic_project(repo)
    through_run(repo)
    summary = json.loads((repo / ".gitera/rl/runs/run-001/summary.json").read_text())
    base = summary["arms"]["base"]
    assert summary["level"] == "run" and len(base["runs"]) == 3 and summary["noise_floor"] == base["sd"] > 0
    assert summary["sizing"]["runs_needed"] == runstats.runs_needed(0.05, summary["noise_floor"])
    # the iterated arm is the same file at the same seeds: its runs are the baseline's (cached), Δ 0
    assert summary["arms"]["agent"]["runs"] == base["runs"] and summary["arms"]["agent"]["delta"] == 0.0
    assert base["numbers"]["memory_mb"] == 12.5
    trailers = git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Result,valueonly)", "autoexp/rl").split("\n")
    assert all(json.loads(t)["level"] == "run" for t in trailers if t.strip())


# --- the sequential keep rule -------------------------------------------------------------------------------


def test_an_attempt_costs_one_run_when_clearly_worse_more_only_when_marginal(repo: Path) -> None:
    synthetic_project(repo)
    through_run(repo)
    code, out = iterate(repo, "0.01", "a much smaller learning rate")  # loss 0.49 vs 0.4: far worse than the noise allows
    assert code == 0 and "#1 DISCARD: discarded after 1 run" in out
    code, out = iterate(repo, "0.3")  # loss 0.2: far better
    assert code == 0 and "#2 KEEP: kept after 1 run" in out
    code, out = iterate(repo, "0.32")  # loss 0.18: a gain of 0.02, about 2x the noise: within noise of a keep
    a = attempts(repo)
    assert [x["trials"] for x in a[:2]] == [1, 1] and 1 < int(a[2]["trials"]) <= 5  # type: ignore[call-overload]
    assert all(x["level"] == "run" for x in a)
    looks = a[2]["runs"]["looks"]  # type: ignore[index]
    assert [lk["action"] for lk in looks[:-1]] == ["more"] * (len(looks) - 1) and looks[-1]["action"] in ("keep", "discard")
    table = run_gitera(repo, "log").out
    assert "[1 run]" in table and f"[{a[2]['trials']} runs]" in table
    rows = [ln for ln in table.splitlines() if ln.startswith("#")]  # the secondary's mean over each attempt's runs
    assert "memory_mb" in table.splitlines()[0] and len(rows) == 3 and all(" 12.5000 " in ln for ln in rows), table
    state = json.loads((repo / ".gitera/rl/runs/iterate.json").read_text())
    assert state["noise_floor"] == json.loads((repo / ".gitera/rl/runs/run-001/summary.json").read_text())["noise_floor"]
    assert run_gitera(repo, "verify").code == 0


def test_the_cap_bounds_an_attempt(repo: Path) -> None:
    synthetic_project(repo, edits={"  max_runs: 5\n": "  max_runs: 2\n", "threshold: {effect: 0.05}": "threshold: {effect: 0.05, alpha: 0.001}"})
    through_run(repo)
    iterate(repo, "0.3")  # kept only when significant at 0.001 / 2 per look: it needs both runs, or is discarded at the cap
    a = attempts(repo)[0]
    assert a["trials"] == 2 and a["runs"]["cap"] == 2  # type: ignore[index]


def test_a_crashing_or_hanging_script_is_recorded_not_scored(repo: Path) -> None:
    synthetic_project(repo, edits={"timeout_s: 60": "timeout_s: 2"})
    through_run(repo)
    (repo / "train.py").write_text("import sys\nsys.exit('out of memory')\n")
    r = run_gitera(repo, "iterate", "-m", "a bigger model")
    assert r.code == 5 and "#1 CRASH: crash: run 1 (seed 0) crash: the command exited with code 1" in r.out
    (repo / "train.py").write_text("import time\ntime.sleep(30)\n")
    r = run_gitera(repo, "iterate", "-m", "train forever")
    assert r.code == 5 and "#2 TIMEOUT" in r.out and "killed after 2 s" in r.out


def test_a_script_that_reads_the_sealed_file_finds_nothing(repo: Path) -> None:
    synthetic_project(repo)
    through_run(repo)
    (repo / "train.py").write_text(TRAIN.replace("LR = 0.1", "LR = float(open('data/test.txt').read())"))
    r = run_gitera(repo, "iterate", "-m", "peek at the test shard")
    assert r.code == 5 and "crash" in r.out and "data/test.txt" in r.out


def test_the_locked_eval_cannot_change(repo: Path) -> None:
    synthetic_project(repo)
    through_run(repo)
    (repo / "prepare.py").write_text((repo / "prepare.py").read_text().replace("NOISE = 0.01", "NOISE = 0.0"))
    r = run_gitera(repo, "iterate", "-m", "quieter eval")
    assert r.code == 3 and "locked files of experiment rl changed since the lock: prepare.py" in r.err


def test_the_baseline_is_the_iterated_file_as_locked(repo: Path) -> None:
    frame = FRAME.replace('ref: "train.py:3"', 'ref: "train.py:1"')
    synthetic_project(repo, frame=frame)
    through_run(repo)
    iterate(repo, "0.3")
    r = run_gitera(repo, "run")
    assert r.code == 0, r.err
    summary = json.loads((repo / ".gitera/rl/runs/run-002/summary.json").read_text())
    first = json.loads((repo / ".gitera/rl/runs/run-001/summary.json").read_text())
    assert summary["arms"]["base"]["runs"] == first["arms"]["base"]["runs"]  # LR 0.1, as locked
    assert summary["arms"]["agent"]["score"] < summary["arms"]["base"]["score"] - 0.15  # LR 0.3, as kept
    assert summary["arms"]["base"]["commit"] != summary["arms"]["agent"]["commit"]


# --- the gate ------------------------------------------------------------------------------------------------


def test_the_gate_replicates_on_the_sealed_shard_through_the_holdout(repo: Path) -> None:
    synthetic_project(repo, edits={"sprint: 3": "sprint: 1"})
    through_run(repo)
    code, out = iterate(repo, "0.3")
    assert code == 0 and "gate after sprint 1: PASS" in out
    gate = json.loads((repo / ".gitera/rl/runs/gate-001.json").read_text())
    assert gate["replication"]["passed"] and len(gate["holdout_queries"]) == 1
    assert not list((repo / ".git/gitera/worktrees").glob("*/data/gate.txt"))  # the shard lived only for the gate's runs


def test_without_a_gate_shard_the_gate_replicates_on_fresh_seeds_and_says_so(repo: Path) -> None:
    synthetic_project(repo, edits={"sprint: 3": "sprint: 1", "  gate_seal: [data/gate.txt]\n": ""})
    through_run(repo)
    code, out = iterate(repo, "0.3")
    assert code == 0 and "seeds 1000000" not in out
    gate = json.loads((repo / ".gitera/rl/runs/gate-001.json").read_text())
    assert gate["outcome"] == "pass" and gate["holdout_queries"] == []
    assert "on 3 fresh seeds of the dev eval (no data.gate_seal declared" in gate["replication"]["reason"]
    assert "(dev, seed 1000000)" in out


def test_the_gate_kills_a_target_that_trains_on_the_eval_data(repo: Path) -> None:
    synthetic_project(repo, edits={"sprint: 3": "sprint: 1"})
    through_run(repo)
    (repo / "train.py").write_text(TRAIN.replace("LR = 0.1", "LR = 0.3  # tuned on open('data/val.txt')"))
    r = run_gitera(repo, "iterate", "-m", "tune on the validation shard")
    assert r.code == 0 and "KEEP" in r.out and "gate after sprint 1: FAIL" in r.out
    gate = json.loads((repo / ".gitera/rl/runs/gate-001.json").read_text())
    assert gate["hardcode"][0]["kind"] == "reads_eval_data" and gate["hardcode"][0]["rows"] == ["data/val.txt"]
    assert "LR = 0.1" in (repo / "train.py").read_text()  # back at the last gate-passed state, the arm killed


def test_the_gate_finds_a_dev_line_copied_into_the_target(repo: Path) -> None:
    synthetic_project(repo, edits={"sprint: 3": "sprint: 1"})
    secret = "how do i top up my card with a bank transfer"
    (repo / "data/val.txt").write_text("0.0\n" + secret + "\n")  # before the lock: the dev data has text
    # (re-lock a fresh experiment on the new data)
    git(repo, "switch", "-q", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "val text")
    from tests.runproject import lock

    lock(repo, "rl2", FRAME.replace("sprint: 3", "sprint: 1"))
    through_run(repo)
    (repo / "train.py").write_text(TRAIN.replace("LR = 0.1", f"LR = 0.3\nMEMO = {secret!r}"))
    r = run_gitera(repo, "iterate", "-m", "memorize")
    assert "gate after sprint 1: FAIL" in r.out
    gate = json.loads((repo / ".gitera/rl2/runs/gate-001.json").read_text())
    assert {h["kind"] for h in gate["hardcode"]} >= {"text"}


# --- the verdict and verify ------------------------------------------------------------------------------------


def test_the_verdict_opens_the_sealed_files_once_and_verify_recomputes_it(repo: Path) -> None:
    synthetic_project(repo, edits={"sprint: 3": "sprint: 1"}, offsets=("0.0", "0.02", "0.01"))
    through_run(repo)
    iterate(repo, "0.3")
    r = run_gitera(repo, "verdict", "--json")
    assert r.code == 0, r.err
    doc = json.loads((repo / ".gitera/rl/verdict.json").read_text())
    assert doc["decision"]["decision"] == "ship" and doc["level"] == "run" and doc["test_files"] == ["data/test.txt"]
    base = [json.loads(x)["score"] for x in (repo / ".gitera/rl/runs/test/base.jsonl").read_text().splitlines()]
    assert all(abs(s - (0.4 + 0.02)) < 0.05 for s in base)  # the test shard's offset: it really ran on data/test.txt
    c = runstats.welch(base, doc["arms"]["agent"]["runs"])
    assert doc["decision"]["arms"][0]["effect"] == c.effect and doc["decision"]["arms"][0]["p_value"] == c.p_value
    assert not (repo / "data/test.txt").exists() and not list((repo / ".git/gitera/worktrees").glob("*/data/test.txt"))
    r = run_gitera(repo, "verify")
    assert r.code == 0 and "ok   the verdict recomputed from the test runs is the same" in r.out
    assert "ok   the test set's opening has its conclusion" in r.out  # the opening was committed before the key was used
    opening = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Opening,valueonly)", "autoexp/rl~1").strip())  # the verdict's parent
    assert opening["status"] == "opened" and opening["level"] == "run" and set(opening["arms"]) == {"base", "agent"}
    r = run_gitera(repo, "iterate", "-m", "after the verdict")
    assert r.code == 3 and "has its verdict" in r.err


def test_a_run_level_verdict_that_fails_after_its_opening_cannot_be_re_rolled(repo: Path) -> None:
    """The attack: make the script fail on the test shard (or be killed there), look at the numbers, fix
    it and run the verdict again. The opening is committed before the key is used, so the failure is
    recorded as its abort and the experiment stays closed."""
    synthetic_project(repo, edits={"sprint: 3": "sprint: 1"}, offsets=("0.0", "0.02", "0.01"))
    through_run(repo)
    flag = repo.parent / "fail-on-test"  # outside the repository: the agent's switch
    flag.touch()
    (repo / "train.py").write_text(f"import os, sys\nif os.environ.get('GITERA_SPLIT') == 'test' and os.path.exists({str(flag)!r}):\n"
                                   "    sys.exit('crash on the test shard')\n" + TRAIN.replace("LR = 0.1", "LR = 0.3"))
    r = run_gitera(repo, "iterate", "-m", "LR 0.3, and a switch")
    assert r.code == 0 and "KEEP" in r.out, r.out + r.err
    r = run_gitera(repo, "verdict")
    assert r.code == 5 and "crash on the test shard" in r.err and "never concluded" in r.err, r.out + r.err
    flag.unlink()
    aborted = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Opening,valueonly)", "autoexp/rl").strip())
    assert aborted["status"] == "aborted" and "crash on the test shard" in aborted["reason"], aborted
    deadline = time.monotonic() + 30  # the dead man's switch destroys the opening's folders as the verdict ends, in its own process

    def leftovers() -> list[Path]:
        return [*(repo / ".git/gitera").glob("verdict-*"), *(repo / ".git/gitera/worktrees").glob("verdict-*")]

    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leftovers()
    r = run_gitera(repo, "verdict")  # the script "fixed": no second opening
    assert r.code == 3 and "never concluded" in r.err, r.err
    r = run_gitera(repo, "verify")
    assert r.code == 1 and "FAIL the test set's opening has its conclusion" in r.out, r.out


def fixed_comparison_verdict(repo: Path, lr: str) -> tuple[str, dict[str, Any]]:
    """A fixed comparison (no iterate section) whose arm's learning rate comes from its params, through the verdict."""
    train = TRAIN.replace("LR = 0.1", "import json, os\nLR = json.loads(os.environ['GITERA_ARM_PARAMS']).get('lr', 0.1)")
    frame = FRAME.replace("agent: {change: train.py as edited}", f"agent: {{change: a learning rate of {lr}, params: {{lr: {lr}}}}}")
    frame = frame[:frame.index("iterate:")] + frame[frame.index("data:"):]
    synthetic_project(repo, frame=frame, train=train)
    through_run(repo)
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.err
    return r.out, json.loads((repo / ".gitera/rl/verdict.json").read_text())


def test_an_underpowered_verdict_says_how_many_runs_would_decide(repo: Path) -> None:
    out, doc = fixed_comparison_verdict(repo, "0.14")
    arm = doc["decision"]["arms"][0]
    # a gain of 0.04 against a threshold of 0.05: the interval still reaches the threshold with 3 runs
    assert doc["decision"]["decision"] == "underpowered" and arm["aggregate"] == "INCONCLUSIVE"
    assert arm["ci_low"] < -0.05 < arm["effect"] < 0  # lower is better: the CI reaches the threshold, the effect does not
    assert f"about {doc['decision']['rows_needed']} runs per arm would decide it" in out
    assert run_gitera(repo, "verify").code == 0


def test_verify_catches_a_forged_keep(repo: Path) -> None:
    synthetic_project(repo)
    through_run(repo)
    iterate(repo, "0.01")
    discarded = attempts(repo)[0]
    forged = {k: v for k, v in discarded.items() if k not in ("type", "commit")}
    forged.update(kind="attempt", status="keep", outcome="supported", reason="kept after 1 run", iteration=2)
    message = f"gitera iterate: rl #2 keep\n\nGitera-Tag: rl\nGitera-Result: {json.dumps(forged, separators=(',', ':'))}\n"
    git(repo, "commit", "--no-verify", "--allow-empty", "-q", "-m", message)
    r = run_gitera(repo, "verify")
    assert r.code == 1
    assert "FAIL keep/discard decisions follow the rules: #2 recorded keep after 1 run(s), but the sequential rule on those runs says discard" in r.out


def test_recheck_replays_every_look() -> None:
    frame = {"iterate": {"max_runs": 5}, "threshold": {"alpha": 0.05}, "metric": {"primary": {"direction": "higher"}}}
    noise = [{"id": "run", "trial": t, "score": s, "status": "ok"} for t, s in enumerate([0.50, 0.51, 0.49])]
    cand = [{"id": "run", "trial": 0, "score": 0.7, "status": "ok"}, {"id": "run", "trial": 1, "score": 0.71, "status": "ok"}]
    result = {"iteration": 4, "status": "keep", "noise_floor": 0.01, "runs": {"cap": 5, "alpha": 0.05}}
    # the rule had kept after the first run: a second run means the recorded looks were not the rule's
    assert recheck_attempt(result, cand, noise, noise, frame) == "#4: the rule had decided after 1 run(s), but 2 were scored"
    assert recheck_attempt(result, cand[:1], noise, noise, frame) is None
    assert "the locked frame says 5 / 0.05" in (recheck_attempt({**result, "runs": {"cap": 50, "alpha": 0.05}}, cand[:1], noise, noise, frame) or "")


# --- cost and parallel runs ----------------------------------------------------------------------------------

COSTLY = TRAIN.replace('print("peak_mb: 12.5")', 'print("peak_mb: 12.5")\nprint("cost_usd: 1.0")')


def test_a_reported_cost_counts_and_the_budget_stops_the_loop_before_an_attempt(repo: Path) -> None:
    synthetic_project(repo, train=COSTLY, edits={"budget: {max_iterations: 10}": "budget: {max_iterations: 10, max_cost_usd: 4.5}"})
    through_run(repo)  # pilot: 2 runs, dev run: 2 new runs of the baseline (the iterated arm's are cached): $4
    code, out = iterate(repo, "0.3")
    assert code == 3 and "the loop has stopped: the next attempt would cost about $1.0000" in out
    assert attempts(repo) == []


def test_the_budget_stops_adding_runs_in_mid_attempt(repo: Path) -> None:
    synthetic_project(repo, train=COSTLY, edits={"budget: {max_iterations: 10}": "budget: {max_iterations: 10, max_cost_usd: 5.5}"})
    through_run(repo)
    code, out = iterate(repo, "0.105")  # within noise of a keep after one run ($5): a second run would pass $5.5
    a = attempts(repo)[0]
    assert a["status"] == "discard" and a["trials"] == 1 and str(a["reason"]).startswith("not scored in full: the cost budget ran out")
    assert "the loop stops: the cost budget of $5.5 ran out during attempt 1" in out
    assert run_gitera(repo, "verify").code == 0


def test_runs_in_parallel_when_the_frame_allows(repo: Path) -> None:
    import random

    synthetic_project(repo, edits={"timeout_s: 60}": "timeout_s: 60, concurrency: 3}"})
    through_run(repo)
    summary = json.loads((repo / ".gitera/rl/runs/run-001/summary.json").read_text())
    want = [round(0.4 + random.Random(seed).gauss(0, 0.01), 6) for seed in range(3)]
    assert summary["arms"]["base"]["runs"] == want  # each seed's own run, in trial order


def test_the_gate_opens_the_shard_the_split_sealed_not_a_replacement(repo: Path) -> None:
    """An agent holding the local gate key re-seals an easier shard in place of the split's: the gate ignores it, verify names it."""
    from gitera.adapters import seal
    from gitera.domain.runseal import pack

    synthetic_project(repo, edits={"sprint: 3": "sprint: 1"}, offsets=("0.0", "0.0", "0.5"))
    through_run(repo)
    manifest = json.loads((repo / ".gitera/rl/split/manifest.json").read_text())
    rel = manifest["gate_seal"]["path"]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "easy.tar").write_bytes(pack({"data/gate.txt": b"-9.0\n"}))
        seal.seal_file(Path(tmp) / "easy.tar", repo / rel, keys.read_gate_key(repo / ".git", "rl"), seal.Binding("rl", manifest["frame_hash"], rel))
    git(repo, "commit", "--no-verify", "-q", "-am", "an easier gate shard")
    code, out = iterate(repo, "0.3")
    assert code == 0 and "(gate, seed 0): loss 0.7" in out  # the split's shard (offset 0.5), not the forged one (-9.0)
    r = run_gitera(repo, "verify")
    assert r.code == 1 and "FAIL the seal is unchanged since the split" in r.out


# --- with the loop-control tools: lock --check, init --agent, results-tsv ---------------------------------------


def test_lock_check_runs_the_script_once_per_arm_and_refuses_one_without_a_score(repo: Path) -> None:
    from tests.runproject import PREPARE

    (repo / "data").mkdir()
    (repo / "prepare.py").write_text(PREPARE)
    (repo / "train.py").write_text(TRAIN.replace('print(f"loss: ', 'print(f"the loss is '))
    (repo / "data/val.txt").write_text("0.0\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "script")
    r = run_gitera(repo, "init", "rl")
    (repo / ".gitera/rl/frame.yaml").write_text(FRAME)
    r = run_gitera(repo, "lock", "--check")
    assert r.code == 5 and "Harness check: one run of the script per arm" in r.out
    assert "make the script print its score" in r.err and "nothing was locked" in r.err
    assert not (repo / ".gitera/rl/lock.json").exists()
    (repo / "train.py").write_text(TRAIN)
    git(repo, "commit", "-q", "-am", "print the loss")
    r = run_gitera(repo, "lock", "--check")
    assert r.code == 0, r.err


def test_init_agent_and_results_tsv_speak_of_runs(repo: Path) -> None:
    synthetic_project(repo, edits={"{name: memory_mb, pattern": "{name: memory_gb, pattern"})
    through_run(repo)
    r = run_gitera(repo, "init", "--agent")
    assert r.code == 0, r.err
    program = (repo / ".gitera/rl/program.md").read_text()
    assert "one run at a time (a clearly worse change costs one run, a close one up to 5)" in program
    iterate(repo, "0.01")
    tsv = run_gitera(repo, "log", "--format", "results-tsv").out.splitlines()
    assert tsv[0].split("\t") == ["commit", "loss", "memory_gb", "status", "description"]
    assert tsv[-1].split("\t")[2:4] == ["12.5", "discard"]  # the secondary metric named memory_gb, as autoresearch logs it


def test_a_plateau_stop_resumes_and_the_output_browser_shows_a_run_level_experiment(repo: Path, tmp_path: Path) -> None:
    synthetic_project(repo, edits={"  max_runs: 5\n": "  max_runs: 5\n  plateau: 2\n"})
    through_run(repo)
    iterate(repo, "0.01")
    code, out = iterate(repo, "0.02")  # the second attempt in a row without a keep: the plateau stops the loop
    assert "plateau" in out
    set_lr(repo, "0.3")
    r = run_gitera(repo, "iterate", "--resume", "-m", "a better learning rate")
    assert r.code == 0, r.err  # reopened and scored: the run-level attempt's size is one run, no dev rows needed
    assert "#3 KEEP" in r.out and "gate after sprint 1: PASS" in r.out
    assert run_gitera(repo, "verdict").code == 0
    page = tmp_path / "review.html"  # outside the work tree, as `gitera view` demands
    r = run_gitera(repo, "view", "--no-serve", "--out", str(page))
    assert r.code == 0, r.err
    html = page.read_text()
    assert "a better learning rate" in html and "LR 0.02" in html  # every attempt, the kept and the discarded


def test_a_worse_arm_is_killed_and_verify_catches_doctored_test_runs(repo: Path) -> None:
    out, doc = fixed_comparison_verdict(repo, "0.02")  # a loss 0.08 worse than the baseline's
    assert doc["decision"]["decision"] == "kill" and doc["decision"]["arms"][0]["effect"] > 0.05  # lower is better: 0.08 worse
    assert "Kill: no arm beats base by the registered 0.05 on the sealed test files (3 runs per arm, Welch's t)." in out
    assert run_gitera(repo, "verify").code == 0
    # an agent rewrites the arm's test runs so that it would have shipped, and commits it
    runs_file = repo / ".gitera/rl/runs/test/agent.jsonl"
    doctored = [{**json.loads(line), "score": 0.2} for line in runs_file.read_text().splitlines()]
    runs_file.write_text("".join(json.dumps(x) + "\n" for x in doctored))
    git(repo, "commit", "-q", "--no-verify", "-am", "fix the test runs")
    r = run_gitera(repo, "verify")
    assert r.code == 1, r.out
    assert "FAIL nothing but the verdict's files after the opening: later commits" in r.out


def test_a_kill_9_during_a_run_level_run_loses_no_reported_cost(repo: Path) -> None:
    """Each run's cost_usd is journaled as the run ends: `kill -9` gitera while the third seed of the
    baseline runs, and the next command's budget counts the second seed's cost, which no commit
    recorded (issue 12: no unrecorded spend)."""
    import signal
    import subprocess
    import sys

    from gitera.adapters.git import Repo
    from gitera.domain.scoring import spent_so_far

    marker = repo.parent / "seed-2-started"
    train = TRAIN + (
        "print('cost_usd: 0.25')\n"
        "import os, time\n"
        f"if os.environ.get('GITERA_TRIAL') == '2':\n    open({str(marker)!r}, 'w').close()\n    time.sleep(120)\n"
    )
    synthetic_project(repo, train=train)
    for step in ("split", "pilot"):
        r = run_gitera(repo, step)
        assert r.code == 0, (step, r.out, r.err)
    before = spent_so_far(Repo.find(repo), "autoexp/rl", "rl")
    assert before == 0.5  # the pilot: one run per arm, committed
    proc = subprocess.Popen([sys.executable, "-m", "gitera", "run"], cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), "the third seed never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # seed 0 came from the pilot's cache (free), seed 1 ran and reported $0.25, seed 2 was killed
    assert spent_so_far(Repo.find(repo), "autoexp/rl", "rl") == 0.75
    assert git(repo, "log", "-1", "--format=%s", "autoexp/rl").startswith("gitera pilot")  # no commit recorded it


def test_a_run_level_verdict_records_what_it_scored_and_verify_catches_amended_test_runs(repo: Path) -> None:
    """The verdict records the iterated arm's scored content (iteration and target blobs) and the
    sha256 of each arm's test runs, as a row-level verdict does. The attack: amend the verdict
    commit with test runs nudged too little to change the decision, move the tag, expire the
    reflog (a fresh clone) — verify fails on the digests."""
    import subprocess

    synthetic_project(repo)
    through_run(repo)
    for lr in ("0.3", "0.5", "0.45"):  # two kept, one discarded, then the sprint's gate passes
        assert iterate(repo, lr)[0] == 0
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.err
    trailer = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Verdict,valueonly)", "autoexp/rl").strip())
    blob = git(repo, "rev-parse", "autoexp/rl:train.py").strip()  # the target as the loop left it: the gate-passed state
    assert trailer["scored"] == {"agent": {"iteration": 2, "targets": {"train.py": blob}}}, trailer
    assert set(trailer["rows"]) == {"base", "agent"}
    v = run_gitera(repo, "verify")
    assert v.code == 0 and "ok   the verdict scored the iterated arm's gated content" in v.out, v.out
    assert "ok   the per-row test files are the ones the verdict recorded" in v.out, v.out

    runs_file = repo / ".gitera/rl/runs/test/agent.jsonl"
    nudged = [{**json.loads(line), "score": json.loads(line)["score"] - 1e-6} for line in runs_file.read_text().splitlines()]
    runs_file.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in nudged))
    git(repo, "add", str(runs_file.relative_to(repo)))
    subprocess.run(["git", "commit", "-q", "--amend", "--no-verify", "-C", "HEAD"], cwd=repo, check=True, capture_output=True)
    git(repo, "tag", "-f", "-a", "-m", "verdict", "gitera/rl/verdict", "HEAD")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    v = run_gitera(repo, "verify")
    assert v.code == 1 and "FAIL the per-row test files are the ones the verdict recorded: arm(s) agent" in v.out, v.out
    assert "Traceback" not in v.out + v.err
