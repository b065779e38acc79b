"""The scoring engine with real subprocess harnesses (tests/harnesses/)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitera.adapters.cache import Cache
from gitera.adapters.evalrun import Budget, EvalRun, EvalSpec, RetryPolicy, RowResult, check_pilot, run_eval
from gitera.adapters.evalrun.command import plan_shards
from gitera.adapters.evalrun.parse import KNOWN_FIELDS, MAX_ABS_SCORE, PLACEHOLDERS, interpret, is_placeholder, parse_lines
from gitera.adapters.progress import Progress
from gitera.core.errors import ConfigError

HARNESSES = Path(__file__).parent / "harnesses"
FAST_RETRY = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    shutil.copytree(HARNESSES, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def cmd(name: str) -> EvalSpec:
    return EvalSpec(command=f"{shlex.quote(sys.executable)} {name}.py", harness_hash="h1")


def rows_for(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": i, "text": f"label-{i % 3}", "expected": "label-0", **extra} for i in range(n)]


def run(spec: EvalSpec, checkout: Path, rows: Sequence[Mapping[str, Any]], **kw: Any) -> EvalRun:
    args: dict[str, Any] = dict(
        checkout=checkout, tag="t", arm="v2", params={"p": 1}, split="dev", rows=rows, trials=[0],
        concurrency=4, timeout_s=10.0, run_timeout_s=None, cache=None, budget=None, progress=None,
        workdir=checkout.parent / "work", retry=FAST_RETRY,
    )
    args.update(kw)
    # the test harnesses read their switches from the environment, which reaches them only when named (issue 12)
    return run_eval(spec if spec.env else replace(spec, env=HARNESS_ENV), **args)


HARNESS_ENV = ("HARNESS_*", "FLAKY_*", "POISON_*")


def calls(checkout: Path) -> int:
    path = checkout / "counter.txt"
    return sum(int(x) for x in path.read_text().split()) if path.exists() else 0


@pytest.fixture(autouse=True)
def counter(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_COUNTER", str(checkout / "counter.txt"))


def test_deterministic_command_mode_scores_every_row_with_the_contract_env(checkout: Path, tmp_path: Path) -> None:
    res = run(cmd("deterministic"), checkout, rows_for(30), trials=[0, 1, 2])
    assert res.complete and res.problems == () and res.stop_reason is None
    assert len(res.results) == 90 and res.calls == 90
    assert [r.score for r in res.for_trial(1)] == [1.0 if i % 3 == 0 else 0.0 for i in range(30)]
    first = res.results[0]
    assert (first.cost_usd, first.latency_ms, first.tokens, first.finding) == (0.01, 5.0, 12, None)
    ctx = json.loads(first.output or "")
    assert ctx == {"cwd": str(checkout), "tag": "t", "arm": "v2", "params": {"p": 1}, "split": "dev", "trial": 0}
    assert {json.loads(r.output or "")["trial"] for r in res.results} == {0, 1, 2}
    assert res.cost_usd == pytest.approx(0.9) and res.spent_usd == pytest.approx(0.9)
    assert 1 < res.invocations <= 16 and calls(checkout) == 90


def test_nothing_is_written_outside_workdir_cache_and_checkout(checkout: Path, tmp_path: Path, isolated_home: Path) -> None:
    outside = {p for p in tmp_path.rglob("*")} | {p for p in isolated_home.rglob("*")}
    cwd_before = set(Path.cwd().iterdir())
    run(cmd("deterministic"), checkout, rows_for(10), cache=Cache(tmp_path / "cache"), tree_id="t1")
    run(EvalSpec(python="pymod:score"), checkout, rows_for(4), workdir=tmp_path / "work2")
    allowed = (tmp_path / "work", tmp_path / "work2", tmp_path / "cache", checkout)
    new = {p for p in tmp_path.rglob("*")} | {p for p in isolated_home.rglob("*")}
    stray = [p for p in new - outside if not any(p == a or a in p.parents for a in allowed)]
    assert stray == [] and set(Path.cwd().iterdir()) == cwd_before


def test_flaky_rows_are_retried_with_backoff_until_ok(checkout: Path) -> None:
    res = run(cmd("flaky"), checkout, rows_for(8))
    assert res.complete and all(r.score == 1.0 for r in res.results)
    assert res.calls == 8 + 4 + 4  # even ids fail twice, succeed on the third attempt


def test_transient_beyond_the_attempts_is_a_crash_naming_it(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAKY_FAILURES", "5")
    res = run(cmd("flaky"), checkout, rows_for(4))
    assert not res.complete
    bad = {r.id: r for r in res.results if r.status != "ok"}
    assert set(bad) == {0, 2} and all(r.status == "crash" for r in bad.values())
    assert "still transient after 3 attempts: 429 rate limited" in (bad[0].error or "")


@contextlib.contextmanager
def _env(values: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_a_hung_shard_is_killed_with_its_children_and_others_finish(checkout: Path) -> None:
    rows = [{"id": "hang"}, *({"id": f"r{i}"} for i in range(5))]
    spec = EvalSpec(command=f"{shlex.quote(sys.executable)} hang.py", shard_size=1)
    t0 = time.monotonic()
    res = run(spec, checkout, rows, timeout_s=1.5)
    assert time.monotonic() - t0 < 6
    by_id = {r.id: r for r in res.results}
    assert by_id["hang"].status == "timeout"
    assert by_id["hang"].error == "the command was killed after writing no result line for 1.5 s (timeout_s, per row) when scored alone"
    assert all(by_id[f"r{i}"].score == 0.5 for i in range(5))
    assert not res.complete and any(p.startswith("trial 0 shard 0: the command was killed after writing no result line for 1.5 s") for p in res.problems)
    parent, child = map(int, (checkout / "pids.txt").read_text().split())
    deadline = time.monotonic() + 2
    while not (_gone(parent) and _gone(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(parent) and _gone(child)


def test_the_run_timeout_stops_everything_and_marks_the_rest(checkout: Path) -> None:
    rows = [{"id": "hang"}, *({"id": f"r{i}"} for i in range(3))]
    spec = EvalSpec(command=f"{shlex.quote(sys.executable)} hang.py", shard_size=1)
    res = run(spec, checkout, rows, timeout_s=30, run_timeout_s=1.0, concurrency=1)
    assert res.results[0].status == "timeout" and "run timeout" in (res.results[0].error or "")
    assert not res.complete and res.stop_reason == "run_timeout"
    assert all(r.status == "timeout" for r in res.results[1:])
    assert res.wall_s < 5


def test_a_crashing_shard_records_exit_code_and_stderr_tail_and_others_are_ok(checkout: Path) -> None:
    rows = [{"id": i, "crash": i == 5} for i in range(12)]
    stream = io.StringIO()
    res = run(EvalSpec(command=f"{shlex.quote(sys.executable)} crash.py", shard_size=4), checkout, rows, concurrency=3, progress=Progress(stream))
    by_id = {r.id: r for r in res.results}
    # shard 4..7 died at row 5; rows 6 and 7 were re-run without it and scored
    assert [i for i in range(12) if by_id[i].status != "ok"] == [5]
    err = by_id[5].error or ""
    assert err.startswith("the command exited with code 3; stderr tail:")
    assert "KeyError: 'boom' on row 5" in err and "log line 11" in err and "log line 10\n" not in err
    assert len(err.splitlines()) == 21
    assert all(by_id[i].score == 1.0 for i in (4, 6, 7, 8))
    assert any("shard 1.1: the command exited with code 3; rows 5 unscored" in p for p in res.problems)  # re-run alone first
    assert any("shard 1: the command exited with code 3 with 3 rows unwritten; re-running them" in w for w in res.warnings)
    assert "11/12 scored, INCOMPLETE" in stream.getvalue()


def test_bisection_isolates_the_rows_that_crash_or_hang_and_scores_the_rest(checkout: Path, tmp_path: Path) -> None:
    log = tmp_path / "tried.jsonl"
    rows = [{"id": i, "crash": i == 5, "hang": i == 11} for i in range(24)]
    spec = EvalSpec(command=f"{shlex.quote(sys.executable)} poison.py", shard_size=8)
    env = {"HARNESS_LOG": str(log)}
    stream = io.StringIO()
    t0 = time.monotonic()
    with _env(env):
        res = run(spec, checkout, rows, timeout_s=1.0, concurrency=4, progress=Progress(stream))
    assert time.monotonic() - t0 < 15
    by_id = {r.id: r for r in res.results}
    assert {i: r.status for i, r in by_id.items() if r.status != "ok"} == {5: "crash", 11: "timeout"}
    assert all(by_id[i].score == 1.0 for i in range(24) if i not in (5, 11))
    # each failure is reported from ITS OWN single-row invocation
    assert "poison: crashing with 1 rows" in (by_id[5].error or "")
    assert by_id[11].error == "the command was killed after writing no result line for 1 s (timeout_s, per row) when scored alone"
    tried = [json.loads(line) for line in log.read_text().splitlines()]
    counts = {i: sum(i in ids for ids in tried) for i in range(24)}
    assert max(counts.values()) <= 4 and counts[5] >= 3 and counts[11] >= 3  # at most log2(8) + 1
    assert counts[20] == 1 and counts[0] >= 2
    assert res.calls == sum(len(ids) for ids in tried) and res.invocations == len(tried)
    assert res.problems[0].startswith("2 of 24 row x trial results are unscored (1 crash, 1 timeout)")
    assert "22/24 scored, INCOMPLETE" in stream.getvalue()


def test_a_harness_that_scores_in_order_costs_two_timeouts_per_hanging_row(checkout: Path, tmp_path: Path) -> None:
    # it stopped at its first unwritten row, so that row is re-run alone first: the shard's wait
    # and the row's own, not one wait per halving level
    log = tmp_path / "tried.jsonl"
    rows = [{"id": i, "crash": i == 3, "hang": i == 21} for i in range(32)]
    spec = EvalSpec(command=f"{shlex.quote(sys.executable)} poison.py", shard_size=16)
    with _env({"HARNESS_LOG": str(log), "POISON_IN_ORDER": "1"}):
        res = run(spec, checkout, rows, timeout_s=1.0, concurrency=4)
    assert {r.id: r.status for r in res.results if r.status != "ok"} == {3: "crash", 21: "timeout"}
    tried = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(ids == [21] for ids in tried) == 1 and sum(21 in ids for ids in tried) == 2
    assert sum(3 in ids for ids in tried) == 2
    assert res.invocations == len(tried) <= 2 + 3 + 3  # two shards, each re-run as [first] + two halves


def test_rows_isolated_by_bisection_are_cached_and_the_failing_row_alone_is_retried(checkout: Path, tmp_path: Path) -> None:
    rows = [{"id": i, "crash": i == 2} for i in range(8)]
    spec = EvalSpec(command=f"{shlex.quote(sys.executable)} poison.py", harness_hash="h1", shard_size=4)
    cache = Cache(tmp_path / "cache")
    first = run(spec, checkout, rows, cache=cache, tree_id="t")
    assert [r.id for r in first.results if r.status != "ok"] == [2] and first.spent_usd == pytest.approx(0.007)
    second = run(spec, checkout, rows, cache=cache, tree_id="t")
    assert second.cache_hits == 7 and second.calls == 1 and second.invocations == 1
    assert second.results[2].status == "crash"


@pytest.mark.parametrize("poison", ["crash", "hang"])
def test_a_harness_that_fails_on_every_row_is_not_bisected(checkout: Path, tmp_path: Path, poison: str) -> None:
    """Bisection needs evidence that the harness can work: some invocation of the run wrote a
    line. Without it, re-running every row alone would multiply the cost of a broken harness."""
    log = tmp_path / "tried.jsonl"
    rows = [{"id": i, poison: True} for i in range(12)]
    spec = EvalSpec(command=f"{shlex.quote(sys.executable)} poison.py", shard_size=4)
    t0 = time.monotonic()
    with _env({"HARNESS_LOG": str(log)}):
        res = run(spec, checkout, rows, timeout_s=1.0, concurrency=3)
    assert time.monotonic() - t0 < 5 and res.invocations == 3 and len(log.read_text().splitlines()) == 3
    assert {r.status for r in res.results} == {"crash" if poison == "crash" else "timeout"}
    assert res.warnings == ()
    assert sum("no invocation of this run wrote a result line (the harness seems to fail on every row)" in p for p in res.problems) == 3


def test_timeout_s_is_per_row_so_a_long_shard_that_keeps_writing_is_not_killed(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DELAY_S", "0.4")
    spec = EvalSpec(command=cmd("deterministic").command, shard_size=8)
    res = run(spec, checkout, rows_for(8), timeout_s=1.5)
    assert res.complete and res.invocations == 1 and res.wall_s > 3  # 8 x 0.4 s, each row well within 1.5 s


def test_a_lying_harness_gets_every_lie_reported_with_row_and_line(checkout: Path) -> None:
    ids = ["ok1", "omit", "nonnum", "nan", "inf", "bool", "noscore", "dup", "ok2"]
    res = run(EvalSpec(command=cmd("liar").command, shard_size=100), checkout, [{"id": i} for i in ids])
    by_id = {r.id: r for r in res.results}
    assert by_id["ok1"].score == 0.25 and by_id["ok2"].score == 0.25 and by_id["bool"].score == 1.0
    assert {i: by_id[i].status for i in ids if by_id[i].status != "ok"} == {
        "omit": "missing", "nonnum": "invalid", "nan": "invalid", "inf": "invalid", "noscore": "invalid", "dup": "invalid",
    }
    text = "\n".join(res.problems)
    assert "line 2: not a JSON object: 'this is not json'" in text
    assert "line 3: score 'high' for row 'nonnum' is not a number" in text
    assert "line 4: score nan for row 'nan' is not finite" in text
    assert "line 5: score inf for row 'inf' is not finite" in text
    assert "line 7: row 'noscore' has no score" in text
    assert "lines 8, 9: row 'dup' written 2 times" in text
    assert "line 11: unknown row id 'ghost'" in text
    assert "line 12: not a JSON object: '[1, 2, 3]'" in text
    assert "no result line for rows 'omit'" in text
    assert not res.complete
    assert res.problems[0].startswith("6 of 9 row x trial results are unscored")


def test_score_fallback_is_aggregate_only_with_a_warning(checkout: Path) -> None:
    res = run(cmd("score_only"), checkout, rows_for(10), trials=[0, 1])
    assert res.aggregate_only and res.complete
    assert dict(res.aggregate_scores) == {0: 0.75, 1: 0.75}
    assert all(r.score is None and r.status == "ok" for r in res.results)
    assert "paired tests and per-slice results are impossible" in res.warnings[0]


def test_python_mode_calls_the_function_with_row_arm_trial_params(checkout: Path) -> None:
    rows = [{"id": i} for i in range(6)] + [{"id": 6, "plain": True}]
    res = run(EvalSpec(python="pymod:score"), checkout, rows, trials=[0, 2])
    assert res.complete and res.calls == 14
    first = res.results[0]
    assert first.score == 1.0 and first.cost_usd == 0.001 and first.output == f"v2/0/1/{checkout}"
    assert first.latency_ms is not None and first.latency_ms >= 0
    assert res.for_trial(2)[-1].score == 1.0 and res.for_trial(2)[-1].latency_ms is not None


def test_python_mode_timeout_transient_retry_exceptions_and_worker_death(checkout: Path) -> None:
    rows = [
        {"id": 0, "sleep": 5}, {"id": 1, "transient": 2}, {"id": 2, "transient": 1}, {"id": 3, "raise": "bad row"},
        {"id": 4, "transient": 9}, {"id": 5},
    ]
    res = run(EvalSpec(python="pymod:score"), checkout, rows, timeout_s=1.0)
    by_id = {r.id: r for r in res.results}
    assert by_id[0].status == "timeout" and "did not return within 1 s (timeout_s)" in (by_id[0].error or "")
    assert by_id[1].score == 1.0 and by_id[2].score == 1.0 and by_id[5].score == 1.0
    assert by_id[3].status == "crash" and (by_id[3].error or "").startswith("ValueError: bad row")
    assert by_id[4].status == "crash" and "still transient after 3 attempts: TransientError: slow down" in (by_id[4].error or "")
    assert res.wall_s < 4 and not res.complete


def test_python_worker_death_is_a_crash_and_the_worker_restarts(checkout: Path) -> None:
    rows = [{"id": 0, "exit": True}, *({"id": i} for i in range(1, 6))]
    res = run(EvalSpec(python="pymod:score"), checkout, rows, concurrency=1)
    by_id = {r.id: r for r in res.results}
    assert by_id[0].status == "crash" and "python worker exited with code 7" in (by_id[0].error or "")
    assert all(by_id[i].score == 1.0 for i in range(1, 6))


def test_python_import_failure_crashes_every_row_with_the_reason(checkout: Path) -> None:
    res = run(EvalSpec(python="nosuchmodule:score"), checkout, rows_for(3))
    assert all(r.status == "crash" for r in res.results)
    assert "could not load nosuchmodule:score: ModuleNotFoundError" in (res.results[0].error or "")


def test_two_checkouts_with_the_same_module_name_do_not_collide(checkout: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(checkout, other)
    (other / "pymod.py").write_text((other / "pymod.py").read_text().replace("VALUE = 1.0", "VALUE = 0.0"))
    spec = EvalSpec(python="pymod:score")
    out: dict[str, EvalRun] = {}
    threads = [
        threading.Thread(target=lambda c=c, n=n: out.__setitem__(n, run(spec, c, rows_for(5), workdir=tmp_path / f"w{n}")))
        for n, c in (("a", checkout), ("b", other))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.score for r in out["a"].results} == {1.0} and {r.score for r in out["b"].results} == {0.0}


def test_cache_second_identical_run_makes_no_calls(checkout: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    first = run(cmd("deterministic"), checkout, rows_for(10), trials=[0, 1, 2], cache=cache, tree_id="tree1")
    assert calls(checkout) == 30 and first.cache_hits == 0
    second = run(cmd("deterministic"), checkout, rows_for(10), trials=[0, 1, 2], cache=cache, tree_id="tree1")
    assert calls(checkout) == 30 and second.calls == 0 and second.cache_hits == 30 and second.complete
    assert [r.score for r in second.results] == [r.score for r in first.results]
    assert second.results[0].cached and second.cost_usd == pytest.approx(0.3) and second.spent_usd == 0
    # a new trial index is a new entry, not a copy of trial 0
    third = run(cmd("deterministic"), checkout, rows_for(10), trials=[0, 3], cache=cache, tree_id="tree1")
    assert third.cache_hits == 10 and third.calls == 10


@pytest.mark.parametrize(
    "change",
    [{"tree_id": "tree2"}, {"params": {"p": 2}}, {"harness": "h2"}, {"split": "train"}, {"row": True}],
)
def test_cache_invalidation(checkout: Path, tmp_path: Path, change: dict[str, Any]) -> None:
    cache = Cache(tmp_path / "cache")
    run(cmd("deterministic"), checkout, rows_for(4), cache=cache, tree_id="tree1")
    rows = rows_for(4)
    if "row" in change:
        rows[0]["text"] = "edited"
    spec = EvalSpec(command=cmd("deterministic").command, harness_hash=change.get("harness", "h1"))
    kw = {k: v for k, v in change.items() if k in ("tree_id", "params", "split")}
    res = run(spec, checkout, rows, cache=cache, **{"tree_id": "tree1", **kw})
    assert res.calls == (1 if "row" in change else 4)


def test_an_interrupted_run_resumes_where_it_stopped(checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DELAY_S", "0.25")
    cache = Cache(tmp_path / "cache")
    spec = EvalSpec(command=cmd("deterministic").command, harness_hash="h1", shard_size=1)
    first = run(spec, checkout, rows_for(12), cache=cache, tree_id="t", concurrency=2, run_timeout_s=0.9)
    done = sum(r.status == "ok" for r in first.results)
    assert 0 < done < 12 and not first.complete and first.stop_reason == "run_timeout"
    second = run(spec, checkout, rows_for(12), cache=cache, tree_id="t", concurrency=4)
    assert second.complete and second.cache_hits == done and second.calls == 12 - done


def test_rows_of_a_running_shard_are_cached_as_written_so_a_killed_shard_resumes(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_DELAY_S", "0.1")
    cache = Cache(tmp_path / "cache")
    spec = EvalSpec(command=cmd("deterministic").command, harness_hash="h1", shard_size=40)
    first = run(spec, checkout, rows_for(40), cache=cache, tree_id="t", run_timeout_s=1.2)
    done = sum(r.status == "ok" for r in first.results)
    assert 3 < done < 40 and first.results[-1].status == "timeout"
    second = run(spec, checkout, rows_for(40), cache=cache, tree_id="t", run_timeout_s=None)
    assert second.cache_hits == done and second.calls == 40 - done and second.complete


def test_a_streamed_row_later_written_twice_is_dropped_from_the_cache(checkout: Path, tmp_path: Path) -> None:
    (checkout / "late_dup.py").write_text(
        "import json, os, time\n"
        "out = open(os.environ['GITERA_OUT'], 'w')\n"
        "out.write(json.dumps({'id': 1, 'score': 1}) + '\\n'); out.flush(); time.sleep(0.6)\n"
        "out.write(json.dumps({'id': 1, 'score': 0}) + '\\n'); out.write(json.dumps({'id': 2, 'score': 1}) + '\\n')\n"
    )
    cache = Cache(tmp_path / "cache")
    res = run(cmd("late_dup"), checkout, [{"id": 1}, {"id": 2}], cache=cache, tree_id="t", concurrency=1)
    assert [r.status for r in res.results] == ["invalid", "ok"]
    again = run(cmd("late_dup"), checkout, [{"id": 1}, {"id": 2}], cache=cache, tree_id="t", concurrency=1)
    assert again.cache_hits == 1 and again.calls == 1


def test_only_ok_results_are_cached(checkout: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    ids = ["ok1", "omit", "nonnum"]
    run(cmd("liar"), checkout, [{"id": i} for i in ids], cache=cache, tree_id="t")
    again = run(cmd("liar"), checkout, [{"id": i} for i in ids], cache=cache, tree_id="t")
    assert again.cache_hits == 1 and again.calls == 2


def test_budget_stops_launching_before_it_would_be_exceeded(checkout: Path) -> None:
    spec = EvalSpec(command=cmd("deterministic").command, shard_size=1)
    stream = io.StringIO()
    res = run(spec, checkout, rows_for(20), concurrency=2, budget=Budget(0.075, spent_before=0.02), progress=Progress(stream))
    assert res.stop_reason == "budget" and not res.complete
    assert 0.02 + res.spent_usd <= 0.075 + 1e-9 and res.spent_usd == pytest.approx(0.05)
    assert sum(r.status == "missing" for r in res.results) == 15
    assert "not run: the next calls would exceed the $0.075 cost budget" in res.problems[1]
    assert any("reached 80% of the $0.075 budget" in w for w in res.warnings)
    assert "gitera: warning: cost so far" in stream.getvalue()


def test_budget_estimate_from_the_pilot_allows_a_parallel_first_wave(checkout: Path) -> None:
    spec = EvalSpec(command=cmd("deterministic").command, shard_size=1)
    res = run(spec, checkout, rows_for(6), concurrency=3, budget=Budget(1.0, est_cost_per_call=0.01))
    assert res.complete and res.spent_usd == pytest.approx(0.06)


def ledger(path: Path) -> list[float]:
    """What a costly harness was billed: one charge per row it started (tests/harnesses/costly.py)."""
    return [float(x) for x in path.read_text().split()] if path.exists() else []


COSTLY = {"command": cmd("costly"), "python": EvalSpec(python="pymod:costly", harness_hash="h1")}


@pytest.mark.parametrize("mode", ["command", "python"])
def test_the_cap_holds_when_real_costs_are_three_times_the_pilot_estimate(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """docs/eval-contract.md#budget: total spend <= cap + concurrency x one row's real cost."""
    estimate, real, n, concurrency = 0.01, 0.03, {"command": 200, "python": 60}[mode], 4
    before, room = 0.5, n // 2 * real - 0.15  # room for a little under half the rows at their real cost
    bill = tmp_path / "ledger.txt"
    for name, value in (("HARNESS_LEDGER", bill), ("HARNESS_COST_USD", real), ("HARNESS_DELAY_S", 0.03 if mode == "command" else 0.02)):
        monkeypatch.setenv(name, str(value))
    cache = Cache(tmp_path / "cache")
    cap = before + room
    budget = Budget(cap, spent_before=before, est_cost_per_call=estimate)
    res = run(COSTLY[mode], checkout, rows_for(n), concurrency=concurrency, budget=budget, cache=cache, tree_id="t")
    assert before + sum(ledger(bill)) <= cap + concurrency * real + 1e-9, (sum(ledger(bill)), res.warnings)
    assert before + res.spent_usd <= cap + 1e-9  # what the harness reported for the rows it wrote
    assert res.stop_reason == "budget" and not res.complete
    done = [r for r in res.results if r.status == "ok"]
    missing = [r for r in res.results if r.status == "missing"]
    assert len(done) + len(missing) == n and 0 < len(done) < n // 2
    assert {r.error for r in missing} == {f"not run: the next calls would exceed the ${cap:g} cost budget"}
    if mode == "command":  # the in-flight invocations were stopped and their unwritten rows not bisected
        assert any("past the $" in w and "running invocation(s); no further calls start" in w for w in res.warnings), res.warnings
        # an invocation stopped before its first line ran never wrote the counter (seen at load 16 on 2 cores)
        assert 1 <= len((checkout / "counter.txt").read_text().split()) <= res.invocations <= concurrency
    again = run(COSTLY[mode], checkout, rows_for(n), concurrency=concurrency, cache=cache, tree_id="t")
    assert again.complete and again.cache_hits == len(done)  # every row written before the stop was kept


