"""The verdict rules as a pure function (docs/statistics.md, "Verdict rules").

``decide`` turns per-arm statistics (paired effect vs the baseline, its two-sided CI, the raw
p-value, per-slice bounds) and the locked threshold into one of four decisions: ``ship``,
``ship_narrowly``, ``underpowered`` or ``kill``, with reasons in plain words.

Everything here is plain Python (``statistics.NormalDist`` for the few normal quantiles), so the
rules import without numpy or scipy; the module imports nothing but the standard library and
:mod:`gitera.core.errors`. The one-call convenience that computes every input from per-row x
trial score arrays is :func:`gitera.core.analysis.analyze`.

All numbers given to this module are in the metric's own units and sign (arm minus baseline).
When the metric's direction is ``lower`` (lower is better) the rules flip signs: an arm that
*lowers* the metric by 0.05 has an improvement of +0.05, and its CI ``(low, high)`` becomes
``(-high, -low)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gitera.core.errors import ConfigError
from gitera.core.ties import above, at_least

PASS = "PASS"
FAIL = "FAIL"
INCONCLUSIVE = "INCONCLUSIVE"

SHIP = "ship"
SHIP_NARROWLY = "ship_narrowly"
UNDERPOWERED = "underpowered"
KILL = "kill"
DECISIONS = (SHIP, SHIP_NARROWLY, UNDERPOWERED, KILL)

Basis = Literal["point", "ci_low"]
Direction = Literal["higher", "lower"]


# --------------------------------------------------------------------------------------------
# Threshold
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """The locked, pre-registered threshold of a frame (``threshold:`` plus the direction).

    ``effect`` is the improvement an arm must show, in metric units, always positive-is-better
    (for a ``lower`` metric, 0.05 means "lowers it by 0.05"). ``slice_loss_floor`` is the largest
    loss tolerated in any slice (a positive number). ``alpha`` is the two-sided level.
    """

    effect: float
    basis: str = "point"
    slice_loss_floor: float = 0.02
    alpha: float = 0.05
    direction: str = "higher"

    def __post_init__(self) -> None:
        if self.basis not in ("point", "ci_low"):
            raise ConfigError(f"threshold.basis is {self.basis!r}; use 'point' or 'ci_low'")
        if self.direction not in ("higher", "lower"):
            raise ConfigError(f"metric direction is {self.direction!r}; use 'higher' or 'lower'")
        if not (0.0 < self.alpha < 1.0):
            raise ConfigError(f"threshold.alpha is {self.alpha}; use a number between 0 and 1, e.g. 0.05")
        if not math.isfinite(self.effect) or self.effect < 0:
            raise ConfigError(f"threshold.effect is {self.effect}; use a finite number >= 0")
        if not math.isfinite(self.slice_loss_floor) or self.slice_loss_floor < 0:
            raise ConfigError(
                f"threshold.slice_loss_floor is {self.slice_loss_floor}; use a finite number >= 0"
            )

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is better."""
        return 1.0 if self.direction == "higher" else -1.0


# --------------------------------------------------------------------------------------------
# Small pure helpers, shared with gitera.core.stats
# --------------------------------------------------------------------------------------------


def holm(pvalues: Sequence[float]) -> tuple[float, ...]:
    """Holm (1979) step-down adjusted p-values, in the input order.

    Sort ascending p_(1) <= ... <= p_(m); adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    Rejecting where the adjusted p <= alpha controls the family-wise error rate at alpha.
    """
    m = len(pvalues)
    for p in pvalues:
        if not (0.0 <= p <= 1.0) or math.isnan(p):
            raise ValueError(f"p-value {p} outside [0, 1]")
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return tuple(adjusted)


def orient(effect: float, low: float, high: float, direction: str) -> tuple[float, float, float]:
    """(effect, low, high) in raw metric units -> the same as an improvement (higher is better)."""
    if direction == "higher":
        return effect, low, high
    return -effect, -high, -low


def clears_threshold(effect: float, ci_low: float, threshold: float, basis: str) -> bool:
    """Whether an improvement clears the threshold on the declared basis.

    ``point``: effect >= threshold. ``ci_low``: the two-sided CI's lower end >= threshold. A tie
    (equal up to rounding, gitera.core.ties) clears: an effect of exactly the threshold is enough.
    """
    if basis == "point":
        return at_least(effect, threshold)
    if basis == "ci_low":
        return at_least(ci_low, threshold)
    raise ValueError(f"unknown basis {basis!r}")


