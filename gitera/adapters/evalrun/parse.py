"""Pure parsing of harness results: one result line (or python return value) into a RowResult."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitera.adapters.evalrun.model import JUDGE_OUTPUT_LIMIT, OUTPUT_LIMIT, RowId, RowResult
from gitera.core.results import depth_over

SCORE_LINE = re.compile(r"^\s*SCORE:\s*(\S+)\s*$")
# Text that marks an unfinished harness, compared after trimming and lower-casing
# (plus any text containing "lorem ipsum").
PLACEHOLDERS = frozenset({"", "todo", "tbd", "fixme", "xxx", "placeholder", "n/a", "na", "none", "null", "nil", "undefined", "...", "…", "?", "-", "<output>", "changeme", "dummy"})
KNOWN_FIELDS = frozenset({"id", "score", "cost_usd", "latency_ms", "tokens", "output", "finding", "transient", "error"})
NOT_NULL = ("output", "tokens")  # optional, but present as null means an unfinished harness
# --- bounds on what a result line may hold (issue 12: bad input never hangs or tracebacks) ---
MAX_DEPTH = 100  # nesting levels of a result line (or python-mode return value); deeper is a crash row
MAX_ABS_SCORE = 1e12  # a score beyond this is a harness bug (its square would swamp every statistic)
LIMITS = {"cost_usd": 1e6, "latency_ms": 1e10, "tokens": 1e15}  # one row costing $1M or taking 115 days is a bug


def is_placeholder(value: object) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    return text in PLACEHOLDERS or "lorem ipsum" in text


def id_key(value: object) -> str | None:
    """Row ids match by text, so a harness that writes "7" for the input id 7 still matches."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)


@dataclass(frozen=True)
class Interpreted:
    """One harness result line read against the eval contract: the row's result, whether the failure is transient, and what was wrong."""
    result: RowResult
    transient: bool = False
    problems: tuple[str, ...] = ()


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _tokens(value: object) -> int | None:
    if isinstance(value, Mapping):  # e.g. {"input": 120, "output": 30}
        parts = [_number(v) for v in value.values()]
        return None if any(p is None for p in parts) else int(sum(p for p in parts if p is not None))
    number = _number(value)
    return None if number is None or isinstance(value, bool) else int(number)


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_text(value: object) -> str:
    """A harness's text as gitera can write it (cache, per-row files, terminal): JSON allows a lone
    surrogate ("\\ud800"), UTF-8 does not, so each one becomes U+FFFD."""
    text = str(value)
    return LONE_SURROGATE.sub("\ufffd", text) if LONE_SURROGATE.search(text) else text


def _text(value: object) -> str:
    return utf8_text(value) if isinstance(value, str) else json.dumps(value, default=repr)


def excerpt(value: object) -> str | None:
    if value is None:
        return None
    text = _text(value)
    return text if len(text) <= OUTPUT_LIMIT else text[: OUTPUT_LIMIT - 1] + "…"


def full_output(value: object) -> str | None:
    """The output a judge is given: whole up to JUDGE_OUTPUT_LIMIT bytes (UTF-8), cut there;
    None when the excerpt already is the whole output."""
    if value is None:
        return None
    text = _text(value)
    if len(text) <= OUTPUT_LIMIT:
        return None
    data = text.encode("utf-8")
    return text if len(data) <= JUDGE_OUTPUT_LIMIT else data[:JUDGE_OUTPUT_LIMIT].decode("utf-8", "ignore")


