"""The frame's eval.executor (issue 15): local by default, a Dask scheduler's address otherwise."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitera.adapters.evalrun.cluster import ADDRESS_ENV, resolve_address
from gitera.core.errors import ConfigError
from gitera.core.frame import Executor
from tests.helpers import FRAME
from tests.test_frame import ERROR_RE, error_of, parse

EVAL = "eval: {command: python eval/run.py, concurrency: 4, timeout_s: 60}"


def with_executor(text: str) -> str:
    assert EVAL in FRAME
    return FRAME.replace(EVAL, "eval:\n  command: python eval/run.py\n  concurrency: 4\n  executor: " + text)


def test_local_is_the_default_and_needs_nothing() -> None:
    assert parse(FRAME).eval.executor == Executor("local", None)
    assert parse(with_executor("{kind: local}")).eval.executor == Executor("local", None)


def test_a_dask_executor_names_its_scheduler() -> None:
    frame = parse(with_executor("{kind: dask, address: 'tcp://scheduler.internal:8786'}"))
    assert frame.eval.executor == Executor("dask", "tcp://scheduler.internal:8786")
    assert parse(with_executor("{kind: dask}")).eval.executor == Executor("dask", None)  # the address may come at run time


@pytest.mark.parametrize(("executor", "needle"), [
    ("{kind: ray}", "eval.executor.kind: must be one of local, dask; got 'ray'"),
    ("{address: 'tcp://h:8786'}", "eval.executor.kind: is required"),
    ("{kind: local, address: 'tcp://h:8786'}", "eval.executor.address: is used only with kind: dask"),
    ("{kind: dask, address: 'scheduler:8786'}", "eval.executor.address: must be a Dask scheduler address such as tcp://scheduler.example:8786"),
    ("{kind: dask, address: 'tcp://h:8786', workers: 4}", "eval.executor.workers: unknown field; valid fields here: kind, address"),
    ("dask", "eval.executor: must be a mapping"),
])
def test_a_bad_executor_names_the_line_and_what_is_valid(executor: str, needle: str) -> None:
    message = error_of(with_executor(executor))
    assert ERROR_RE.match(message) and needle in message, message


ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://[^\s/]+:\d{1,5}$")


@given(st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "S", "Zs"), blacklist_characters="'\\"), max_size=40))
def test_any_address_text_is_accepted_exactly_when_it_is_scheme_host_port(address: str) -> None:
    text = with_executor(f"{{kind: dask, address: '{address}'}}")
    try:
        frame = parse(text)
    except ConfigError as exc:
        assert not (address.strip() and ADDRESS.match(address)) or "placeholder" in exc.message, exc.message
        assert "\n" not in exc.message
        return
    assert ADDRESS.match(address) and frame.eval.executor.address == address


@given(st.sampled_from(["tcp", "tls", "ucx"]), st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True), st.integers(1, 65535))
def test_every_scheme_host_port_address_is_accepted(scheme: str, host: str, port: int) -> None:
    address = f"{scheme}://{host}:{port}"
    assert parse(with_executor(f"{{kind: dask, address: '{address}'}}")).eval.executor.address == address


def test_the_environment_names_the_cluster_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    assert resolve_address("tcp://from-frame:8786") == "tcp://from-frame:8786"
    with pytest.raises(ConfigError, match=f"set eval.executor.address in the frame or {ADDRESS_ENV}"):
        resolve_address(None)
    monkeypatch.setenv(ADDRESS_ENV, "tcp://from-env:8786")
    assert resolve_address("tcp://from-frame:8786") == "tcp://from-env:8786"


def test_a_run_level_frame_may_run_its_runs_on_a_dask_cluster() -> None:
    """Each run of a run-level script is a Dask task (tests/test_dask_runlevel.py); the frame names the
    executor as a row-level frame does."""
    from tests.runproject import FRAME as RUN_FRAME
    from tests.test_frame import parse

    old = "eval: {command: python train.py, timeout_s: 60}"
    assert old in RUN_FRAME
    frame = parse(RUN_FRAME.replace(old, "eval: {command: python train.py, timeout_s: 60, executor: {kind: dask, address: 'tcp://h:8786'}}"))
    assert frame.metric.level == "run" and frame.eval.executor == Executor("dask", "tcp://h:8786")
    assert frame.eval.concurrency == 1  # runs in flight on the cluster: one at a time unless the frame says more, as locally
    assert parse(RUN_FRAME.replace(old, "eval: {command: python train.py, timeout_s: 60, executor: {kind: local}}")).eval.executor.kind == "local"
