"""The iterate loop's keep rule in its three modes, and when a gain needs confirming (pure).

Each *criterion* is one per-row quantity compared paired with the current best: the primary
metric, a secondary metric, or the declared weighted sum. Its gain (oriented so that positive
is better) is judged by the ladder rule (:func:`ladder`, below):

- ``primary``: keep iff the primary criterion clears its ladder threshold (guards apart);
- ``pareto``: keep iff no criterion is worse beyond its noise tolerance
  (max(2 × noise floor, paired SE)) and at least one clears its ladder threshold;
- ``weighted``: keep iff the weighted criterion clears its ladder threshold.

A kept gain is *marginal* when every criterion it was kept on clears its threshold by less
than one paired SE; the loop then re-scores the candidate with fresh trials (docs/iterate.md).
Plain Python: the loop's decision path must start without numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import stdev
from typing import Any

from gitera.core.errors import ConfigError
from gitera.core.ties import above

MODES = ("primary", "pareto", "weighted")
WEIGHTED = "weighted"  # the criterion name of the weighted sum


@dataclass(frozen=True)
class Criterion:
    """One metric compared by the keep/discard ladder: its gain, standard error, threshold and noise floor."""
    name: str  # a metric name, or "weighted"
    field: str  # the per-row result field ("score" for the primary metric), or "weighted"
    direction: str  # "higher" or "lower": which way is better
    gain: float  # mean paired gain over the best, positive = better
    se: float  # paired standard error (NaN with fewer than 2 rows)
    threshold: float  # the ladder threshold: max(min_delta, 2 × noise floor, se)
    noise_floor: float

    @property
    def better(self) -> bool:
        """The gain exceeds its threshold; a tie (gitera.core.ties) is not better."""
        return above(self.gain, self.threshold)

    @property
    def worse(self) -> bool:
        """A loss beyond noise: worse than max(2 × noise floor, paired SE), min_delta aside."""
        se = self.se if math.isfinite(self.se) else 0.0
        return above(-max(2 * self.noise_floor, se), self.gain)

    @property
    def marginal(self) -> bool:
        return self.better and math.isfinite(self.se) and self.gain - self.threshold < self.se

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return round(x, 8) if math.isfinite(x) else None

        return {"field": self.field, "direction": self.direction, "gain": num(self.gain), "se": num(self.se),
                "threshold": num(self.threshold), "noise_floor": num(self.noise_floor)}

    @staticmethod
    def from_dict(name: str, d: Mapping[str, Any]) -> Criterion:
        def num(x: Any) -> float:
            return float(x) if isinstance(x, (int, float)) else math.nan

        return Criterion(name, str(d.get("field")), str(d.get("direction")), num(d.get("gain")), num(d.get("se")),
                         num(d.get("threshold")), num(d.get("noise_floor")) if d.get("noise_floor") is not None else 0.0)


@dataclass(frozen=True)
class Decision:
    """The keep/discard ladder's answer for one attempt: keep or not, falsified, marginal, and why."""
    keep: bool
    falsified: bool  # the hypothesis is contradicted: the deciding quantity got worse beyond noise
    marginal: bool
    reason: str


def criterion(name: str, field: str, direction: str, cand: Sequence[float], best: Sequence[float],
              noise_floor: float, min_delta: float) -> Criterion:
    sign = 1.0 if direction == "higher" else -1.0
    promo = ladder([sign * (c - b) for c, b in zip(cand, best)], noise_floor, min_delta)
    return Criterion(name, field, direction, promo.gain, promo.se, promo.threshold, noise_floor)


