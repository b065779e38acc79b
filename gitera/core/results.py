"""Per-row result records (one JSON object per row × trial, as the eval engine writes them):
read, shaped into rows × trials arrays, and summarized. Pure: no files, no git."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


# str.splitlines() also breaks at these, and JSON written with ensure_ascii=False holds them raw
# (an `output` with U+2028): JSONL is split at "\n" only and written with them escaped.
UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")


def jsonl_lines(text: str) -> list[str]:
    """The non-blank lines of a JSONL text, split at "\n" only."""
    return [line for line in text.split("\n") if line.strip()]


def dumps_line(obj: Any) -> str:
    """One JSONL line: key-sorted JSON, non-ASCII kept readable, the Unicode line breaks escaped."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False)
    for ch in UNICODE_BREAKS:
        if ch in text:
            text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def depth_over(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests more than ``limit`` levels (iteratively: no recursion)."""
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (dict, list)):
            if level > limit:
                return True
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def read_results(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in jsonl_lines(text)]


def matrix(records: Sequence[Mapping[str, Any]], ids: Sequence[str], trials: Sequence[int]) -> np.ndarray:
    """rows × trials scores in ``ids`` order; NaN where a row × trial has no ok score."""
    import numpy as np

    index = {str(i): k for k, i in enumerate(ids)}
    col = {t: j for j, t in enumerate(trials)}
    m = np.full((len(ids), len(trials)), np.nan)
    for r in records:
        k = index.get(str(r["id"]))
        j = col.get(int(r["trial"]))
        if k is not None and j is not None and r.get("status") == "ok" and r.get("score") is not None:
            m[k, j] = float(r["score"])
    return m


def mean_of(records: Sequence[Mapping[str, Any]], field: str) -> float | None:
    values = [float(r[field]) for r in records if isinstance(r.get(field), (int, float))]
    return sum(values) / len(values) if values else None


def sanitize(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)