def weighted_winner_ships(
    weighted_effect: float,
    weighted_ci_low: float,
    unweighted_effect: float,
    unweighted_ci_low: float,
    threshold: float,
    basis: str,
) -> bool:
    """DISCIPLINE rule 16: a severity-weighted winner ships only if the unweighted score clears too.

    Both the weighted and the unweighted improvement must clear ``threshold`` on ``basis``.
    A severity weighting chosen after seeing results could otherwise turn a loss into a win.
    """
    return clears_threshold(weighted_effect, weighted_ci_low, threshold, basis) and clears_threshold(
        unweighted_effect, unweighted_ci_low, threshold, basis
    )


def rows_to_clear(
    mean: float, sd: float, bound: float, alpha_one_sided: float, power: float = 0.8
) -> int | None:
    """Rows needed for a one-sided bound at ``alpha_one_sided`` to fall clear of ``bound``.

    Normal approximation with the observed mean and sd of the per-row differences held fixed:
    n = ceil(((z_{1-a} + z_{power}) * sd / |mean - bound|)^2). ``None`` when the observed mean sits
    exactly on the bound or the sd is not finite (no number of rows would decide it).
    """
    gap = abs(mean - bound)
    if not math.isfinite(sd) or not math.isfinite(gap) or gap == 0.0:
        return None
    if sd <= 0.0:
        return 2
    from statistics import NormalDist  # imported here: the loop's decision path never needs it

    normal = NormalDist()
    z = normal.inv_cdf(1.0 - alpha_one_sided) + normal.inv_cdf(power)
    return max(2, math.ceil((z * sd / gap) ** 2))


def slice_state(lower: float, upper: float, floor: float) -> str:
    """Non-inferiority state of one slice from its oriented one-sided bounds (improvement units).

    PASS when the one-sided lower bound > -floor; FAIL when the one-sided upper bound < -floor;
    otherwise INCONCLUSIVE. A bound equal to -floor up to rounding (gitera.core.ties) is neither.
    """
    if math.isnan(lower) or math.isnan(upper):
        return INCONCLUSIVE
    if above(lower, -floor):
        return PASS
    if above(-floor, upper):
        return FAIL
    return INCONCLUSIVE


@dataclass(frozen=True)
class SliceResult:
    """One slice of one arm: paired difference statistics in raw units and its state.

    ``mean``, ``lower`` and ``upper`` are the raw (arm minus baseline) mean difference and its
    one-sided bounds at level ``alpha`` (so ``[lower, upper]`` is a two-sided 1 - 2 alpha
    interval). ``state`` and ``rows_needed`` are for the direction and floor they were made with;
    :func:`decide` recomputes them from the locked threshold.
    """

    name: str
    n: int
    mean: float
    sd_diff: float
    lower: float
    upper: float
    alpha: float
    state: str
    rows_needed: int | None
    column: str | None = None  # the slice column it belongs to (None: one unnamed grouping)


def make_slice_result(
    name: str,
    n: int,
    mean: float,
    sd_diff: float,
    lower: float,
    upper: float,
    *,
    floor: float,
    alpha: float,
    direction: str = "higher",
    power: float = 0.8,
    column: str | None = None,
) -> SliceResult:
    """Classify one slice against the loss floor (intersection-union test, no multiplicity)."""
    m, lo, hi = orient(mean, lower, upper, direction)
    state = slice_state(lo, hi, floor)
    needed = rows_to_clear(m, sd_diff, -floor, alpha, power) if state == INCONCLUSIVE else None
    return SliceResult(str(name), int(n), mean, sd_diff, lower, upper, alpha, state, needed, column)