def decide(mode: str, criteria: Sequence[Criterion]) -> Decision:
    """Keep or not under ``mode``; ``criteria[0]`` is the primary metric, and in weighted mode
    the weighted sum is the one named "weighted"."""
    primary = criteria[0]
    if mode == "weighted":
        w = next(c for c in criteria if c.name == WEIGHTED)
        return Decision(w.better, above(-w.threshold, w.gain), w.marginal, f"{_verb(w.better)} (weighted): weighted {_against(w)}")
    if mode == "pareto":
        better = [c for c in criteria if c.better]
        worse = [c for c in criteria if c.worse]
        keep = bool(better) and not worse
        if worse:
            why = "worse on " + ", ".join(f"{c.name} ({c.gain:+.4g} beyond its noise tolerance)" for c in worse)
        elif better:
            why = "better on " + ", ".join(f"{c.name} ({c.gain:+.4g} > {c.threshold:.4g})" for c in better)
            rest = [c.name for c in criteria if c not in better]
            why += f", not worse on {', '.join(rest)}" if rest else ""
        else:
            why = "better on none: " + ", ".join(f"{c.name} {c.gain:+.4g} ≤ {c.threshold:.4g}" for c in criteria)
        return Decision(keep, bool(worse) and not better, keep and all(c.marginal for c in better), f"{_verb(keep)} (pareto): {why}")
    return Decision(primary.better, above(-primary.threshold, primary.gain), primary.marginal, f"{_verb(primary.better)}: {_against(primary)}")


def _verb(keep: bool) -> str:
    return "kept" if keep else "discarded"


def _against(c: Criterion) -> str:
    se = f"{c.se:.4g}" if math.isfinite(c.se) else "n/a"
    return (f"gain {c.gain:+.4g} {'exceeds' if c.better else 'does not exceed'} the threshold {c.threshold:.4g} "
            f"(the largest of min_delta, 2 × noise floor {2 * c.noise_floor:.4g} and the paired SE {se})")


# --- per-row quantities from result records ----------------------------------------------------


def row_values(records: Sequence[Mapping[str, Any]], field: str, weights: Mapping[str, float] | None = None) -> dict[str, list[float]]:
    """id -> the per-trial values of ``field`` (or of the weighted sum) over the ok results."""
    out: dict[str, list[float]] = {}
    for r in records:
        if r.get("status", "ok") != "ok":
            continue
        value = weighted_value(r, weights) if weights is not None else _number(r.get(field))
        if value is not None:
            out.setdefault(str(r["id"]), []).append(value)
    return out


def row_means(records: Sequence[Mapping[str, Any]], ids: Sequence[str], field: str,
              weights: Mapping[str, float] | None = None) -> list[float] | None:
    """Per-row means (trials averaged first) in ``ids`` order; None when a row has no value."""
    values = row_values(records, field, weights)
    if any(not values.get(i) for i in ids):
        return None
    return [math.fsum(values[i]) / len(values[i]) for i in ids]


def trial_noise(records: Sequence[Mapping[str, Any]], field: str, weights: Mapping[str, float] | None = None) -> float:
    """The noise floor of a quantity: the sd of its per-trial means (0 with fewer than 2 trials)."""
    per_trial: dict[int, list[float]] = {}
    for r in records:
        value = weighted_value(r, weights) if weights is not None else _number(r.get(field))
        if r.get("status", "ok") == "ok" and value is not None:
            per_trial.setdefault(int(r["trial"]), []).append(value)
    means = [math.fsum(v) / len(v) for v in per_trial.values() if v]
    return stdev(means) if len(means) > 1 else 0.0


def weighted_value(record: Mapping[str, Any], weights: Mapping[str, float] | None) -> float | None:
    """Σ weight × value over the weighted fields of one result; None if one of them is missing."""
    total = 0.0
    for field, w in (weights or {}).items():
        v = _number(record.get(field))
        if v is None:
            return None
        total += w * v
    return total


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


# --- re-checking a recorded decision (gitera verify) -------------------------------------------


