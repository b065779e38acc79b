"""Statistics of run-level experiments: one score per run of a script (pure).

A run-level experiment (``metric.level: run``) has no rows. Each invocation of the script
prints one number; repeated runs with different seeds (``GITERA_TRIAL``) measure its noise.
This module holds the statistics of that kind (docs/statistics.md, "Run-level experiments"):

* the Student *t* distribution in plain Python (``t_sf``, ``t_ppf``), through the regularized
  incomplete beta function, so that `gitera iterate` decides an attempt without importing
  numpy or scipy (~0.2 s of start-up per attempt);
* ``welch``: the comparison of two arms' run scores (Welch's unequal-variance *t*);
* ``sequential_look``: the keep rule that spends runs only when needed;
* ``runs_needed`` / ``runs_mde``: sizing in runs per arm (exact noncentral *t*, scipy).

Every function is checked against scipy or statsmodels (tests/test_runstats.py), and the keep
rule's false-keep rate is checked by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from gitera.core.errors import ConfigError

KEEP, DISCARD, MORE = "keep", "discard", "more"
_EPS = 1e-15
_TINY = 1e-300


def mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def sd(xs: Sequence[float]) -> float:
    """Sample standard deviation (ddof 1); NaN for fewer than 2 values."""
    if len(xs) < 2:
        return math.nan
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


# --- the Student t distribution -----------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            step = d * c
            h *= step
        if abs(step - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float, y: float | None = None) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1.

    ``y``: 1 − x when the caller knows it more precisely than ``1 - x`` (near x = 1)."""
    y = 1.0 - x if y is None else y
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` > 0 degrees of freedom (scipy.stats.t.sf)."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    denominator = df + t * t
    x, y = df / denominator, t * t / denominator
    # P(|T| > |t|) = I_x(df/2, 1/2); near t = 0 it is 1 − I_y(1/2, df/2), computed without cancellation
    both = betainc(df / 2.0, 0.5, x, y) if x < 0.5 or y >= 1e-4 else 1.0 - betainc(0.5, df / 2.0, y, x)
    tail = 0.5 * both
    return tail if t > 0 else 1.0 - tail


def t_ppf(q: float, df: float) -> float:
    """The quantile of Student's t (scipy.stats.t.ppf), by bisection on ``t_sf`` to ~1e-12."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"a quantile needs 0 < q < 1; got {q}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > 1.0 - q:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_sf(mid, df) > 1.0 - q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


# --- comparing two arms' runs (Welch) ------------------------------------------------------------


@dataclass(frozen=True)
class RunComparison:
    """``arm`` against ``base``: effect = mean(arm) − mean(base), in the metric's own units."""

    effect: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided
    n_arm: int
    n_base: int
    sd_arm: float
    sd_base: float

    @property
    def sd_diff(self) -> float:
        """The sd of one run's difference (one run of each arm): √(sd_arm² + sd_base²), what sizing uses."""
        return math.sqrt(self.sd_arm**2 + self.sd_base**2)


def welch(base: Sequence[float], arm: Sequence[float], alpha: float = 0.05) -> RunComparison:
    """Welch's two-sample t (unequal variances) with a two-sided 1 − alpha interval.

    Equal to ``scipy.stats.ttest_ind(arm, base, equal_var=False)`` and its ``confidence_interval``.
    Runs with no spread at all (a deterministic script) give an exact difference: SE 0, p 0 when
    the means differ, 1 when they do not.
    """
    if len(base) < 2 or len(arm) < 2:
        raise ConfigError(f"a comparison of runs needs at least 2 runs per arm; got {len(arm)} and {len(base)}")
    if not all(math.isfinite(x) for x in (*base, *arm)):
        raise ConfigError("run scores must be finite numbers")
    na, nb = len(arm), len(base)
    sa, sb = sd(arm), sd(base)
    effect = mean(arm) - mean(base)
    va, vb = sa * sa / na, sb * sb / nb
    se = math.sqrt(va + vb)
    if se == 0.0:
        p = 0.0 if effect != 0.0 else 1.0
        return RunComparison(effect, 0.0, float(na + nb - 2), effect, effect, p, na, nb, sa, sb)
    a, b = va / max(va, vb), vb / max(va, vb)  # scaled: tiny variances would underflow when squared
    df = (a + b) ** 2 / (a * a / (na - 1) + b * b / (nb - 1))
    p = min(1.0, 2.0 * t_sf(abs(effect) / se, df))
    half = t_ppf(1.0 - alpha / 2.0, df) * se
    return RunComparison(effect, se, df, effect - half, effect + half, p, na, nb, sa, sb)


# --- the sequential keep rule ---------------------------------------------------------------------


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """(pooled within-group sd, its degrees of freedom) over groups of runs; NaN with no df."""
    ss = math.fsum(math.fsum((x - mean(g)) ** 2 for x in g) for g in groups if g)
    df = sum(len(g) - 1 for g in groups if g)
    return (math.sqrt(ss / df) if df > 0 else math.nan), df


@dataclass(frozen=True)
class Look:
    """One look of the sequential keep rule, after ``runs`` runs of the candidate."""

    action: str  # KEEP, DISCARD or MORE (score one more run)
    runs: int
    gain: float  # mean(candidate) − mean(best), oriented so that positive is better
    se: float  # s_pooled · √(1/runs + 1/best runs)
    threshold: float  # the ladder: max(min_delta, 2 × noise floor, se)
    df: int
    p: float  # one-sided p of the gain (pooled two-sample t)
    alpha_look: float  # alpha / max_runs (Bonferroni over the looks)
    reason: str

    def to_dict(self) -> dict[str, object]:
        def num(x: float) -> float | None:
            return round(x, 10) if math.isfinite(x) else None

        return {"runs": self.runs, "action": self.action, "gain": num(self.gain), "se": num(self.se),
                "threshold": num(self.threshold), "df": self.df, "p": num(self.p), "alpha_look": num(self.alpha_look)}


def distinct_groups(groups: Sequence[Sequence[float]]) -> list[list[float]]:
    """The groups, each set of draws once: an iterated arm scored at the same commit content and
    seeds as the baseline repeats the baseline's very runs (the cache) and adds no information."""
    seen: set[tuple[float, ...]] = set()
    out = []
    for g in groups:
        key = tuple(g)
        if g and key not in seen:
            seen.add(key)
            out.append(list(g))
    return out


def sequential_look(best: Sequence[float], cand: Sequence[float], noise_runs: Sequence[Sequence[float]], *,
                    noise_floor: float, min_delta: float, alpha: float, max_runs: int, direction: str) -> Look:
    """Keep, discard, or score one more run of the candidate (docs/statistics.md, "The sequential keep rule").

    ``best``: the current best's run scores; ``cand``: the candidate's so far (run i at seed i, the
    best's seeds); ``noise_runs``: other groups of runs of the same script (the baseline's runs in
    the loop's dev run) that measure the noise. The run-to-run sd is pooled over the distinct
    groups (the noise runs, the best's, the candidate's).

    - keep: the gain clears the ladder threshold max(min_delta, 2 × noise floor, SE) AND the
      one-sided pooled t test is significant at alpha / max_runs (Bonferroni over the at most
      max_runs looks, so the false-keep rate under no true change is at most alpha);
    - discard: at max_runs runs, or as soon as the gain is more than one SE below the threshold
      (not within noise of a keep);
    - more: otherwise (within one SE of a keep, or beyond it but not yet significant).
    """
    if not best or not cand:
        raise ConfigError("the keep rule needs at least one run of the best and of the candidate")
    if not (math.isfinite(noise_floor) and noise_floor >= 0 and math.isfinite(min_delta) and min_delta >= 0):
        raise ConfigError(f"noise floor {noise_floor} and min_delta {min_delta} must be finite numbers >= 0")
    if max_runs < 1 or not 0 < alpha < 1:
        raise ConfigError(f"max_runs must be >= 1 and 0 < alpha < 1; got {max_runs} and {alpha}")
    n, m = len(cand), len(best)
    sign = 1.0 if direction == "higher" else -1.0
    gain = sign * (mean(cand) - mean(best))
    s, df = pooled_sd(distinct_groups([*noise_runs, best, cand]))
    if df == 0:
        raise ConfigError("no repeated runs to measure the noise; the dev run needs at least 2 runs per arm")
    se = s * math.sqrt(1.0 / n + 1.0 / m)
    parts = {"min_delta": min_delta, "2 × noise floor": 2.0 * noise_floor, "SE": se}
    which = max(parts, key=lambda k: parts[k])
    thr = parts[which]
    alpha_look = alpha / max_runs
    p = (0.0 if gain > 0 else 1.0) if se == 0.0 else t_sf(gain / se, df)
    runs = f"{n} run{'s' if n != 1 else ''}"
    sig = f"one-sided p {p:.3g} {'≤' if p <= alpha_look else '>'} {alpha_look:.3g} (alpha {alpha:g} / {max_runs} looks)"
    bar = f"the threshold {thr:.4g} (the {which}; noise floor {noise_floor:.4g}, SE {se:.4g})"
    if gain > thr and p <= alpha_look:
        return Look(KEEP, n, gain, se, thr, df, p, alpha_look, f"kept after {runs}: gain {gain:+.4g} exceeds {bar} and {sig}")
    if n >= max_runs:
        why = f"exceeds {bar} but {sig}" if gain > thr else f"does not exceed {bar}"
        return Look(DISCARD, n, gain, se, thr, df, p, alpha_look, f"discarded after {runs} (the cap): gain {gain:+.4g} {why}")
    if gain > thr - se:
        why = f"exceeds {bar} but {sig}" if gain > thr else f"is within one SE of {bar}"
        return Look(MORE, n, gain, se, thr, df, p, alpha_look, f"after {runs}: gain {gain:+.4g} {why}: one more run")
    return Look(DISCARD, n, gain, se, thr, df, p, alpha_look,
                f"discarded after {runs}: gain {gain:+.4g} is more than one SE below {bar}: not within noise of a keep")


# --- sizing in runs -------------------------------------------------------------------------------


def _power(n: int, effect: float, sd_: float, alpha: float) -> float:
    """Power of the two-sided two-sample t test with n runs per arm (exact, noncentral t)."""
    from scipy import stats

    df = 2 * n - 2
    ncp = effect / (sd_ * math.sqrt(2.0 / n))
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    power = float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))
    if math.isnan(power):  # scipy's noncentral t fails in far tails: the normal approximation is exact enough there
        z = NormalDist()
        power = z.cdf(ncp - crit) + z.cdf(-crit - ncp)
    return power


def runs_needed(effect: float, sd_: float, alpha: float = 0.05, power: float = 0.8, cap: int = 100_000) -> int | None:
    """Runs per arm for a two-sided two-sample t test at ``alpha`` to detect ``effect`` with
    ``power`` when one run's noise sd is ``sd_`` (statsmodels TTestIndPower, rounded up); None past ``cap``."""
    if not (effect > 0 and math.isfinite(effect)):
        raise ConfigError(f"the effect to detect must be a positive number; got {effect}")
    if not (sd_ >= 0 and math.isfinite(sd_)):
        raise ConfigError(f"the noise sd must be a finite number >= 0; got {sd_}")
    if sd_ == 0:
        return 2
    z = NormalDist().inv_cdf
    n = max(2, math.ceil(2 * ((z(1 - alpha / 2) + z(power)) * sd_ / effect) ** 2) - 1)
    while n <= cap:
        if _power(n, effect, sd_, alpha) >= power:
            while n > 2 and _power(n - 1, effect, sd_, alpha) >= power:
                n -= 1
            return n
        n += max(1, n // 20)
    return None


def runs_mde(n: int, sd_: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest effect the two-sample t test detects with ``power`` at n runs per arm."""
    from scipy.optimize import brentq

    if n < 2:
        raise ConfigError(f"a minimum detectable effect needs at least 2 runs per arm; got {n}")
    if sd_ == 0:
        return 0.0
    hi = sd_
    while _power(n, hi, sd_, alpha) < power:
        hi *= 2
    return float(brentq(lambda e: _power(n, e, sd_, alpha) - power, 1e-12 * sd_, hi, xtol=1e-12 * sd_))
