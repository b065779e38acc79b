"""The values of an eval run: what to run, what one row scored, what the run produced."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gitera.core.errors import ConfigError

RowId = str | int
Status = Literal["ok", "crash", "timeout", "missing", "invalid"]
STATUSES: tuple[Status, ...] = ("ok", "crash", "timeout", "missing", "invalid")
StopReason = Literal["budget", "run_timeout"]
PYTHON_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
OUTPUT_LIMIT = 500  # characters of `output` kept in results and committed per-row files
JUDGE_OUTPUT_LIMIT = 64 * 1024  # bytes (UTF-8) of `output` a judge is given


@dataclass(frozen=True)
class EvalSpec:
    """How to score rows: exactly one of a shell `command` or a `python` "module:function".

    `harness_hash` identifies the harness code (the caller hashes the locked eval files);
    together with the command/target it forms the harness part of the cache key.
    `shard_size` overrides the automatic rows-per-invocation choice of command mode.
    `env` names the variables of gitera's environment the harness may see (see isolation.harness_env).
    """

    command: str | None = None
    python: str | None = None
    harness_hash: str = ""
    shard_size: int | None = None
    env: tuple[str, ...] = ()  # the frame's eval.env: variables passed through to the harness (evalrun.isolation)

    def __post_init__(self) -> None:
        if (self.command is None) == (self.python is None):
            raise ConfigError("The eval needs exactly one of `command` or `python: module:function`; set one in the frame's eval section.")
        if self.command is not None and not self.command.strip():
            raise ConfigError("eval.command is empty; give the shell command that scores the rows.")
        if self.python is not None and not PYTHON_TARGET_RE.match(self.python):
            raise ConfigError(f"eval.python must be module:function (e.g. eval.harness:score); got {self.python!r}.")
        if self.shard_size is not None and self.shard_size < 1:
            raise ConfigError(f"eval shard_size must be at least 1; got {self.shard_size}.")

    @property
    def mode(self) -> Literal["command", "python"]:
        return "command" if self.command is not None else "python"

    @property
    def cache_id(self) -> str:
        """The harness part of the cache key: changes when the command, target or code changes."""
        blob = json.dumps([self.command, self.python, self.harness_hash])
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Budget:
    """A cost cap in USD for the experiment; `spent_before` is what earlier runs used.

    `est_cost_per_call` (e.g. from the pilot) sizes the first wave before any result of this
    run has arrived, taken at 1.5x (schedule.FIRST_WAVE_MARGIN); without it the runner starts
    one unit alone and the rest once its first cost arrives.
    """

    max_cost_usd: float
    spent_before: float = 0.0
    est_cost_per_call: float | None = None
    warn_fraction: float = 0.8


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures: `attempts` in all, sleeping base*2**n capped at cap_s."""

    attempts: int = 3
    base_s: float = 0.1
    cap_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Sleep before attempt number `attempt` (1 = the first retry)."""
        return float(min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class RowResult:
    """One row scored once (one trial). `score` is None unless status is "ok".

    `output` is an excerpt; `output_full` holds the output up to JUDGE_OUTPUT_LIMIT when it
    is longer than the excerpt (for a judge; never committed). `suspect` names fields of the
    result line that are null or placeholder text (the pilot refuses them, rule 11).
    """

    id: RowId
    trial: int
    score: float | None
    status: Status = "ok"
    cost_usd: float | None = None
    latency_ms: float | None = None
    tokens: int | None = None
    output: str | None = None
    finding: str | None = None
    error: str | None = None
    cached: bool = False
    output_full: str | None = field(default=None, repr=False)
    suspect: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "trial": self.trial, "score": self.score, "status": self.status}
        for name in ("cost_usd", "latency_ms", "tokens", "output", "finding", "error"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True)
class EvalRun:
    """Everything one arm's run produced, in input-row order within each trial."""

    arm: str
    split: str
    trials: tuple[int, ...]
    results: tuple[RowResult, ...]
    complete: bool
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    stop_reason: StopReason | None = None
    calls: int = 0  # row x trial evaluations sent to the harness, retries included
    invocations: int = 0  # processes started (command mode) or function calls (python mode)
    cache_hits: int = 0
    wall_s: float = 0.0
    cost_usd: float = 0.0  # cost of every result, cached ones included (what the run represents)
    spent_usd: float = 0.0  # cost of the calls made now (what the budget counts)
    aggregate_only: bool = False
    aggregate_scores: Mapping[int, float] = field(default_factory=dict)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            counts[r.status] += 1
        return counts

    def for_trial(self, trial: int) -> list[RowResult]:
        return [r for r in self.results if r.trial == trial]
