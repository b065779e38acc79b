"""Gitera-* commit trailers: formatting and checking (pure).

Records are standard git trailers (``Key: value`` lines in the message's last
paragraph), so ``git interpret-trailers --parse`` and
``git log --format='%(trailers:key=Gitera-Result,valueonly)'`` read them. Every
value except ``Gitera-Tag`` is one line of compact JSON holding an object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitera.core.frame import valid_tag

PREFIX = "Gitera-"
JSON_KEYS = ("Lock", "Split", "Pilot", "Run", "Result", "Gate", "Verdict", "Restore", "Stop",
             "Resume", "Abandon", "Import",  # docs/trailers.md
             "Opening")  # the verdict's opening of the test set: docs/trailers.md
KEYS = ("Tag", *JSON_KEYS)
_TRAILER_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)\s*:\s?(.*)$")


def dumps(value: Mapping[str, Any]) -> str:
    """Compact, key-sorted, single-line JSON (non-ASCII kept readable)."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)
    # Characters some readers treat as line breaks stay escaped, so a record is one line everywhere.
    for ch in "\x85\u2028\u2029":
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def build_message(subject: str, trailers: Sequence[tuple[str, str | Mapping[str, Any]]], body: str = "") -> str:
    subject = " ".join(subject.split()) or "gitera"
    lines = [subject, ""]
    if body.strip():
        lines += [body.strip(), ""]
    for key, value in trailers:
        text = value if isinstance(value, str) else dumps(value)
        if "\n" in text:
            raise ValueError(f"trailer {key} must be one line")
        lines.append(f"{PREFIX}{key}: {text}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Problem:
    """A malformed trailer line and what is wrong with it."""
    line: int
    message: str


def _paragraphs(lines: list[str]) -> list[tuple[int, list[str]]]:
    paras: list[tuple[int, list[str]]] = []
    start = None
    for i, line in enumerate(lines + [""]):
        if line.strip() == "":
            if start is not None:
                paras.append((start, lines[start:i]))
                start = None
        elif start is None:
            start = i
    return paras


def check_message(message: str) -> list[Problem]:
    """Problems with the Gitera-* trailers of a commit message (empty when fine)."""
    lines = [ln for ln in message.split("\n") if not ln.startswith("#")]
    paras = _paragraphs(lines)
    problems: list[Problem] = []
    trailer_start = paras[-1][0] if len(paras) > 1 else len(lines)
    for i, line in enumerate(lines):
        m = _TRAILER_RE.match(line)
        if not m or not m.group(1).lower().startswith(PREFIX.lower()):
            continue
        key = m.group(1)
        name = key[len(PREFIX):]
        if i < trailer_start:
            problems.append(Problem(i + 1, f"{key} is not in the message's last paragraph, so git will not read it as a trailer"))
            continue
        if key != PREFIX + name or name not in KEYS:
            problems.append(Problem(i + 1, f"unknown trailer {key}; known: {', '.join(PREFIX + k for k in KEYS)}"))
            continue
        problems += _check_value(i + 1, name, m.group(2).strip())
    if len(paras) > 1:
        start, block = paras[-1]
        gitera_lines = [ln for ln in block if ln.lower().startswith(PREFIX.lower())]
        if gitera_lines and any(not _TRAILER_RE.match(ln) for ln in block):
            problems.append(Problem(start + 1, "the trailer paragraph has a line that is not `Key: value`, which hides the Gitera-* trailers from git"))
    return problems


def _check_value(line: int, name: str, value: str) -> list[Problem]:
    if name == "Tag":
        return [] if valid_tag(value) else [Problem(line, f"Gitera-Tag {value!r} is not a valid experiment tag")]
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        return [Problem(line, f"Gitera-{name} is not valid JSON ({exc.msg} at column {exc.colno})")]
    if not isinstance(parsed, dict):
        return [Problem(line, f"Gitera-{name} must hold a JSON object")]
    return []


def parse_trailers(message: str) -> list[tuple[str, str]]:
    """(key without prefix, raw value) for each Gitera-* trailer in the last paragraph."""
    paras = _paragraphs(message.split("\n"))
    if len(paras) < 2:
        return []
    out = []
    for line in paras[-1][1]:
        m = _TRAILER_RE.match(line)
        if m and m.group(1).startswith(PREFIX):
            out.append((m.group(1)[len(PREFIX):], m.group(2).strip()))
    return out


def records(message: str, name: str) -> list[dict[str, Any]]:
    """The JSON objects of every ``Gitera-<name>`` trailer (invalid ones skipped)."""
    out = []
    for key, value in parse_trailers(message):
        if key == name:
            try:
                obj = json.loads(value)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out
