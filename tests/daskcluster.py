"""A real distributed.LocalCluster for the Dask executor's tests, and the process checks they make.

The cluster: 2 worker processes (with nannies) on 127.0.0.1 over TCP, 4 threads each, started with
generous timeouts (the machine may be busy). What a harness saw on a worker is recorded by the
harness itself in $SPY_DIR, a variable the workers inherited when the cluster started (the
client's environment never crosses the wire).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
