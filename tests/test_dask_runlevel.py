"""Run-level experiments on the Dask executor: each run of the script is a task on a real
distributed.LocalCluster (separate worker processes over TCP on loopback, tests/daskcluster.py).

What a script saw on a worker is recorded by the script itself in $SPY_DIR, which the workers
inherited when the cluster started (the client's environment never crosses the wire).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gitera.adapters.evalrun import cluster as dask_cluster
from gitera.adapters.evalrun import remote
from gitera.adapters.git import Repo, tree_tar
from gitera.adapters.runscript import Invocation, RunResult, RunSpec, run_scripts
from gitera.core.runscore import line_patterns, read_run
from tests.conftest import git, run_gitera
from tests.daskcluster import a_worker_killed_mid_run, all_gone, ctrl_c_mid_run, spied
from tests.runproject import set_lr, synthetic_project, through_run

SCRIPT = '''\
import json, os, random, sys, time
params = json.loads(os.environ["GITERA_ARM_PARAMS"])
trial = int(os.environ["GITERA_TRIAL"])
spy = os.environ.get("SPY_DIR")
if spy:
    with open(os.path.join(spy, os.environ["GITERA_TAG"] + ".jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "trial": trial, "env": sorted(os.environ)}) + "\\n")
mode = params.get("modes", {}).get(str(trial), "ok")
time.sleep(params.get("sleep", 0))
rng = random.Random(trial)
print("peak_mb: %.4f" % (100 + rng.random()))  # early: far before the tail a worker sends back
if mode == "early":
    print("loss: %.6f" % (9 + rng.random()))
for i in range(params.get("noise_lines", 0)):  # a training log longer than the tail
    print("step %d val_loss: %.6f" % (i, rng.random()))
if mode == "crash":
    print("CUDA out of memory", file=sys.stderr)
    sys.exit(3)
if mode == "hang":
    time.sleep(600)
if mode in ("early", "invalid"):
    sys.exit(0)
with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
    json.dump({"cost_usd": 0.001 * (trial + 1)}, out)
print("loss: %.6f" % (0.5 + rng.gauss(0, 0.01)))
'''
SPEC = RunSpec(f"{sys.executable} run.py", 3.0, "loss", ("memory_mb",), {"memory_mb": r"^peak_mb:\s*(\S+)"}, "h", ("SPY_DIR",))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "run.py").write_text(SCRIPT)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a training script")
    return root


def runs(project: Path, tag: str, trials: Sequence[int], address: str | None, params: Mapping[str, Any], *, spec: RunSpec = SPEC,
         concurrency: int = 4) -> list[RunResult]:
    repo = Repo.find(project)
    commit = repo.rev("HEAD")
    assert commit is not None
    where = Invocation(project, tag, "v2", dict(params), "dev", project.parent / f"work-{tag}")
    on = None if address is None else dask_cluster.Remote(address, commit, lambda: tree_tar(repo, commit))
    return run_scripts(spec, where, trials, concurrency=concurrency, remote=on)


def records(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.record().items() if k != "seconds"} for r in results]


def test_runs_on_the_cluster_score_exactly_what_local_runs_score(project: Path, cluster: Any, client: Any, spy_dir: Path,
                                                                 workers_dir: str) -> None:
    """The same seeded script, every outcome: scored runs (a secondary printed 100 KB before the end,
    far outside the tail a worker sends), a score only early in a long log, a crash, no score, a timeout."""
    params = {"noise_lines": 4000, "modes": {"4": "early", "5": "crash", "6": "invalid", "7": "hang"}}
    trials = list(range(8))
    local = runs(project, "same-local", trials, None, params)
    on_cluster = runs(project, "same-dask", trials, cluster.scheduler_address, params)
    assert [r.status for r in local] == ["ok"] * 5 + ["crash", "invalid", "timeout"]
    assert records(on_cluster) == records(local)
    assert local[4].score is not None and local[4].score > 9  # read from a line far before the tail
    assert "CUDA out of memory" in (on_cluster[5].error or "") and "killed after 3 s" in (on_cluster[7].error or "")
    seen = spied(spy_dir, "same-dask")
    assert sorted(s["trial"] for s in seen) == trials  # each run once, each on a worker
    assert all(s["cwd"].startswith(workers_dir) for s in seen)
    assert {"GITERA_TAG", "GITERA_ARM", "GITERA_ARM_PARAMS", "GITERA_SPLIT", "GITERA_TRIAL", "GITERA_OUT"} <= set(seen[0]["env"])
    assert "GITERA_ROWS" not in seen[0]["env"]  # a run-level script gets the run-level contract, as locally
    assert all_gone([s["pid"] for s in seen])  # the hanging run was killed on its worker at the timeout


def test_a_worker_killed_mid_run_is_a_retried_run_recorded_once(project: Path, cluster: Any, client: Any, spy_dir: Path) -> None:
    tag = "killed"
    with a_worker_killed_mid_run(client, spy_dir, tag):  # mid-run: the script is sleeping
        on_cluster = runs(project, tag, [0, 1, 2, 3], cluster.scheduler_address, {"sleep": 2.0})
    local = runs(project, tag + "-local", [0, 1, 2, 3], None, {})
    assert [r.trial for r in on_cluster] == [0, 1, 2, 3] and records(on_cluster) == records(local)  # each run once, as scored locally
    assert len(spied(spy_dir, tag)) > 4  # the lost run ran again on another worker


def test_ctrl_c_on_the_client_cancels_the_runs_and_kills_them_on_the_workers(project: Path, cluster: Any, client: Any, spy_dir: Path,
                                                                             tmp_path: Path) -> None:
    commit = Repo.find(project).rev("HEAD")
    assert commit is not None
    # five hanging runs, three in flight: the two not yet started never start
    call = ("run_scripts(RunSpec(sys.executable + ' run.py', 600.0, 'loss', env=('SPY_DIR',)), "
            f"Invocation(Path({str(project)!r}), 'ctrlc', 'a', {{'modes': {{str(t): 'hang' for t in range(5)}}}}, 'dev', "
            f"Path({str(tmp_path / 'w')!r})), range(5), concurrency=3, remote=remote)")
    ctrl_c_mid_run(tmp_path, project, cluster.scheduler_address, commit, call, spy_dir, "ctrlc", client,
                   "from gitera.adapters.runscript import Invocation, RunSpec, run_scripts")


SPY_TRAIN = """\
import json, os
from prepare import evaluate

