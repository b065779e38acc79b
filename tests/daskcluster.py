"""A real distributed.LocalCluster for the Dask executor's tests, its fixtures, and the process checks they make.

The cluster: 2 worker processes (with nannies) on 127.0.0.1 over TCP, 4 threads each, started with
generous timeouts (the machine may be busy). What a harness saw on a worker is recorded by the
harness itself in $SPY_DIR, a variable the workers inherited when the cluster started (the
client's environment never crosses the wire).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gitera.adapters.evalrun import cluster as dask_cluster


@contextmanager
def local_cluster(workers_dir: str, spy_dir: Path) -> Iterator[Any]:
    """A real LocalCluster: 2 worker processes (with nannies) on 127.0.0.1, 4 threads each; its
    workers inherit SPY_DIR."""
    from distributed import LocalCluster

    before = os.environ.get("SPY_DIR")
    # inherited by the worker processes (and by those the nannies, which live in this process, restart), never sent by gitera
    os.environ["SPY_DIR"] = str(spy_dir)
    try:
        lc = LocalCluster(n_workers=2, threads_per_worker=4, processes=True, host="127.0.0.1", dashboard_address=None,
                          local_directory=workers_dir, silence_logs=logging.CRITICAL, timeout=120)
        yield lc
        dask_cluster.close_clients()
        lc.close(timeout=60)
    finally:
        if before is None:
            os.environ.pop("SPY_DIR", None)
        else:
            os.environ["SPY_DIR"] = before


def ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        chain.append(pid)
    return chain


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def all_gone(pids: Sequence[int], within_s: float = 60) -> bool:
    deadline = time.monotonic() + within_s
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return all(gone(p) for p in pids)


def gitera_tasks(client: Any) -> list[str]:
    def tasks(dask_scheduler: Any) -> list[str]:  # waiting or running, not results a client still holds
        return [str(k) for k, t in dask_scheduler.tasks.items() if str(k).startswith("gitera-r") and t.state not in ("memory", "released", "forgotten")]

    return list(client.run_on_scheduler(tasks))


# --- fixtures, registered for every test module by tests/conftest.py (pytest_plugins); a module that asks
# for `cluster` or `client` gets one LocalCluster for all its tests


@pytest.fixture(scope="module")
def spy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spy")


@pytest.fixture(scope="module")
def workers_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("dask-workers"))


@pytest.fixture(scope="module")
def cluster(workers_dir: str, spy_dir: Path) -> Iterator[Any]:
    """A real LocalCluster (local_cluster above), one per test module."""
    with local_cluster(workers_dir, spy_dir) as lc:
        yield lc


@pytest.fixture(scope="module")
def client(cluster: Any) -> Any:
    return dask_cluster.connect(cluster.scheduler_address)


def spied(spy_dir: Path, tag: str) -> list[dict[str, Any]]:
    """What the harnesses of run ``tag`` recorded about themselves in $SPY_DIR."""
    path = spy_dir / f"{tag}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ctrl_c_mid_run(tmp_path: Path, project: Path, address: str, commit: str, call: str, spy_dir: Path, tag: str, client: Any,
                   imports: str, started: int = 3) -> None:
    """Run ``call`` (python source using ``remote``, the cluster at ``address`` scoring ``commit`` of
    ``project``) in a driver process; once ``started`` harnesses have reported themselves under
    ``tag``, press Ctrl-C (SIGINT). Asserts: the driver exits 130, every harness it started on the
    workers is killed, no task is left on the scheduler, and none started afterwards."""
    driver = tmp_path / "driver.py"
    driver.write_text(
        f"import sys\nfrom pathlib import Path\n{imports}\n"
        "from gitera.adapters.evalrun.cluster import Remote\nfrom gitera.adapters.git import Repo, tree_tar\n"
        f"repo = Repo.find(Path({str(project)!r}))\n"
        f"remote = Remote({address!r}, {commit!r}, lambda: tree_tar(repo, {commit!r}))\n"
        f"try:\n    {call}\nexcept KeyboardInterrupt:\n    sys.exit(130)\n"
    )
    proc = subprocess.Popen([sys.executable, str(driver)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while len(spied(spy_dir, tag)) < started and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(spied(spy_dir, tag)) == started, f"the {started} harnesses in flight never started on the workers"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:  # a failed assertion above must not leave the driver running after the suite
            proc.kill()
            proc.wait()
    pids = [s["pid"] for s in spied(spy_dir, tag)]
    assert all_gone(pids)  # the hanging harnesses on the workers were killed
    deadline = time.monotonic() + 60
    while gitera_tasks(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gitera_tasks(client) == []  # no task left on the scheduler
    assert len(spied(spy_dir, tag)) == started  # and none started afterwards


@contextmanager
def a_worker_killed_mid_run(client: Any, spy_dir: Path, tag: str) -> Iterator[list[int]]:
    """While the block runs, SIGKILL the worker process of the first harness that reports itself
    under ``tag`` (mid-run: it is sleeping); yields the killed pids (asserted non-empty at the end).
    Afterwards, waits for the nanny to restart it, for the next tests."""
    worker_pids = set(client.run(os.getpid).values())
    killed: list[int] = []

    def kill_one_running_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for entry in spied(spy_dir, tag):
                owner = next((p for p in ancestors(entry["pid"]) if p in worker_pids), None)
                if owner is not None:
                    os.kill(owner, signal.SIGKILL)
                    killed.append(owner)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_running_worker)
    killer.start()
    try:
        yield killed
    finally:
        killer.join()
    assert killed, "no harness was seen running on a worker"
    deadline = time.monotonic() + 120
    while len(client.scheduler_info()["workers"]) < len(worker_pids) and time.monotonic() < deadline:
        time.sleep(0.2)
