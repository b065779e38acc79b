"""Per-row result records (one JSON object per row × trial, as the eval engine writes them):
read, shaped into rows × trials arrays, and summarized. Pure: no files, no git."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def read_results(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


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