def recheck(result: Mapping[str, Any], records: Sequence[Mapping[str, Any]], best: Sequence[Mapping[str, Any]],
            tol: float = 1e-4) -> str | None:
    """What is wrong with a pareto or weighted attempt's recorded decision, from its rows alone, or None.

    Every recorded gain is recomputed from the attempt's and the best's per-row files; the mode's
    rule is applied to the recorded thresholds and must give the recorded keep / discard."""
    where = f"#{result.get('iteration')}"
    in_best = row_values(best, "score")
    ids = [i for i in row_values(records, "score") if i in in_best]
    found = []
    for name, recorded in (result.get("gains") or {}).items():
        c = Criterion.from_dict(name, recorded)
        weights = result.get("weights") if c.field == WEIGHTED else None
        cand, prev = row_means(records, ids, c.field, weights), row_means(best, ids, c.field, weights)
        if not ids or cand is None or prev is None:
            return f"{where}: the rows give no {name} to recompute"
        sign = 1.0 if c.direction == "higher" else -1.0
        gain = math.fsum(sign * (a - b) for a, b in zip(cand, prev)) / len(ids)
        if not abs(gain - c.gain) <= tol:
            return f"{where}: recorded {name} gain {recorded.get('gain')} but rows give {gain:+.6f}"
        if c.threshold + tol < 2 * c.noise_floor:
            return f"{where}: {name} threshold {c.threshold} below 2× its noise floor {c.noise_floor}"
        found.append(c)
    status = result.get("status")
    if status not in ("keep", "discard") or not found:
        return None
    found.sort(key=lambda c: c.field != "score")  # the primary metric first, as the loop orders them
    keep = decide(str(result.get("mode")), found).keep
    unconfirmed = (result.get("confirm") or {}).get("held") is False
    if status == "keep" and not keep:
        return f"{where} kept although the {result.get('mode')} rule discards it"
    if status == "discard" and keep and not unconfirmed:
        return f"{where} discarded although the {result.get('mode')} rule keeps it"
    return None


# --- the ladder rule (Blum & Hardt 2015): keep only a clear gain over the current best ---------


@dataclass(frozen=True)
class Promotion:
    """Whether a candidate is promoted over the incumbent: its gain, standard error, threshold and why."""
    keep: bool
    gain: float
    se: float
    threshold: float
    reason: str


def ladder(diffs: Sequence[float], noise_floor: float, min_delta: float) -> Promotion:
    """Keep a candidate only if it clearly beats the current best (Blum & Hardt's ladder, 2015).

    ``diffs``: per-row (candidate - current best) with trials averaged first, signed so that
    positive is better. gain = mean(diffs); se = sd(diffs, ddof 1) / sqrt(rows);
    threshold = max(min_delta, 2 x noise_floor, se); keep iff gain > threshold beyond a tie
    (gitera.core.ties: a gain equal to its threshold up to rounding is not kept). Comparing with
    the *current best* means a run of noise-sized "gains" cannot accumulate.
    """
    if not (math.isfinite(noise_floor) and noise_floor >= 0):
        raise ConfigError(f"noise floor {noise_floor} must be a finite number >= 0 (measure it with >= 2 trials)")
    if not (math.isfinite(min_delta) and min_delta >= 0):
        raise ConfigError(f"min_delta {min_delta} must be a finite number >= 0")
    n = len(diffs)
    if n == 0:
        raise ConfigError("no rows to compare; score the candidate on the same rows as the best")
    gain = math.fsum(diffs) / n
    if n < 2:
        return Promotion(False, gain, math.nan, math.nan, "one row gives no paired standard error; not kept")
    se = math.sqrt(math.fsum((x - gain) ** 2 for x in diffs) / (n - 1)) / math.sqrt(n)
    parts = {"min_delta": min_delta, "2 x noise floor": 2 * noise_floor, "paired SE": se}
    which = max(parts, key=lambda k: parts[k])
    thr = parts[which]
    if above(gain, thr):
        return Promotion(True, gain, se, thr, f"kept: gain {gain:+.4g} exceeds the {which} {thr:.4g}")
    return Promotion(False, gain, se, thr, f"discarded: gain {gain:+.4g} does not exceed the {which} {thr:.4g}")
