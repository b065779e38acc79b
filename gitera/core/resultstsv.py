"""autoresearch's `results.tsv`, read and written (pure): the interop format of `gitera log --format
results-tsv` and `gitera import` (docs/iterate.md, "Interop with autoresearch").

A header line `commit<TAB><metric><TAB>memory_gb<TAB>status<TAB>description` (the second column is
named after the metric, e.g. `val_bpb`), then one row per experiment: a short commit id, the
metric with 6 decimals, the peak memory in GB with 1 decimal, `keep` / `discard` / `crash`, and a
one-line description. autoresearch writes 0.000000 and 0.0 for a crash.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from gitera.core.errors import ConfigError

STATUSES = ("keep", "discard", "crash")
COLUMNS = ("commit", "<metric>", "memory_gb", "status", "description")
COMMIT_RE = re.compile(r"^[0-9a-f]{4,64}$")
METRIC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
SHORT = 7  # autoresearch's commit column: the short hash
MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class TsvRow:
    """One row of an autoresearch results.tsv: commit, metric, memory_gb, status, description and its line."""
    commit: str
    metric: float
    memory_gb: float
    status: str  # keep | discard | crash
    description: str
    line: int = field(default=0, compare=False)  # where it was read (0: not read from a file)


@dataclass(frozen=True)
class ResultsTsv:
    """An autoresearch results.tsv read whole: the metric's name and its rows."""
    metric: str  # the second column's name
    rows: tuple[TsvRow, ...]

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.rows if r.status == s) for s in STATUSES}


def status_of(gitera_status: str) -> str:
    """autoresearch's status for a gitera attempt status."""
    return {"keep": "keep", "discard": "discard", "guard_fail": "discard"}.get(gitera_status, "crash")


def description(text: str) -> str:
    """One line: every run of whitespace (tabs, line breaks) becomes one space."""
    return " ".join(text.split())


def format_results_tsv(metric: str, rows: Iterable[TsvRow]) -> str:
    lines = [f"commit\t{metric}\tmemory_gb\tstatus\tdescription"]
    for r in rows:
        lines.append(f"{r.commit[:SHORT]}\t{r.metric:.6f}\t{r.memory_gb:.1f}\t{r.status}\t{description(r.description)}")
    return "\n".join(lines) + "\n"


def _number(text: str, what: str, where: str, minimum: float | None = None) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: {what} {text!r} is not a number; write it like 0.997900 (0.000000 for a crash).") from None
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise ConfigError(f"{where}: {what} {text!r} must be a finite number{' ≥ 0' if minimum is not None else ''}.")
    return value


def parse_results_tsv(text: str, source: str) -> ResultsTsv:
    """The rows of a results.tsv, or ConfigError naming ``source:line`` and what would be valid."""
    lines = text.removeprefix("\ufeff").split("\n")
    numbered = [(i, line.removesuffix("\r")) for i, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise ConfigError(f"{source} is empty; a results.tsv starts with the header `commit<TAB>val_bpb<TAB>memory_gb<TAB>status<TAB>description`.")
    first, header = numbered[0]
    names = [h.strip() for h in header.split("\t")]
    if len(names) != 5 or names[0] != "commit" or names[2:] != ["memory_gb", "status", "description"] or not METRIC_RE.match(names[1]):
        comma = "\t" not in header and "," in header
        raise ConfigError(
            f"{source}:{first}: the header must be `commit<TAB><metric><TAB>memory_gb<TAB>status<TAB>description` (autoresearch's "
            f"results.tsv, the metric named e.g. val_bpb){'; this file is comma-separated, results.tsv is tab-separated' if comma else ''}"
            f"; got {header[:120]!r}."
        )
    if len(numbered) - 1 > MAX_ROWS:
        raise ConfigError(f"{source}: {len(numbered) - 1} rows; gitera imports at most {MAX_ROWS:,}.")
    rows = []
    for number, line in numbered[1:]:
        where = f"{source}:{number}"
        parts = line.split("\t")
        if len(parts) != 5:
            raise ConfigError(f"{where}: {len(parts)} tab-separated fields; a row has 5 ({', '.join(COLUMNS)})"
                              f"{' — a tab inside the description?' if len(parts) > 5 else ''}.")
        commit, metric, memory, status, desc = (p.strip() for p in parts)
        if not COMMIT_RE.match(commit.lower()):
            raise ConfigError(f"{where}: commit {commit[:80]!r} is not a git commit id (4 to 64 hexadecimal digits).")
        if status not in STATUSES:
            raise ConfigError(f"{where}: status {status[:40]!r} must be one of {', '.join(STATUSES)}.")
        rows.append(TsvRow(commit.lower(), _number(metric, names[1], where), _number(memory, "memory_gb", where, 0.0), status, desc, number))
    if not rows:
        raise ConfigError(f"{source}:{first}: the header has no rows after it; nothing to import.")
    return ResultsTsv(names[1], tuple(rows))