LR = 0.1
spy = os.environ.get("SPY_DIR")
if spy:
    with open(os.path.join(spy, "pipeline.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"split": os.environ["GITERA_SPLIT"], "cwd": os.getcwd(), "env": sorted(os.environ),
                             "files": {p: os.path.exists(p) for p in ("data/test.txt", "data/gate.txt")}}) + "\\n")
print(f"loss: {evaluate(LR):.6f}")
print("peak_mb: 12.5")
"""
TEST_MARKER = "the sealed test shard's own line, never on a worker before the verdict"
GATE_MARKER = "the sealed gate shard's own line, only on a worker for the gate's runs"
OFFSETS = ("0.0", f"0.02\n{TEST_MARKER}", f"0.01\n{GATE_MARKER}")
ON_DASK = {"sprint: 3": "sprint: 1",
           "eval: {command: python train.py, timeout_s: 60}":
           "eval: {command: python train.py, timeout_s: 60, env: [SPY_DIR], executor: {kind: dask, address: 'tcp://scheduler.invalid:8786'}}"}


def worker_files(workers_dir: str) -> Iterator[tuple[Path, bytes]]:
    for path in Path(workers_dir).rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path, path.read_bytes()


def test_the_run_level_pipeline_on_the_cluster_and_nothing_sealed_on_a_worker_before_its_time(
        repo: Path, tmp_path: Path, cluster: Any, client: Any, spy_dir: Path, workers_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """lock → split → pilot → run → iterate (and its gate) → verdict → verify with kind: dask. Dev runs
    see no sealed file; the gate's runs see the gate shard only; the verdict's runs see the test shard;
    no byte of a seal and no key is ever on a worker, and the decrypted files leave with their runs.
    The dev run's scores are those the same experiment gets with the local executor."""
    monkeypatch.setenv("GITERA_DASK_ADDRESS", cluster.scheduler_address)  # the frame's address is a placeholder
    synthetic_project(repo, train=SPY_TRAIN, offsets=OFFSETS, edits=ON_DASK, check=True)  # `lock --check`: one run per arm first
    checked = [json.loads(line) for line in (spy_dir / "pipeline.jsonl").read_text().splitlines()]
    assert len(checked) == 2 and all(s["cwd"].startswith(workers_dir) and s["split"] == "dev" for s in checked)
    through_run(repo)
    key_text = (repo / ".git/gitera/keys/rl.key").read_text().strip()
    monkeypatch.setenv("GITERA_SEAL_KEY", key_text)  # the client holds the key in its environment too
    set_lr(repo, "0.3")
    r = run_gitera(repo, "iterate", "-m", "LR 0.3")
    assert r.code == 0 and "KEEP" in r.out and "gate after sprint 1: PASS" in r.out, r.out + r.err

    seen = [json.loads(line) for line in (spy_dir / "pipeline.jsonl").read_text().splitlines()]
    assert seen and all(s["cwd"].startswith(workers_dir) for s in seen)  # every run ran on a worker
    assert {s["split"] for s in seen} == {"dev", "gate"}
    assert all(s["files"] == {"data/test.txt": False, "data/gate.txt": s["split"] == "gate"} for s in seen), seen
    assert all("GITERA_SEAL_KEY" not in s["env"] for s in seen)
    seals = [(repo / f".gitera/rl/split/{name}").read_bytes() for name in ("test.seal", "gate.seal")]
    for path, data in worker_files(workers_dir):
        assert TEST_MARKER.encode() not in data and key_text.encode() not in data, path
        assert GATE_MARKER.encode() not in data, path  # the gate's copy left with the gate's runs
        assert not any(seal[64:128] in data for seal in seals), path  # no copy of a sealed file

    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.out + r.err
    at_verdict = [json.loads(line) for line in (spy_dir / "pipeline.jsonl").read_text().splitlines()][len(seen):]
    assert len(at_verdict) == 6 and {s["split"] for s in at_verdict} == {"test"}  # 2 arms x 3 runs, where the frame says
    assert all(s["cwd"].startswith(workers_dir) and s["files"]["data/test.txt"] for s in at_verdict)
    assert all("GITERA_SEAL_KEY" not in s["env"] for s in at_verdict)
    doc = json.loads((repo / ".gitera/rl/verdict.json").read_text())
    assert doc["decision"]["decision"] == "ship" and all(abs(s - 0.42) < 0.05 for s in [
        json.loads(x)["score"] for x in (repo / ".gitera/rl/runs/test/base.jsonl").read_text().splitlines()])  # ran on the test shard
    for path, data in worker_files(workers_dir):
        assert TEST_MARKER.encode() not in data and key_text.encode() not in data, path  # the test files left with the verdict's runs
    r = run_gitera(repo, "verify")
    assert r.code == 0 and "ok   the verdict recomputed from the test runs is the same" in r.out, r.out + r.err

    here = tmp_path / "local"
    here.mkdir()
    git(here, "init", "-q", "-b", "main")
    synthetic_project(here, train=SPY_TRAIN, offsets=OFFSETS, edits={"sprint: 3": "sprint: 1"})
    through_run(here)
    dask_run, local_run = ({arm: info["runs"] for arm, info in json.loads((root / ".gitera/rl/runs/run-001/summary.json").read_text())["arms"].items()}
                           for root in (repo, here))
    assert dask_run == local_run and len(dask_run["base"]) == 3