# --------------------------------------------------------------------------------------------
# Inputs and outputs of the verdict
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmInput:
    """What the rules need about one arm, in raw metric units (arm minus baseline).

    ``ci_low``/``ci_high``: two-sided CI at 1 - alpha. ``p_value``: raw two-sided p (Holm is
    applied here, across the arms given). ``n``/``sd_diff``: rows and sd of the per-row
    differences, used to say how many rows would decide an inconclusive arm. ``unweighted``:
    when the effect above is severity-weighted, the unweighted ``(effect, ci_low, ci_high)``.
    """

    name: str
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int = 0
    sd_diff: float = math.nan
    slices: tuple[SliceResult, ...] = ()
    unweighted: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class ArmVerdict:
    """The verdict's statistics for one arm against the baseline: effect, confidence interval, p-values and n."""
    name: str
    effect: float
    ci_low: float
    ci_high: float
    improvement: float
    p_value: float
    p_holm: float
    n: int
    sd_diff: float
    significant: bool
    clears: bool
    aggregate: str
    slices: tuple[SliceResult, ...]
    rows_needed: int | None
    reasons: tuple[str, ...]
    unweighted: tuple[float, float, float] | None = None  # (effect, ci_low, ci_high) when ``effect`` is severity-weighted

    @property
    def passing_slices(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slices if s.state == PASS)

    @property
    def all_slices_pass(self) -> bool:
        return all(s.state == PASS for s in self.slices)

    @property
    def ships_somewhere(self) -> bool:
        """Some rows remain to ship to: at least one passing slice in every slice column.

        With several columns a narrow rollout is the rows whose slice in EVERY column passes,
        so one column whose slices all fail leaves no rows at all.
        """
        columns = {s.column for s in self.slices}
        return bool(self.slices) and all(any(s.state == PASS for s in self.slices if s.column == c) for c in columns)


