"""The pilot check (discipline rule 11): every arm's pilot row must give real, complete fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gitera.adapters.evalrun.model import RowResult
from gitera.adapters.evalrun.parse import PLACEHOLDERS, is_placeholder

__all__ = ["PLACEHOLDERS", "check_pilot", "is_placeholder"]

REQUIRED = ("score", "cost_usd", "latency_ms")  # rule 11: cost and latency present for every arm
OPTIONAL = ("output", "tokens", "finding")  # must not be placeholders; present for all arms or none


def check_pilot(results_by_arm: Mapping[str, Sequence[RowResult]]) -> list[str]:
    """Problems that stop `gitera pilot`; an empty list means every arm passed."""
    problems: list[str] = []
    present: dict[str, set[str]] = {name: set() for name in OPTIONAL}
    answered: list[str] = []  # arms with at least one ok result (the others are reported already)
    for arm, results in results_by_arm.items():
        if not results:
            problems.append(f"arm {arm}: no pilot result")
            continue
        for r in results:
            where = f"arm {arm} row {r.id!r} trial {r.trial}"
            if r.status != "ok":
                problems.append(f"{where}: status {r.status}: {(r.error or '').splitlines()[0] if r.error else 'no result'}")
                continue
            if arm not in answered:
                answered.append(arm)
            for name in REQUIRED:
                if getattr(r, name) is None:
                    problems.append(f"{where}: `{name}` is missing or null; the harness must report it for every row")
            for name in ("cost_usd", "latency_ms"):
                value = getattr(r, name)
                if isinstance(value, float) and value < 0:
                    problems.append(f"{where}: `{name}` is negative ({value})")
            for name in OPTIONAL:
                value = getattr(r, name)
                if value is not None:
                    present[name].add(arm)
                if is_placeholder(value):
                    problems.append(f"{where}: `{name}` is a placeholder ({value!r})")
            problems.extend(f"{where}: {what}" for what in r.suspect)
    for name in ("output", "tokens"):
        have = present[name]
        if have and len(have) < len(answered):
            missing = ", ".join(a for a in answered if a not in have)
            problems.append(f"`{name}` is reported for arms {', '.join(sorted(have))} but not for {missing}; report it for every arm")
    return problems