def test_a_stdout_cut_to_its_tail_reads_as_the_whole(tmp_path: Path) -> None:
    """The worker sends stdout's last 64 KiB and, in front, the last earlier line of each kind the
    parser reads; the tail starts at a line's start, so half of "val_loss: 9.99" never reads as "loss: 9.99"."""
    patterns = {"memory_mb": r"^peak_mb:\s*(\S+)"}
    keep = line_patterns("loss", ("memory_mb",), patterns)
    head = "peak_mb: 12.5\nloss: 1.5\n" + "an early log line\n" * 100
    block = "loss: 9.99\n" + "a log line that reads as no number at all\n" * 1500
    block += "z" * (remote.STDOUT_TAIL_BYTES - len(block) - 1) + "\n"
    assert len(block.encode()) == remote.STDOUT_TAIL_BYTES
    for text, want in ((head + "val_" + block, 1.5), (head + block, 9.99)):  # the cut inside a line, and at one
        path = tmp_path / "stdout.txt"
        path.write_text(text)
        sent = remote._stdout_tail(path, keep)
        assert len(sent.encode()) < len(text.encode())
        whole, cut = (read_run(t, None, primary="loss", secondary=("memory_mb",), patterns=patterns) for t in (text, sent))
        assert whole.score == want and whole.numbers == {"memory_mb": 12.5}
        assert (cut.score, cut.numbers, cut.source, cut.problems) == (whole.score, whole.numbers, whole.source, whole.problems)


def test_local_runs_never_import_dask(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom pathlib import Path\nfrom gitera.adapters.runscript import Invocation, RunSpec, run_scripts\n"
        f"co = Path({str(tmp_path)!r})\n(co / 'run.py').write_text({SCRIPT!r})\n"
        "got = run_scripts(RunSpec(sys.executable + ' run.py', 30.0, 'loss'), Invocation(co, 't', 'a', {}, 'dev', co / 'w'), [0])\n"
        "assert got[0].status == 'ok', got\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