@pytest.mark.parametrize("mode", ["command", "python"])
def test_before_any_cost_arrives_the_first_wave_is_sized_at_one_and_a_half_times_the_estimate(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Eight one-row calls could start at once; the pilot's estimate ($0.01, really $0.03) would
    let six fit the $0.06 left, 1.5 x the estimate only four. Their costs arrive together, so
    nothing more starts: $0.12 spent where trusting the estimate would have spent $0.18."""
    bill = tmp_path / "ledger.txt"
    for name, value in (("HARNESS_LEDGER", bill), ("HARNESS_COST_USD", 0.03), ("HARNESS_DELAY_S", 0.3)):
        monkeypatch.setenv(name, str(value))
    spec = replace(COSTLY[mode], shard_size=1) if mode == "command" else COSTLY[mode]
    res = run(spec, checkout, rows_for(8), concurrency=8, budget=Budget(0.06, est_cost_per_call=0.01))
    assert ledger(bill) == [0.03] * 4 and res.spent_usd == pytest.approx(0.12)
    assert res.stop_reason == "budget" and [r.status for r in res.results].count("missing") == 4


def test_only_as_many_running_invocations_stop_as_the_budget_needs(checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two shards of ten rows at $0.02 a row (twice the estimate) with $0.31 left: stopping one
    shard is enough, so the other scores all its rows."""
    bill = tmp_path / "ledger.txt"
    for name, value in (("HARNESS_LEDGER", bill), ("HARNESS_COST_USD", 0.02), ("HARNESS_DELAY_S", 0.1)):
        monkeypatch.setenv(name, str(value))
    spec = EvalSpec(command=cmd("costly").command, shard_size=10)
    res = run(spec, checkout, rows_for(20), concurrency=2, budget=Budget(0.31, est_cost_per_call=0.01))
    ok = {r.id for r in res.results if r.status == "ok"}
    assert set(range(10)) <= ok or set(range(10, 20)) <= ok, sorted(ok)
    assert len(ok) < 20 and res.stop_reason == "budget" and sum(ledger(bill)) <= 0.31 + 2 * 0.02 + 1e-9
    assert sum("stopped 1 running invocation(s)" in w for w in res.warnings) == 1, res.warnings


def test_bad_inputs_are_config_errors(checkout: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        EvalSpec()
    with pytest.raises(ConfigError, match="module:function"):
        EvalSpec(python="not a target")
    with pytest.raises(ConfigError, match="twice"):
        run(cmd("deterministic"), checkout, [{"id": 1}, {"id": "1"}])
    with pytest.raises(ConfigError, match="no usable `id`"):
        run(cmd("deterministic"), checkout, [{"text": "x"}])


def test_progress_is_quiet_off_a_tty_and_draws_one_line_on_a_tty(checkout: Path) -> None:
    quiet, tty = io.StringIO(), io.StringIO()
    run(cmd("deterministic"), checkout, rows_for(5), progress=Progress(quiet))
    run(cmd("deterministic"), checkout, rows_for(5), progress=Progress(tty, tty=True))
    assert quiet.getvalue().count("\n") == 1 and "v2 (dev): 5/5 scored, complete" in quiet.getvalue()
    assert "\r[" in tty.getvalue() and "5/5 rows 100% ETA" in tty.getvalue()


def test_plan_shards_gives_even_waves() -> None:
    shards = plan_shards({t: [str(i) for i in range(1000)] for t in range(3)}, 32, cpus=64)
    sizes = [len(s.keys) for s in shards]
    assert len(shards) == 32 and sizes == sorted(sizes, reverse=True) and sizes[0] == 100
    assert len(plan_shards({0: [str(i) for i in range(96)]}, 32, cpus=2)) == 32  # one even wave
    assert sorted(k for s in shards if s.trial == 1 for k in s.keys) == sorted(str(i) for i in range(1000))
    assert len(plan_shards({0: ["a", "b", "c"]}, 8)) == 3
    assert [len(s.keys) for s in plan_shards({0: list("abcde")}, 8, shard_size=2)] == [2, 2, 1]


def test_plan_shards_fills_slots_across_trials_when_a_later_start_is_cheap() -> None:
    """3 x 1,000 rows on 32 slots: equal shards per trial leave some slots 100 rows; filling
    slots of 94 rows in turn (two shards where one trial ends and the next begins) does not."""
    pending = {t: [str(i) for i in range(1000)] for t in range(3)}
    shards = plan_shards(pending, 32, cpus=2)
    assert len(shards) == 34 and max(len(s.keys) for s in shards) == 94
    for t in range(3):
        assert [k for s in sorted(shards, key=lambda s: s.index) if s.trial == t for k in s.keys] == pending[t]
    loads = [0] * 32  # the scheduler's order: largest first, each to the slot that frees first
    for s in shards:
        loads[loads.index(min(loads))] += len(s.keys)
    assert max(loads) == 94


def test_parse_lines_ignores_a_cut_off_last_line() -> None:
    parsed = parse_lines('{"id": 1, "score": 1}\n{"id": 2, "sc', {"1": 1, "2": 2}, "out")
    assert set(parsed.found) == {"1"} and "line 2: unterminated last line ignored" in parsed.problems[0]
    assert set(parse_lines('{"id": 1, "score": 1}', {"1": 1}, "out").found) == {"1"}


def test_check_pilot_flags_missing_null_placeholder_and_inconsistent_fields() -> None:
    good = RowResult("r1", 0, 1.0, cost_usd=0.01, latency_ms=120.0, output="billing", tokens=50)
    assert check_pilot({"v1": [good], "v2": [good]}) == []
    problems = check_pilot({
        "v1": [good],
        "v2": [RowResult("r1", 0, 0.0, cost_usd=None, latency_ms=3.0, output="TODO")],
        "v3": [RowResult("r1", 0, None, "crash", error="exit code 1\nmore")],
        "v4": [],
    })
    assert problems == [
        "arm v2 row 'r1' trial 0: `cost_usd` is missing or null; the harness must report it for every row",
        "arm v2 row 'r1' trial 0: `output` is a placeholder ('TODO')",
        "arm v3 row 'r1' trial 0: status crash: exit code 1",
        "arm v4: no pilot result",
        "`tokens` is reported for arms v1 but not for v2; report it for every arm",
    ]


@pytest.mark.parametrize("kind", ["command", "python"])
def test_starter_harnesses_run_as_is_and_pass_the_pilot(tmp_path: Path, kind: str) -> None:
    co = tmp_path / f"co-{kind}"
    (co / "eval").mkdir(parents=True)
    template = Path(__file__).parents[1] / "gitera" / "templates" / f"harness_{kind}.py"
    shutil.copy(template, co / "eval" / "harness.py")
    spec = EvalSpec(command=f"{shlex.quote(sys.executable)} eval/harness.py") if kind == "command" else EvalSpec(python="eval.harness:score")
    rows = [
        {"id": "a", "text": "I want a refund", "expected": "billing"},
        {"id": "b", "text": "reset my password", "expected": "billing"},
    ]
    res = run(spec, co, rows, trials=[0, 1, 2], workdir=tmp_path / f"w-{kind}")
    assert res.complete and [r.score for r in res.for_trial(0)] == [1.0, 0.0]
    assert res.results[1].output == "account" and res.results[1].finding == "wrong_label"
    assert check_pilot({"v1": res.for_trial(0)[:1], "v2": res.for_trial(1)[:1]}) == []


@pytest.mark.parametrize("rows", [["hang"], ["hang", "r1", "r2", "r3"]])
def test_ctrl_c_kills_every_running_eval_process_group(checkout: Path, tmp_path: Path, rows: list[str]) -> None:
    import signal
    import subprocess

    script = tmp_path / "driver.py"
    script.write_text(
        "import sys\nfrom pathlib import Path\nfrom gitera.adapters.evalrun import EvalSpec, run_eval\nfrom gitera.adapters.progress import Progress\n"
        f"co = Path({str(checkout)!r})\n"
        "try:\n"
        "    run_eval(EvalSpec(command=sys.executable + ' hang.py'), checkout=co, tag='t', arm='a', params={},\n"
        f"             split='dev', rows=[{{'id': i}} for i in {rows!r}], trials=[0], concurrency=1, timeout_s=60,\n"
        f"             workdir=Path({str(tmp_path / 'w')!r}), progress=Progress(sys.stderr))\n"
        "except KeyboardInterrupt:\n    sys.exit(130)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    pids = checkout / "pids.txt"
    deadline = time.monotonic() + 10
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    assert "re-running" not in (proc.stderr.read() if proc.stderr else "")  # what Ctrl-C killed is not bisected
    parent, child = map(int, pids.read_text().split())
    deadline = time.monotonic() + 2
    while not (_gone(parent) and _gone(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(parent) and _gone(child)


def _pilot_of(line: dict[str, Any]) -> list[str]:
    base = {"id": "r1", "score": 1, "cost_usd": 0.01, "latency_ms": 3.0}
    return check_pilot({"v1": [interpret({**base, **line}, "r1", 0, "out line 1").result]})


def test_the_pilot_refuses_null_fields_and_placeholders_in_fields_gitera_does_not_know() -> None:
    assert _pilot_of({"output": "billing", "finding": None, "tokens": 3, "answer": "billing", "meta": {"n": 2}}) == []
    assert _pilot_of({"output": None}) == ["arm v1 row 'r1' trial 0: `output` is null"]
    assert _pilot_of({"tokens": None}) == ["arm v1 row 'r1' trial 0: `tokens` is null"]
    assert _pilot_of({"answer": "TODO", "reason": None}) == [
        "arm v1 row 'r1' trial 0: `answer` is a placeholder ('TODO')", "arm v1 row 'r1' trial 0: `reason` is null",
    ]
    assert _pilot_of({"meta": {"label": " n/a "}, "steps": ["parse", "…"]}) == [
        "arm v1 row 'r1' trial 0: `meta.label` is a placeholder (' n/a ')", "arm v1 row 'r1' trial 0: `steps[1]` is a placeholder ('…')",
    ]
    assert _pilot_of({"deep": {"er": {"x": "TODO"}}}) == []  # only one level down


_extra_names = st.text(st.characters(codec="ascii", categories=("L", "N", "Pc")), min_size=1, max_size=12).filter(lambda n: n not in KNOWN_FIELDS)
_placeholders = st.builds(
    lambda p, upper, pad: f"{pad}{p.upper() if upper else p}{pad}",
    st.sampled_from(sorted(PLACEHOLDERS)), st.booleans(), st.sampled_from(["", " ", "\t", "  "]),
)
_real_text = st.text(min_size=1, max_size=40).filter(lambda t: not is_placeholder(t))
_json_scalars = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), _real_text)


@settings(max_examples=200, deadline=None)
@given(
    score=st.one_of(st.integers(-10**6, 10**6), st.floats(-MAX_ABS_SCORE, MAX_ABS_SCORE), st.booleans()),  # beyond: invalid (issue 12)
    extras=st.dictionaries(_extra_names, st.one_of(_json_scalars, st.lists(_json_scalars, max_size=3), st.dictionaries(_extra_names, _json_scalars, max_size=3)), max_size=4),
    bad_name=_extra_names, bad=_placeholders, nest=st.sampled_from(["top", "map", "list"]), finding=st.one_of(st.none(), _real_text),
)
def test_parsing_a_result_line_flags_exactly_the_placeholder_fields(
    score: float, extras: dict[str, Any], bad_name: str, bad: str, nest: str, finding: str | None
) -> None:
    line = {"id": 7, "score": score, "finding": finding, **extras}
    clean = interpret(json.loads(json.dumps(line)), 7, 0, "out line 1").result
    assert clean.status == "ok" and clean.score == float(score) and clean.suspect == ()
    value: Any = {"top": bad, "map": {"k": bad}, "list": ["fine", bad]}[nest]
    path = {"top": bad_name, "map": f"{bad_name}.k", "list": f"{bad_name}[1]"}[nest]
    flagged = interpret({**line, bad_name: value}, 7, 0, "out line 1").result
    assert flagged.score == float(score) and flagged.suspect == (f"`{path}` is a placeholder ({bad!r})",)


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(categories=("L", "N", "P", "Zs", "Cs")), max_size=30), field=st.sampled_from(["output", "finding", "error"]))
def test_any_text_a_harness_writes_can_be_stored_as_utf8(text: str, field: str) -> None:
    """JSON allows lone surrogates ("\\ud800"); the cache, per-row files and terminal need UTF-8."""
    line = json.dumps({"id": 7, "score": 1, field: text})  # ensure_ascii: exactly what a harness may write
    result = interpret(json.loads(line), 7, 0, "out line 1").result
    stored = json.dumps({**result.to_json(), "output_full": result.output_full}, ensure_ascii=False)
    stored.encode("utf-8")  # raised UnicodeEncodeError on a lone surrogate
    kept = {"output": result.output, "finding": result.finding, "error": result.error}[field]
    if text and not any("\ud800" <= c <= "\udfff" for c in text):
        assert kept is not None and text in kept  # other text is kept as it was


def test_a_lone_surrogate_in_a_harness_output_is_scored_and_cached_not_a_traceback(checkout: Path, tmp_path: Path) -> None:
    (checkout / "surrogate.py").write_text(
        "import json, os\n"
        "rows = [json.loads(x) for x in open(os.environ['GITERA_ROWS'])]\n"
        "with open(os.environ['GITERA_OUT'], 'w') as out:\n"
        "    for r in rows:\n"
        "        out.write('{\"id\": %s, \"score\": 1, \"output\": \"half a pair \\\\ud800 here\", \"finding\": \"\\\\udfff\"}\\n' % json.dumps(r['id']))\n"
    )
    cache = Cache(tmp_path / "cache")
    res = run(cmd("surrogate"), checkout, rows_for(3), cache=cache, tree_id="tree")
    assert res.complete and [r.output for r in res.results] == ["half a pair \ufffd here"] * 3
    assert {r.finding for r in res.results} == {"\ufffd"}
    again = run(cmd("surrogate"), checkout, rows_for(3), cache=cache, tree_id="tree")
    assert again.cache_hits == 3 and [(r.output, r.finding) for r in again.results] == [(r.output, r.finding) for r in res.results]


def test_a_lone_surrogate_in_a_python_exception_is_recorded_not_a_traceback(checkout: Path) -> None:
    from gitera.domain.scoring import results_jsonl

    res = run(EvalSpec(python="pymod:score"), checkout, [{"id": 0, "raise": "half a pair \ud800"}, {"id": 1}])
    bad = res.results[0]
    assert bad.status == "crash" and (bad.error or "").startswith("ValueError: half a pair \ufffd")
    assert all("\ud800" not in p for p in res.problems)
    assert b"half a pair" in results_jsonl(res)  # the per-row file gitera commits can be written
