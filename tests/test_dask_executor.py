"""The Dask executor on a real distributed.LocalCluster: separate worker processes over TCP on loopback.

One cluster serves the module (2 workers x 4 threads; started with generous timeouts, as the
machine may be busy). The harnesses are committed in a real git repository; what a harness saw
on a worker is recorded by the harness itself in $SPY_DIR, a variable the workers inherited
when the cluster started (the client's environment never crosses the wire).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gitera.adapters.evalrun import Budget, EvalRun, EvalSpec, RetryPolicy, remote, run_eval  # noqa: E402
from gitera.adapters.evalrun import cluster as dask_cluster  # noqa: E402
from gitera.adapters.git import Repo, tree_tar  # noqa: E402
from gitera.core.errors import ConfigError, EvalError  # noqa: E402
from tests.conftest import git, run_gitera  # noqa: E402
from tests.daskcluster import a_worker_killed_mid_run, ctrl_c_mid_run, spied  # noqa: E402
from tests.daskcluster import all_gone as _all_gone  # noqa: E402
from tests.helpers import read_test_rows, synthetic_project  # noqa: E402

HARNESS = '''\
import json, os, sys, time
rows = [json.loads(line) for line in open(os.environ["GITERA_ROWS"], encoding="utf-8")]
params = json.loads(os.environ["GITERA_ARM_PARAMS"])
spy = os.environ.get("SPY_DIR")
if spy:
    with open(os.path.join(spy, os.environ["GITERA_TAG"] + ".jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "ids": [r["id"] for r in rows], "env": sorted(os.environ)}) + "\\n")
with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
    for r in rows:
        time.sleep(params.get("sleep", 0))
        if params.get("hang") or r["id"] in params.get("hang_on", ()):
            time.sleep(600)
        if r["id"] in params.get("crash_on", ()):
            print("poisoned row " + r["id"], file=sys.stderr)
            sys.exit(3)
        text = r["text"]
        out.write(json.dumps({"id": r["id"], "score": len(text) % 3 / 2, "cost_usd": params.get("cost", 0.001), "latency_ms": 2.0,
                              "output": "/".join([os.environ["GITERA_SPLIT"], os.environ["GITERA_TRIAL"], os.environ["GITERA_ARM"], text[::-1]])}) + "\\n")
        out.flush()
'''
PYMOD = '''\
import time
def score(row, arm, trial, params):
    time.sleep(params.get("sleep", 0))
    return {"score": len(row["text"]) % 3 / 2, "cost_usd": params.get("cost", 0.001), "latency_ms": 2.0, "output": f"{arm}/{trial}/{row['text'][::-1]}"}
'''
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "h.py").write_text(HARNESS)
    (root / "pm.py").write_text(PYMOD)
    (root / ".gitattributes").write_text("ignored.txt export-ignore\nsubst.txt export-subst\n")
    (root / "ignored.txt").write_text("git archive would leave this out\n")
    (root / "subst.txt").write_text("$Format:%H$\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "harness")
    return root


def rows_for(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i:03d}", "text": "row " + "x" * (i % 7) + f" number {i}"} for i in range(n)]


def score(project: Path, spec: EvalSpec, rows: Sequence[Mapping[str, Any]], address: str | None, tag: str, **kw: Any) -> EvalRun:
    repo = Repo.find(project)
    commit = repo.rev("HEAD")
    assert commit is not None
    args: dict[str, Any] = dict(
        checkout=project, tag=tag, arm="v2", params={"sleep": 0.0}, split="dev", rows=rows, trials=[0, 1, 2], concurrency=4,
        timeout_s=60.0, workdir=project.parent / f"work-{tag}-{address is not None}", retry=FAST,
    )
    args.update(kw)
    remote_ = None if address is None else dask_cluster.Remote(address, commit, lambda: tree_tar(repo, commit))
    return run_eval(spec, remote=remote_, **args)


def as_records(run: EvalRun) -> list[dict[str, Any]]:
    return [{**r.to_json(), "output_full": r.output_full} for r in run.results]


# SPY_DIR reaches the harness only because the spec passes it through (the frame's eval.env): the
# harness environment is scrubbed alike here and on a worker (evalrun.isolation.harness_env)
COMMAND = EvalSpec(command=f"{sys.executable} h.py", harness_hash="h", env=("SPY_DIR",))
PYTHON = EvalSpec(python="pm:score", harness_hash="h", env=("SPY_DIR",))


@pytest.mark.parametrize("spec", [COMMAND, PYTHON], ids=["command", "python"])
def test_the_cluster_scores_exactly_what_the_local_executor_scores(project: Path, cluster: Any, client: Any, spy_dir: Path,
                                                                   spec: EvalSpec, workers_dir: str) -> None:
    tag = f"same-{spec.mode}"
    rows = rows_for(45)
    local = score(project, spec, rows, None, tag)
    on_cluster = score(project, spec, rows, cluster.scheduler_address, tag)
    assert local.complete and on_cluster.complete and on_cluster.problems == ()
    assert as_records(on_cluster) == as_records(local)
    assert (on_cluster.calls, on_cluster.cost_usd) == (local.calls, pytest.approx(local.cost_usd))
    if spec.mode == "command":
        assert on_cluster.invocations == local.invocations  # the same shards
        seen = spied(spy_dir, tag)
        worker_runs = [s for s in seen if s["cwd"] != str(project)]
        assert worker_runs and all(s["cwd"].startswith(workers_dir) for s in worker_runs)  # they ran on the workers
        assert sorted(i for s in worker_runs for i in s["ids"]) == sorted(r["id"] for r in rows for _ in range(3))  # each row x trial once


def test_a_worker_materializes_the_exact_commit_once_per_commit(project: Path, cluster: Any, client: Any, workers_dir: str) -> None:
    repo = Repo.find(project)
    commit = repo.rev("HEAD")
    assert commit is not None
    first = score(project, COMMAND, rows_for(16), cluster.scheduler_address, "tree1", trials=[0])
    assert first.complete
    holders = {addr: trees for addr, trees in client.run(remote.trees_cached).items() if commit in trees}
    assert holders  # cached per commit on the workers that ran a shard
    trees = [p for p in Path(workers_dir).rglob(f"gitera/trees/{commit}")]
    assert trees
    stamps = {p: p.stat().st_ino for p in trees}
    for tree in trees:  # byte for byte what is committed: no export-ignore, no export-subst
        assert (tree / "ignored.txt").read_text() == "git archive would leave this out\n"
        assert (tree / "subst.txt").read_text() == "$Format:%H$\n"
        assert sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()) == sorted(repo.ls_tree(commit))
    again = score(project, COMMAND, rows_for(16), cluster.scheduler_address, "tree2", trials=[0])
    assert again.complete
    assert {p: p.stat().st_ino for p in trees} == stamps  # not extracted again


def test_a_worker_killed_mid_run_is_a_retried_shard_never_a_lost_or_duplicated_row(project: Path, cluster: Any, client: Any,
                                                                                  spy_dir: Path) -> None:
    tag = "killed"
    rows = rows_for(48)
    sharded = EvalSpec(command=COMMAND.command, harness_hash="h", shard_size=6, env=COMMAND.env)
    with a_worker_killed_mid_run(client, spy_dir, tag):  # mid-shard: its harness sleeps between rows
        run = score(project, sharded, rows, cluster.scheduler_address, tag, params={"sleep": 0.1}, trials=[0])
    local = score(project, sharded, rows, None, tag + "-local", params={"sleep": 0.0}, trials=[0])
    assert run.complete and run.problems == ()
    assert [r["id"] for r in as_records(run)] == [r["id"] for r in rows]  # every row once, in order
    strip = [{k: v for k, v in r.items() if k != "output"} for r in as_records(run)]
    assert strip == [{k: v for k, v in r.items() if k != "output"} for r in as_records(local)]
    invocations = spied(spy_dir, tag)
    assert len(invocations) > run.invocations  # the lost shard ran again on another worker


def test_a_crashing_or_hanging_row_is_bisected_out_on_the_cluster_as_locally(project: Path, cluster: Any, client: Any,
                                                                         spy_dir: Path, workers_dir: str) -> None:
    """Retries and bisection stay on the client: a shard that dies or hangs on a worker is split and
    re-sent until the bad rows stand alone; the other rows are scored, exactly as by the local executor."""
    sharded = EvalSpec(command=COMMAND.command, harness_hash="h", shard_size=8, env=COMMAND.env)
    params = {"sleep": 0.0, "crash_on": ["r005"], "hang_on": ["r011"]}
    local = score(project, sharded, rows_for(24), None, "poison-local", params=params, trials=[0], timeout_s=5.0)
    on_cluster = score(project, sharded, rows_for(24), cluster.scheduler_address, "poison", params=params, trials=[0], timeout_s=5.0)
    statuses = {r.id: r.status for r in on_cluster.results if r.status != "ok"}
    assert statuses == {"r005": "crash", "r011": "timeout"}
    assert [(r.id, r.status, r.score) for r in on_cluster.results] == [(r.id, r.status, r.score) for r in local.results]
    crashed = next(r for r in on_cluster.results if r.id == "r005")
    assert (crashed.error or "").startswith("the command exited with code 3") and "poisoned row r005" in (crashed.error or "")
    tried = [s["ids"] for s in spied(spy_dir, "poison")]
    assert ["r005"] in tried and ["r011"] in tried  # each bad row ended in an invocation of its own, on a worker
    assert all(s["cwd"].startswith(workers_dir) for s in spied(spy_dir, "poison"))
    assert _all_gone([s["pid"] for s in spied(spy_dir, "poison")])  # the hanging harness was killed on its worker


def test_a_budget_stop_cuts_the_shards_running_on_workers(project: Path, cluster: Any, client: Any, spy_dir: Path) -> None:
    tag = "budget"
    n, real, concurrency = 120, 0.01, 4
    cap = 0.9  # the first wave (4 shards of 30 rows at 1.5 x the estimate) fits; the real cost, twice the estimate, does not
    run = score(project, COMMAND, rows_for(n), cluster.scheduler_address, tag, params={"sleep": 0.05, "cost": real}, trials=[0],
                concurrency=concurrency, budget=Budget(cap, est_cost_per_call=real / 2))
    assert run.stop_reason == "budget" and not run.complete
    assert run.spent_usd <= cap + 1e-9
    done = [r for r in run.results if r.status == "ok"]
    missing = [r for r in run.results if r.status == "missing"]
    assert len(done) + len(missing) == n and 0 < len(done) <= cap / real
    assert {r.error for r in missing} == {f"not run: the next calls would exceed the ${cap:g} cost budget"}
    assert any("running invocation(s); no further calls start" in w for w in run.warnings), run.warnings
    pids = [s["pid"] for s in spied(spy_dir, tag)]
    assert pids and _all_gone(pids)  # the cut reached the workers: no harness left running


def test_a_budget_stop_ends_python_mode_shards_between_calls(project: Path, cluster: Any, client: Any) -> None:
    n, real, concurrency, cap = 120, 0.01, 4, 0.9
    run = score(project, PYTHON, rows_for(n), cluster.scheduler_address, "budget-py", params={"sleep": 0.05, "cost": real}, trials=[0],
                concurrency=concurrency, budget=Budget(cap, est_cost_per_call=real / 2))
    assert run.stop_reason == "budget" and not run.complete
    assert run.spent_usd <= cap + concurrency * real + 1e-9  # a call in progress is not stopped, as locally
    done = [r for r in run.results if r.status == "ok"]
    missing = [r for r in run.results if r.status == "missing"]
    assert len(done) + len(missing) == n and 0 < len(done) <= cap / real + concurrency
    assert {r.error for r in missing} == {f"not run: the next calls would exceed the ${cap:g} cost budget"}


def test_ctrl_c_on_the_client_cancels_the_tasks_and_stops_the_harnesses(project: Path, cluster: Any, client: Any, spy_dir: Path,
                                                                       tmp_path: Path) -> None:
    commit = Repo.find(project).rev("HEAD")
    assert commit is not None
    call = (f"run_eval(EvalSpec(command=sys.executable + ' h.py', env=('SPY_DIR',)), checkout=Path({str(project)!r}), tag='ctrlc', "
            "arm='a', params={'hang': True}, split='dev', rows=[{'id': i, 'text': 'x'} for i in range(12)], trials=[0], "
            f"concurrency=3, timeout_s=600, workdir=Path({str(tmp_path / 'w')!r}), remote=remote)")
    ctrl_c_mid_run(tmp_path, project, cluster.scheduler_address, commit, call, spy_dir, "ctrlc", client,
                   "from gitera.adapters.evalrun import EvalSpec, run_eval")  # three shards of four hanging rows each


def test_the_clients_environment_does_not_cross_the_wire(project: Path, cluster: Any, client: Any, spy_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_ONLY_TOKEN", "s3cr3t")
    monkeypatch.setenv("CLIENT_UNDECLARED", "x")
    monkeypatch.setenv("GITERA_SEAL_KEY", "k" * 44)
    spec = EvalSpec(command=COMMAND.command, harness_hash="h", env=("SPY_DIR", "CLIENT_ONLY_TOKEN"))
    assert score(project, spec, rows_for(4), None, "env-local", trials=[0]).complete
    assert score(project, spec, rows_for(4), cluster.scheduler_address, "env-remote", trials=[0]).complete
    local_env = set(spied(spy_dir, "env-local")[0]["env"])
    remote_env = {k for s in spied(spy_dir, "env-remote") for k in s["env"]}
    assert "CLIENT_ONLY_TOKEN" in local_env and "CLIENT_UNDECLARED" not in local_env  # passed through here, as declared
    # declared or not, a worker's harness sees the worker's own environment, never the client's
    assert "CLIENT_ONLY_TOKEN" not in remote_env and "GITERA_SEAL_KEY" not in remote_env
    assert {"GITERA_TAG", "GITERA_ARM", "GITERA_ARM_PARAMS", "GITERA_SPLIT", "GITERA_TRIAL", "GITERA_ROWS", "GITERA_OUT", "SPY_DIR"} <= remote_env


def test_nothing_of_the_sealed_test_set_reaches_a_worker_before_the_verdict(repo: Path, cluster: Any, client: Any, spy_dir: Path,
                                                                             monkeypatch: pytest.MonkeyPatch, workers_dir: str) -> None:
    """Pilot, run, iterate and the gate on the cluster: no test row, no byte of the seal, no key on
    a worker. The verdict's test scoring then runs where the frame says (the cluster) too."""
    import shutil

    from tests.helpers import SYNTHETIC

    shutil.copy(SYNTHETIC / "harness.py", repo / "policy_harness.py")
    (repo / "spy.py").write_text(
        "import json, os, runpy, sys\n"
        "rows = [json.loads(l) for l in open(os.environ['GITERA_ROWS'], encoding='utf-8')]\n"
        "with open(os.path.join(os.environ['SPY_DIR'], 'pipeline.jsonl'), 'a', encoding='utf-8') as fh:\n"
        "    fh.write(json.dumps({'split': os.environ['GITERA_SPLIT'], 'cwd': os.getcwd(), 'env': sorted(os.environ),\n"
        "                         'ids': [r['id'] for r in rows], 'texts': [r.get('text') for r in rows]}) + '\\n')\n"
        "sys.argv = ['policy_harness.py']\nrunpy.run_path('policy_harness.py', run_name='__main__')\n"
    )
    monkeypatch.setenv("GITERA_DASK_ADDRESS", cluster.scheduler_address)
    synthetic_project(repo, rows=150, harness=repo / "spy.py", locked_extra=("policy_harness.py",), max_iterations=3,
                      eval_extra=", executor: {kind: dask, address: 'tcp://scheduler.invalid:8786'}",
                      frame_edits={"ADVERSARY*]": "ADVERSARY*, SPY_DIR]"},  # the harness may see SPY_DIR (eval.env)
                      policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.7\n"})
    test_rows = read_test_rows(repo, "syn")
    key_text = (repo / ".git/gitera/keys/syn.key").read_text().strip()
    monkeypatch.setenv("GITERA_SEAL_KEY", key_text)  # the client holds the key in its environment too
    r = run_gitera(repo, "run")
    assert r.code == 0, r.err
    (repo / "policy_b.txt").write_text("accuracy: 0.72\n")
    r = run_gitera(repo, "iterate", "-m", "a little more accurate")
    assert r.code == 0, r.err
    r = run_gitera(repo, "gate")
    assert r.code == 0, r.err
    seen = [json.loads(line) for line in (spy_dir / "pipeline.jsonl").read_text().splitlines()]
    assert seen and all(s["cwd"].startswith(workers_dir) for s in seen)  # every invocation ran on a worker
    assert {s["split"] for s in seen} == {"train", "dev", "gate"}
    test_ids = {str(t["id"]) for t in test_rows}
    test_texts = [str(t["text"]) for t in test_rows]
    assert not test_ids & {str(i) for s in seen for i in s["ids"]}
    assert all("GITERA_SEAL_KEY" not in s["env"] for s in seen)
    seal = (repo / ".gitera/syn/split/test.seal").read_bytes()
    for path in Path(workers_dir).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert seal[64:128] not in data, path  # no copy of the sealed file
            assert key_text.encode() not in data, path
            assert not any(t.encode() in data for t in test_texts), path

    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.err
    seen = [json.loads(line) for line in (spy_dir / "pipeline.jsonl").read_text().splitlines()]
    at_verdict = [s for s in seen if s["split"] == "test"]
    assert at_verdict and all(s["cwd"].startswith(workers_dir) for s in at_verdict)
    assert {str(i) for s in at_verdict for i in s["ids"]} == test_ids  # the frame says the cluster: the test rows went there once
    assert all("GITERA_SEAL_KEY" not in s["env"] for s in at_verdict)
    for path in Path(workers_dir).rglob("*"):  # each shard's rows were deleted when it ended
        if path.is_file():
            assert not any(t.encode() in path.read_bytes() for t in test_texts), path


def test_a_worker_with_another_gitera_stops_the_run_saying_so(project: Path, cluster: Any, client: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_cluster, "__version__", "0.0.0-elsewhere")  # what this client would send from another install
    with pytest.raises(EvalError, match=r"this Dask worker has gitera \S+ but the client runs 0.0.0-elsewhere; install the same gitera"):
        score(project, COMMAND, rows_for(4), cluster.scheduler_address, "version", trials=[0])


def test_a_shard_whose_workers_keep_dying_is_a_crashed_invocation() -> None:
    from types import SimpleNamespace

    from distributed.scheduler import KilledWorker

    failed = dask_cluster._failed_task(KilledWorker("gitera-r1-0", SimpleNamespace(address="tcp://127.0.0.1:1"), 3))
    assert failed["rc"] == -9 and "died repeatedly" in failed["stderr"]


def test_an_unreachable_scheduler_is_one_clear_sentence(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setattr(dask_cluster, "CONNECT_TIMEOUT_S", 2.0)
    synthetic_project(repo, rows=300, pilot=False, eval_extra=f", executor: {{kind: dask, address: 'tcp://127.0.0.1:{port}'}}")
    r = run_gitera(repo, "pilot")
    assert r.code == EvalError.exit_code and "Traceback" not in r.err
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in r.err and "dask scheduler" in r.err


def test_without_the_dask_extra_the_executor_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an environment without it gives: ImportError
    with pytest.raises(ConfigError, match=r"pip install 'gitera\[dask\]'"):
        dask_cluster.connect("tcp://127.0.0.1:1")


def test_the_local_executor_never_imports_dask(tmp_path: Path) -> None:
    code = (
        "import sys, shlex\nfrom pathlib import Path\nfrom gitera.adapters.evalrun import EvalSpec, run_eval\n"
        f"co = Path({str(tmp_path)!r})\n(co / 'h.py').write_text({HARNESS!r})\n"
        "run = run_eval(EvalSpec(command=shlex.quote(sys.executable) + ' h.py'), checkout=co, tag='t', arm='a', params={}, split='dev',\n"
        "               rows=[{'id': 1, 'text': 'x'}], trials=[0], concurrency=1, timeout_s=30, workdir=co / 'w')\n"
        "assert run.complete\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'pyarrow')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
