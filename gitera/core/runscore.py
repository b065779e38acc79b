"""Reading one run's numbers from what the script wrote (pure): the run-level output contract.

A run-level script (``metric.level: run``) reports its score, and any secondary numbers, in one
of these ways; for each metric the first that applies wins (docs/eval-contract.md, "Run-level
scripts"):

1. a declared ``pattern`` (``metric.primary.pattern``, or ``{name, pattern}`` in
   ``metric.secondary``): a regular expression matched per line of stdout; group 1 of the
   **last** match is the number. A declared pattern is the only source of its metric;
2. a JSON object written to ``$GITERA_OUT`` (the whole file, or its last line that is an
   object): the key ``score`` or the metric's name for the primary, the metric's name for the
   others;
3. for the primary only: the last stdout line ``SCORE: <number>``;
4. the last stdout line ``<name>: <number>`` (or ``<name>=<number>``).

``cost_usd`` is read the same way (2 and 4) whether or not it is declared: the budget counts it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SCORE_LINE = re.compile(r"^\s*SCORE:\s*(\S+)\s*$", re.MULTILINE)
COST = "cost_usd"


@dataclass(frozen=True)
class RunOutput:
    """What one run printed, read by the run-level contract: the score, where it came from, secondary numbers and problems."""
    score: float | None
    source: str | None  # where the score came from, in words ("pattern", "GITERA_OUT", "SCORE line", "val_bpb line")
    numbers: Mapping[str, float]  # the secondary metrics (and cost_usd) that were found
    problems: tuple[str, ...]


def number(text: Any) -> float | None:
    """A finite number from JSON or text; None otherwise (bools are not numbers here)."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    elif isinstance(text, str):
        try:
            value = float(text.strip().rstrip(",;"))
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def json_object(out_text: str | None) -> Mapping[str, Any] | None:
    """The object the script wrote to $GITERA_OUT: the whole file, or its last line that is an object."""
    if not out_text or not out_text.strip():
        return None
    try:
        whole = json.loads(out_text)
        if isinstance(whole, dict):
            return whole
    except ValueError:
        pass
    for line in reversed(out_text.splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _last(regex: re.Pattern[str], stdout: str) -> str | None:
    found = None
    for found_match in regex.finditer(stdout):
        found = found_match
    return None if found is None else found.group(1)


def name_line(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(name)}\s*[:=]\s*(\S+)\s*$", re.MULTILINE)


def _read(name: str, primary: bool, stdout: str, obj: Mapping[str, Any] | None,
          patterns: Mapping[str, str]) -> tuple[float | None, str | None, str | None]:
    """(value, where it came from, problem) for one metric."""
    if name in patterns:
        raw = _last(re.compile(patterns[name], re.MULTILINE), stdout)
        if raw is None:
            return None, None, f"no stdout line matches the pattern of {name} ({patterns[name]!r})"
        value = number(raw)
        return value, "pattern", None if value is not None else f"the pattern of {name} matched {raw[:40]!r}, not a finite number"
    keys = ("score", name) if primary else (name,)
    if obj is not None:
        for key in keys:
            if key in obj:
                value = number(obj[key])
                return value, "GITERA_OUT", None if value is not None else f"$GITERA_OUT's {key} {obj[key]!r:.40} is not a finite number"
    for regex, where in (((SCORE_LINE, "SCORE line"),) if primary else ()) + ((name_line(name), f"{name} line"),):
        raw = _last(regex, stdout)
        if raw is not None:
            value = number(raw)
            return value, where, None if value is not None else f"the {where} holds {raw[:40]!r}, not a finite number"
    return None, None, None


def line_patterns(primary: str, secondary: Sequence[str] = (), patterns: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The regular expressions of every stdout line :func:`read_run` may read for these metrics: a run's
    stdout cut to its tail keeps the last line matching each, so it reads the same numbers (a Dask worker)."""
    patterns = patterns or {}
    names = [primary, *secondary, *([COST] if COST not in secondary and COST != primary else [])]
    return (SCORE_LINE.pattern, *(patterns[n] if n in patterns else name_line(n).pattern for n in names))


def read_run(stdout: str, out_text: str | None, *, primary: str, secondary: Sequence[str] = (),
             patterns: Mapping[str, str] | None = None) -> RunOutput:
    """One run's score and secondary numbers, and what is wrong with them, in words."""
    patterns = patterns or {}
    obj = json_object(out_text)
    problems: list[str] = []
    if out_text and out_text.strip() and obj is None:
        problems.append("$GITERA_OUT holds no JSON object; ignored")
    score, source, problem = _read(primary, True, stdout, obj, patterns)
    if problem:
        problems.append(problem)
    elif score is None:
        how = (f"no stdout line matches {patterns[primary]!r}" if primary in patterns else
               f"no JSON object with `score` in $GITERA_OUT, no `SCORE: <number>` line and no `{primary}: <number>` line on stdout")
        problems.append(f"the run reported no {primary}: {how}")
    numbers: dict[str, float] = {}
    for name in [*secondary, *([COST] if COST not in secondary and COST != primary else [])]:
        value, _, problem = _read(name, False, stdout, obj, patterns)
        if value is not None:
            numbers[name] = value
        elif problem:
            problems.append(problem)
        elif name != COST:
            problems.append(f"the run reported no {name} (a declared secondary metric)")
    return RunOutput(score, source, numbers, tuple(problems))