@dataclass(frozen=True)
class Verdict:
    """The decision: ``ship``, ``ship_narrowly``, ``underpowered`` or ``kill``.

    ``arm``: the arm shipped (None for underpowered/kill). ``slices``: for ``ship_narrowly``, the
    slices it ships to. ``rows_needed``: for ``underpowered``, the fewest rows that would decide
    one of the inconclusive arms or slices (None when unknown).
    """

    decision: str
    arm: str | None
    slices: tuple[str, ...]
    reasons: tuple[str, ...]
    arms: tuple[ArmVerdict, ...]
    threshold: Threshold
    rows_needed: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN and infinities become None)."""
        out: dict[str, Any] = _json_clean(
            {
                "decision": self.decision,
                "arm": self.arm,
                "slices": list(self.slices),
                "reasons": list(self.reasons),
                "rows_needed": self.rows_needed,
                "threshold": asdict(self.threshold),
                "arms": [
                    {
                        **{k: v for k, v in asdict(a).items() if k not in ("slices", "unweighted")},
                        "reasons": list(a.reasons),
                        "slices": [asdict(s) for s in a.slices],
                        "unweighted": dict(zip(("effect", "ci_low", "ci_high"), a.unweighted)) if a.unweighted else None,
                    }
                    for a in self.arms
                ],
                "details": dict(self.details),
            }
        )
        return out


def _json_clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:+.4g}"


def narrow_scope(slices: Sequence[str]) -> str:
    """Where a narrow rollout goes, in words: ``g1, g2`` for one slice column; with several,
    ``rows in tier=gold or tier=silver, and in region=eu`` (a row must pass in every column)."""
    columns: dict[str, list[str]] = {}
    for name in slices:
        columns.setdefault(name.partition("=")[0] if "=" in name else "", []).append(name)
    if len(columns) <= 1:
        return ", ".join(slices)
    return "rows in " + ", and in ".join(" or ".join(names) for names in columns.values())


def _aggregate_rows_needed(
    improvement: float, sd: float, threshold: Threshold, n_arms: int, power: float
) -> int | None:
    """Rows that would decide an INCONCLUSIVE aggregate at the observed effect and sd."""
    a = threshold.alpha
    if at_least(improvement, threshold.effect) and improvement > 0:
        # PASS path: significant after the strictest Holm step (alpha / arms) ...
        needed = [rows_to_clear(improvement, sd, 0.0, a / (2 * n_arms), power)]
        if threshold.basis == "ci_low":  # ... and the CI's lower end above the threshold
            needed.append(rows_to_clear(improvement, sd, threshold.effect, a / 2, power))
        if any(x is None for x in needed):
            return None
        return max(x for x in needed if x is not None)
    # FAIL path: the CI's upper end below the threshold.
    return rows_to_clear(improvement, sd, threshold.effect, a / 2, power)


def decide(arms: Sequence[ArmInput], threshold: Threshold, *, power: float = 0.8) -> Verdict:
    """Apply the verdict rules (DESIGN.md "Verdict rules"; docs/statistics.md) to 1-3 arms.

    Per arm aggregate: PASS when the improvement clears the threshold on the declared basis AND
    the Holm-adjusted p <= alpha (and, for a severity-weighted effect, the unweighted effect
    clears too); FAIL when the CI's upper end < threshold; otherwise INCONCLUSIVE. Per slice:
    PASS when the one-sided lower bound > -slice_loss_floor, FAIL when the one-sided upper
    bound < -slice_loss_floor, otherwise INCONCLUSIVE.

    Decision, in order: ``ship`` the arm with the largest improvement among those whose
    aggregate and every slice PASS; else ``ship_narrowly`` the arm with the largest improvement
    among aggregate-PASS arms with at least one passing slice (to the passing slices); else
    ``underpowered`` when any arm's aggregate, or any slice of an aggregate-PASS arm, is
    INCONCLUSIVE; else ``kill``.
    """
    if not arms:
        raise ValueError("decide() needs at least one arm")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ConfigError(f"arm names must be unique, got {names}")
    thr = threshold
    # a p-value that could not be computed (one row, no spread) counts as not significant
    adjusted = holm([a.p_value if 0.0 <= a.p_value <= 1.0 else 1.0 for a in arms])
    verdicts: list[ArmVerdict] = []
    for arm, p_adj in zip(arms, adjusted):
        eff, lo, hi = orient(arm.effect, arm.ci_low, arm.ci_high, thr.direction)
        significant = p_adj <= thr.alpha
        clears = clears_threshold(eff, lo, thr.effect, thr.basis)
        reasons: list[str] = []
        basis_word = "point estimate" if thr.basis == "point" else "CI lower end"
        what = f"improvement {_fmt(eff)} (CI {_fmt(lo)} to {_fmt(hi)})"
        if arm.unweighted is not None:
            u_eff, u_lo, _u_hi = orient(*arm.unweighted, thr.direction)
            if clears and not weighted_winner_ships(eff, lo, u_eff, u_lo, thr.effect, thr.basis):
                clears = False
                reasons.append(
                    f"the severity-weighted effect clears the threshold but the unweighted one "
                    f"({_fmt(u_eff)}, CI lower {_fmt(u_lo)}) does not, so it cannot win"
                )
        if clears and significant:
            aggregate = PASS
            reasons.append(
                f"{what} clears the threshold {thr.effect:g} on the {basis_word} and is significant "
                f"after Holm (p = {p_adj:.3g} <= {thr.alpha:g})"
            )
        elif above(thr.effect, hi):
            aggregate = FAIL
            reasons.append(f"{what}: the CI's upper end is below the threshold {thr.effect:g}")
        else:
            aggregate = INCONCLUSIVE
            why = []
            if not clears:
                why.append(f"does not clear the threshold {thr.effect:g} on the {basis_word}")
            if not significant:
                why.append(f"is not significant after Holm (p = {p_adj:.3g} > {thr.alpha:g})")
            reasons.append(f"{what} " + " and ".join(why) + ", but the CI still reaches the threshold")
        slices = tuple(
            make_slice_result(
                s.name, s.n, s.mean, s.sd_diff, s.lower, s.upper,
                floor=thr.slice_loss_floor, alpha=s.alpha, direction=thr.direction, power=power, column=s.column,
            )
            for s in arm.slices
        )
        for s in slices:
            if s.state == FAIL:
                m, lo_s, hi_s = orient(s.mean, s.lower, s.upper, thr.direction)
                reasons.append(
                    f"slice {s.name} regresses: change {_fmt(m)}, one-sided upper bound {_fmt(hi_s)} "
                    f"is below the loss floor -{thr.slice_loss_floor:g}"
                )
            elif s.state == INCONCLUSIVE:
                more = f"; about {s.rows_needed} rows would decide it" if s.rows_needed else ""
                reasons.append(
                    f"slice {s.name} is inconclusive against the loss floor -{thr.slice_loss_floor:g} "
                    f"({s.n} rows{more})"
                )
        rows_needed = (
            _aggregate_rows_needed(eff, arm.sd_diff, thr, len(arms), power)
            if aggregate == INCONCLUSIVE
            else None
        )
        verdicts.append(
            ArmVerdict(
                name=arm.name, effect=arm.effect, ci_low=arm.ci_low, ci_high=arm.ci_high,
                improvement=eff, p_value=arm.p_value, p_holm=p_adj, n=arm.n, sd_diff=arm.sd_diff,
                significant=significant,
                clears=clears, aggregate=aggregate, slices=slices, rows_needed=rows_needed,
                reasons=tuple(reasons), unweighted=arm.unweighted,
            )
        )

    def best(cands: list[ArmVerdict]) -> ArmVerdict:
        # largest improvement; ties go to the smaller Holm p, then the name (order-independent)
        return min(cands, key=lambda v: (-v.improvement, v.p_holm, v.name))

    full = [v for v in verdicts if v.aggregate == PASS and v.all_slices_pass]
    narrow = [v for v in verdicts if v.aggregate == PASS and v.ships_somewhere]
    reasons = [f"{v.name}: {r}" for v in verdicts for r in v.reasons]
    if full:
        w = best(full)
        lead = f"ship {w.name}: its aggregate and every slice pass"
        beaten = [v.name for v in full if v is not w]
        if beaten:
            verb = "passes" if len(beaten) == 1 else "pass"
            lead += f"; it improves more than {', '.join(beaten)}, which also {verb} everywhere"
        partial = [v.name for v in verdicts if v.aggregate == PASS and not v.all_slices_pass]
        if partial:
            verb = "passes" if len(partial) == 1 else "pass"
            lead += f"; {', '.join(partial)} {verb} the aggregate but not every slice"
        return Verdict(SHIP, w.name, w.passing_slices, (lead, *reasons), tuple(verdicts), thr)
    if narrow:
        w = best(narrow)
        not_passing = [s.name for s in w.slices if s.state != PASS]
        lead = (
            f"ship {w.name} narrowly, to {narrow_scope(w.passing_slices)}: its aggregate passes "
            f"but slices {', '.join(not_passing)} do not"
        )
        return Verdict(SHIP_NARROWLY, w.name, w.passing_slices, (lead, *reasons), tuple(verdicts), thr)
    undecided: list[int | None] = []
    for v in verdicts:
        if v.aggregate == INCONCLUSIVE:
            undecided.append(v.rows_needed)
        elif v.aggregate == PASS:
            undecided.extend(s.rows_needed for s in v.slices if s.state == INCONCLUSIVE)
    if undecided:
        known = [x for x in undecided if x is not None]
        rows = min(known) if known else None
        lead = "underpowered, cannot conclude: no arm passes and at least one is inconclusive"
        if rows is not None:
            lead += f"; about {rows} rows (at the observed effect and spread, {power:.0%} power) would decide it"
        return Verdict(UNDERPOWERED, None, (), (lead, *reasons), tuple(verdicts), thr, rows_needed=rows)
    lead = "kill: every arm fails the threshold or regresses every slice"
    return Verdict(KILL, None, (), (lead, *reasons), tuple(verdicts), thr)


@dataclass(frozen=True)
class DevTestGap:
    """DISCIPLINE rule 21 for one arm: its dev score against its test score.

    ``gap`` is dev minus test in the improvement direction (positive: dev looks better than
    test). ``tuned``: the dev score was selected on dev (the iterated arm at its locked
    iteration); a fixed arm's gap is the two row sets' sampling difference, shown for
    comparison, never an alarm. ``bar`` = 2 x the noise floor.
    """

    arm: str
    dev: float
    test: float
    gap: float
    bar: float
    dev_source: str
    tuned: bool

    @property
    def alarm(self) -> bool:
        return self.tuned and self.gap > self.bar

    def sentence(self) -> str:
        return (f"{self.arm}: dev {self.dev:.4f} ({self.dev_source}) vs test {self.test:.4f}, gap {self.gap:+.4f} "
                f"{'>' if self.gap > self.bar else '<='} 2x the noise floor {self.bar:.4f}")


def dev_test_gap(arm: str, dev: float, test: float, noise_floor: float, direction: str, dev_source: str, tuned: bool) -> DevTestGap:
    sign = 1.0 if direction == "higher" else -1.0
    return DevTestGap(arm, dev, test, sign * (dev - test), 2.0 * noise_floor, dev_source, tuned)


def severity_weights(rows: Sequence[Mapping[str, Any]], column: str) -> list[float]:
    """Each row's severity weight from ``column`` (frame ``metric.severity``): a finite number >= 0."""
    weights: list[float] = []
    for row in rows:
        value = row.get(column)
        try:
            w = float(value) if not isinstance(value, bool) and value is not None and value != "" else math.nan
        except (TypeError, ValueError):
            w = math.nan
        if not math.isfinite(w) or w < 0:
            raise ConfigError(
                f"row {row.get('id')!r} has severity {value!r} in column {column!r} (metric.severity); "
                "give every row a finite weight >= 0 in the data, then split again in a new experiment"
            )
        weights.append(w)
    if weights and not sum(weights) > 0:
        raise ConfigError(f"every row's severity weight in column {column!r} is 0; give the rows that matter a positive weight")
    return weights