def suspect_fields(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """Fields that say the harness is unfinished: `output`/`tokens` present as null, and null or
    placeholder text in any field gitera does not know (placeholders also one level down)."""
    found = [f"`{name}` is null" for name in NOT_NULL if name in obj and obj[name] is None]
    for name, value in obj.items():
        if name in KNOWN_FIELDS:
            continue
        if value is None or is_placeholder(value):
            found.append(f"`{name}` is " + ("null" if value is None else f"a placeholder ({value!r})"))
            continue
        inner = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
        for key, item in inner:
            if is_placeholder(item):
                path = f"{name}.{key}" if isinstance(value, Mapping) else f"{name}[{key}]"
                found.append(f"`{path}` is a placeholder ({item!r})")
    return tuple(found)


class NestedTooDeep(ValueError):
    """A result line nested deeper than MAX_DEPTH; ``key`` is its top-level row id when one was found."""

    def __init__(self, key: str | None) -> None:
        super().__init__(f"nested more than {MAX_DEPTH} levels deep")
        self.key = key


TOO_DEEP = (f"the result line is nested more than {MAX_DEPTH} levels deep, which no result needs; "
            "write flat JSON (an `output` as text)")


def load_line(line: str) -> Any:
    """``json.loads`` of one result line (NaN and Infinity read as floats, later refused as scores);
    raises ValueError for bad JSON and NestedTooDeep for nesting beyond MAX_DEPTH (checked only
    when the line has that many brackets, so ordinary lines pay nothing)."""
    try:
        obj = json.loads(line, parse_constant=float)
    except RecursionError:
        raise NestedTooDeep(_top_level_id(line)) from None
    if line.count("[") + line.count("{") > MAX_DEPTH and depth_over(obj, MAX_DEPTH):
        raise NestedTooDeep(id_key(obj.get("id")) if isinstance(obj, dict) else None)
    return obj


def _top_level_id(line: str) -> str | None:
    """The ``"id"`` of the outermost object of a line too deep for json.loads (a character scan)."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            if depth == 1 and line.startswith('"id"', i):
                rest = line[i + 4:].lstrip()
                if rest.startswith(":"):
                    try:
                        value, _ = json.JSONDecoder().raw_decode(rest[1:].lstrip())
                    except (ValueError, RecursionError):
                        return None
                    return id_key(value)
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return None


def _absurd(name: str, value: float) -> bool:
    return abs(value) > (MAX_ABS_SCORE if name == "score" else LIMITS[name])


def interpret(obj: Mapping[str, Any], row_id: RowId, trial: int, where: str) -> Interpreted:
    """Turn one result mapping for a known row into a RowResult, naming every problem."""
    problems: list[str] = []
    optional: dict[str, Any] = {}
    absurd = []
    for name in ("score", "cost_usd", "latency_ms"):
        value = _number(obj.get(name))
        if value is not None and _absurd(name, value):
            absurd.append(f"{name} {obj[name]!r}")
    if absurd:
        message = (f"{where}: {', '.join(absurd)} for row {row_id!r} is out of range (|score| ≤ {MAX_ABS_SCORE:g}, "
                   f"cost_usd ≤ {LIMITS['cost_usd']:g}, latency_ms ≤ {LIMITS['latency_ms']:g}); the harness is reporting garbage")
        return Interpreted(RowResult(row_id, trial, None, "invalid", error=message), False, (message,))
    for name in ("cost_usd", "latency_ms"):
        raw = obj.get(name)
        value = _number(raw) if raw is not None else None
        if raw is not None and (value is None or value < 0 or isinstance(raw, bool)):
            problems.append(f"{where}: {name} {raw!r} for row {row_id!r} is not a non-negative number; ignored")
            value = None
        optional[name] = value
    raw_tokens = obj.get("tokens")
    optional["tokens"] = _tokens(raw_tokens) if raw_tokens is not None else None
    if optional["tokens"] is not None and _absurd("tokens", optional["tokens"]):
        message = f"{where}: tokens {raw_tokens!r} for row {row_id!r} is out of range (≤ {LIMITS['tokens']:g}); the harness is reporting garbage"
        return Interpreted(RowResult(row_id, trial, None, "invalid", error=message), False, (message,))
    if raw_tokens is not None and optional["tokens"] is None:
        problems.append(f"{where}: tokens {raw_tokens!r} for row {row_id!r} is not a number; ignored")
    finding = obj.get("finding")
    optional["finding"] = None if finding is None else utf8_text(finding)
    optional["output"] = excerpt(obj.get("output"))
    optional["output_full"] = full_output(obj.get("output"))
    optional["suspect"] = suspect_fields(obj)

    error = obj.get("error")
    if obj.get("transient") is True:
        message = utf8_text(error) if error else "the harness marked the row transient"
        return Interpreted(RowResult(row_id, trial, None, "crash", error=message, **optional), True, tuple(problems))
    if error not in (None, "", False):
        return Interpreted(RowResult(row_id, trial, None, "crash", error=f"the harness reported an error: {utf8_text(error)}", **optional), False, tuple(problems))
    if "score" not in obj:
        message = f"{where}: row {row_id!r} has no score"
        return Interpreted(RowResult(row_id, trial, None, "invalid", error=message, **optional), False, (*problems, message))
    raw_score = obj["score"]
    score = _number(raw_score)
    if score is None:
        kind = "not finite" if isinstance(raw_score, float) else "not a number"
        message = f"{where}: score {raw_score!r} for row {row_id!r} is {kind}"
        return Interpreted(RowResult(row_id, trial, None, "invalid", error=message, **optional), False, (*problems, message))
    return Interpreted(RowResult(row_id, trial, score, "ok", **optional), False, tuple(problems))


@dataclass
class ParsedLines:
    """Result objects of one output file, by row key, with the 1-based line each came from."""

    found: dict[str, tuple[Mapping[str, Any], int]] = field(default_factory=dict)
    duplicates: dict[str, list[int]] = field(default_factory=dict)
    too_deep: dict[str, int] = field(default_factory=dict)  # rows whose line nests beyond MAX_DEPTH: crash rows
    problems: list[str] = field(default_factory=list)
    lines: int = 0


def parse_lines(text: str, expected: Mapping[str, RowId], where: str) -> ParsedLines:
    """Parse a GITERA_OUT file; an unterminated last line (a killed writer) is ignored."""
    parsed = ParsedLines()
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed.lines += 1
        try:
            obj = load_line(line)
        except NestedTooDeep as exc:
            parsed.problems.append(f"{where} line {number}: {TOO_DEEP}")
            if exc.key is not None and exc.key in expected and exc.key not in parsed.found:
                parsed.too_deep[exc.key] = number
            continue
        except ValueError:
            cut = number == len(lines)  # no newline after it: the writer was probably killed mid-line
            reason = "unterminated last line ignored (the writer was cut off)" if cut else "not a JSON object"
            parsed.problems.append(f"{where} line {number}: {reason}: {line[:80]!r}")
            continue
        if not isinstance(obj, dict):
            parsed.problems.append(f"{where} line {number}: not a JSON object: {line[:80]!r}")
            continue
        key = id_key(obj.get("id"))
        if key is None:
            parsed.problems.append(f"{where} line {number}: no usable \"id\" (got {obj.get('id')!r})")
            continue
        if key not in expected:
            parsed.problems.append(f"{where} line {number}: unknown row id {obj['id']!r} (not among the rows given)")
            continue
        if key in parsed.found:
            parsed.duplicates.setdefault(key, [parsed.found[key][1]]).append(number)
            continue
        parsed.found[key] = (obj, number)
    for key, numbers in parsed.duplicates.items():
        parsed.problems.append(f"{where} lines {', '.join(map(str, numbers))}: row {expected[key]!r} written {len(numbers)} times")
    return parsed


def find_score(stdout: str) -> float | None:
    """The aggregate-only fallback: the last `SCORE: <float>` line on stdout."""
    for line in reversed(stdout.splitlines()):
        match = SCORE_LINE.match(line)
        if match:
            try:
                value = float(match.group(1))
            except ValueError:
                return None
            return value if math.isfinite(value) else None
    return None
