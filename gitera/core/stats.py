"""Statistics for gitera's verdicts: pure functions over numpy arrays (docs/statistics.md).

Conventions: scores arrive shaped (rows, trials) per arm; trials are averaged per row first and
arms are compared paired on the rows (never rows x trials as if independent). Results are
frozen dataclasses. Randomness comes only from an explicit ``seed`` (an int, fed to
``numpy.random.default_rng``). No I/O, no module state.

The verdict rules themselves, and the few pure helpers they share with this module (Holm,
threshold checks, slice states), live in :mod:`gitera.core.rules` and are re-exported here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gitera.core.decision import Promotion, ladder
from gitera.core.errors import ConfigError
from gitera.core.rules import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    SliceResult,
    clears_threshold,
    holm,
    make_slice_result,
    rows_to_clear,
    weighted_winner_ships,
)

__all__ = [
    "FAIL", "INCONCLUSIVE", "PASS", "SliceResult", "clears_threshold", "holm", "rows_to_clear",
    "weighted_winner_ships",
    "NoiseFloor", "Interval", "McNemar", "TTest", "ClusterSE", "PairedComparison", "Promotion", "Groups",
    "CategoryDelta", "SeveritySummary",
    "row_means", "n_trials", "paired_differences", "noise_floor", "bootstrap_means", "groups",
    "bootstrap_ci", "normal_ci", "cluster_se", "mcnemar", "mcnemar_rows", "paired_t",
    "wilson_interval", "is_binary", "compare_arms", "paired_comparison", "slice_noninferiority",
    "paired_binary_mde", "paired_binary_rows_needed", "paired_binary_power",
    "paired_continuous_power", "paired_continuous_mde", "paired_continuous_rows_needed",
    "expected_max_normal", "best_of_n_optimism", "promotion_decision", "category_deltas",
    "severity_summary",
]

FloatArray = npt.NDArray[np.float64]

# --------------------------------------------------------------------------------------------
# Per-row reduction and the noise floor
# --------------------------------------------------------------------------------------------


def _scores_2d(scores: npt.ArrayLike, name: str = "scores") -> FloatArray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ConfigError(f"{name}: expected one score per row and trial (rows x trials), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ConfigError(f"{name}: no scores (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ConfigError(f"{name}: {bad} score(s) are missing or not finite; every row and trial needs a number")
    return arr


def n_trials(scores: npt.ArrayLike) -> int:
    """Number of trials in a (rows, trials) array (1 for a 1-D array of per-row scores)."""
    arr = np.asarray(scores)
    return 1 if arr.ndim == 1 else int(arr.shape[1])


def row_means(scores: npt.ArrayLike, name: str = "scores") -> FloatArray:
    """Average the trials of each row: (rows, trials) -> (rows,). A 1-D array is returned as is."""
    arr = _scores_2d(scores, name)
    return arr[:, 0].copy() if arr.shape[1] == 1 else arr.mean(axis=1)


def paired_differences(baseline: npt.ArrayLike, arm: npt.ArrayLike) -> FloatArray:
    """Per-row differences arm - baseline of the trial-averaged scores (same rows, same order)."""
    b = row_means(baseline, "baseline")
    a = row_means(arm, "arm")
    if a.shape != b.shape:
        raise ConfigError(f"arm has {a.shape[0]} rows but the baseline has {b.shape[0]}; score both on the same rows")
    return a - b



class _Lazy:
    """scipy.stats / scipy.optimize imported on first use: the iterate loop's ladder rule needs
    neither, and importing scipy costs about a second of start-up on a small machine."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._name), attr)


sps: Any = _Lazy("scipy.stats")
optimize: Any = _Lazy("scipy.optimize")


@dataclass(frozen=True)
class NoiseFloor:
    """Trial-to-trial noise of one arm scored repeatedly with no change.

    ``sd``: the sd (ddof 1) across trials of the per-trial aggregate (mean over rows) — the
    noise floor a gain must beat (DISCIPLINE rule 12: about 2 x sd). ``within_row_var`` and
    ``between_row_var``: the one-way random-effects decomposition of the scores (rows as groups,
    trials as replicates): within = MSW, between = max(0, (MSB - MSW) / trials). ``model_sd`` =
    sqrt(within / rows), what ``sd`` should be if trial noise is independent across rows.
    ``f_statistic`` = MSB / MSW.
    """

    n_rows: int
    n_trials: int
    mean: float
    sd: float
    trial_means: tuple[float, ...]
    within_row_var: float
    between_row_var: float
    icc: float
    model_sd: float
    f_statistic: float


def noise_floor(scores: npt.ArrayLike) -> NoiseFloor:
    """Noise floor and variance decomposition from a (rows, trials >= 2) score array."""
    arr = _scores_2d(scores, "baseline trials")
    n, k = arr.shape
    if k < 2:
        raise ConfigError("the noise floor needs at least 2 repeated trials of the same arm (the frame asks for >= 3)")
    trial_means = arr.mean(axis=0)
    rm = arr.mean(axis=1)
    msw = float(np.mean(arr.var(axis=1, ddof=1)))
    msb = float(k * rm.var(ddof=1)) if n > 1 else math.nan
    between = max(0.0, (msb - msw) / k) if n > 1 else math.nan
    total = between + msw
    icc = between / total if total > 0 else math.nan
    f = msb / msw if msw > 0 else math.inf if msb > 0 else math.nan
    return NoiseFloor(
        n_rows=n, n_trials=k, mean=float(arr.mean()), sd=float(trial_means.std(ddof=1)),
        trial_means=tuple(float(x) for x in trial_means), within_row_var=msw,
        between_row_var=between, icc=icc, model_sd=math.sqrt(msw / n), f_statistic=f,
    )


# --------------------------------------------------------------------------------------------
# Intervals and tests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A confidence interval: low, high, its level and the method that gave it."""
    low: float
    high: float
    level: float
    method: str


def _check_alpha(alpha: float) -> None:
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha {alpha} outside (0, 1)")


def bootstrap_means(
    values: npt.ArrayLike,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: npt.ArrayLike | None = None,
) -> FloatArray:
    """Bootstrap distribution of the (weighted) column means, resampling rows jointly.

    ``values``: shape (rows,) or (rows, k); every resample draws ``rows`` rows with replacement
    and the same rows are used for all k columns (so arms compared against one baseline share
    their resamples). Returns shape (n_resamples, k).

    Fast path, exact in distribution: a mean depends only on how many times each *distinct* row
    (tuple of values) is drawn, and those counts are Multinomial(rows, frequency / rows). When the
    rows take few distinct values (binary or few-trial scores), drawing the multinomial counts
    replaces drawing rows x resamples indices. Otherwise rows are drawn as indices (the
    generator's stream of ``integers(0, rows)``, those of ``scipy.stats.bootstrap`` given the same
    generator), counted per resample and turned into means by blocked products; the cost is then
    linear in rows x resamples and the memory a few MiB beyond the values.
    """
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim == 1:
        vals = vals[:, None]
    n, k = vals.shape
    if n == 0:
        raise ValueError("no rows to resample")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    rng = np.random.default_rng(seed)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if w is not None and w.shape != (n,):
        raise ValueError("one weight per row")
    key = vals if w is None else np.column_stack([vals, w])
    few = _distinct_rows(key, n // 8)
    if few is not None:
        uniq, counts = few
        draws = rng.multinomial(n, counts / n, size=n_resamples).astype(np.float64)
        return _resample_means(draws, uniq[:, :k], None if w is None else uniq[:, k], n)
    # General path: draw row indices, count them per resample, and take the means as
    # counts @ values products, which cost the same for 1 or 3 arms. The last column of x
    # counts the draws themselves: every resample's must come to n (see _COUNT_TYPE).
    x = np.column_stack([vals if w is None else vals * w[:, None], *([] if w is None else [w]), np.ones(n)])
    sums = np.empty((n_resamples, x.shape[1]), dtype=np.float64)
    chunk = max(_MIN_CHUNK, (1 << 20) // n)
    counts = np.empty((min(chunk, n_resamples), n), dtype=_COUNT_TYPE)
    for start in range(0, n_resamples, chunk):
        c = counts[: min(n_resamples, start + chunk) - start]
        s = sums[start : start + c.shape[0]]
        state = rng.bit_generator.state
        _count_draws(rng, c)
        _blocked_product(c, x, s)
        if np.any(s[:, -1] != n):  # a count wrapped: draw the chunk again, counted wide
            again = np.random.Generator(type(rng.bit_generator)())
            again.bit_generator.state = state
            wide = np.empty(c.shape, dtype=np.min_scalar_type(n))
            _count_draws(again, wide)
            _blocked_product(wide, x, s)
    if w is None:
        return np.asarray(sums[:, :k] / n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(sums[:, :k] / sums[:, k : k + 1], dtype=np.float64)


# The index path's sizes (issue 15: its cost per row grew with the rows, and its time under
# load). Indices are drawn _DRAW_BLOCK at a time and counted straight into the resample's row of
# a preallocated counts buffer, so nothing of size rows is allocated per resample and the
# indices in flight stay in the CPU cache. The counts are bytes (_COUNT_TYPE): a resample's
# counts at a million rows then stay in the per-core cache, where 8-byte counts did not. A count
# past 255 would wrap; no row is drawn 256 times in one resample in practice (the chance is at
# most rows / 256!, below 1e-490 for a billion rows), but the draws' total, computed with the
# means, shows it if one ever is, and that chunk is then counted again from the same generator
# state in a type that holds any count.
# A chunk holds at least _MIN_CHUNK resamples, so the values are read once per _MIN_CHUNK
# resamples. The means are products of blocks of at most _PRODUCT_BLOCK counts: small enough
# that BLAS computes each on one thread (a threaded product under load cost more than everything
# else), added in a fixed order, so the sums do not depend on the machine's BLAS threads.
_DRAW_BLOCK = 1 << 16
_COUNT_TYPE = np.uint8
_MIN_CHUNK = 8
_PRODUCT_BLOCK = 1 << 15


def _count_draws(rng: np.random.Generator, counts: npt.NDArray[Any]) -> None:
    """Fill ``counts`` (resamples x rows) with how often each row is drawn in each resample.

    Row r holds the counts of ``rows`` uniform draws of a row index, the resamples taking the
    generator's draws in order. Bounded integer draws continue one stream across calls whatever
    the size of each call (numpy draws them one 32- or 64-bit value at a time and keeps the
    leftover half of a 64-bit word in the generator), so drawing in blocks gives exactly the
    indices of one ``rng.integers(0, rows, size=(resamples, rows))``, those of
    ``scipy.stats.bootstrap`` given the same generator.
    """
    m, n = counts.shape
    one = counts.dtype.type(1)
    counts.fill(0)
    per = _DRAW_BLOCK // n
    if per >= 2:  # few rows: several whole resamples per call, counted into the flat buffer
        flat = counts.reshape(-1)
        for r in range(0, m, per):
            q = min(per, m - r)
            idx = rng.integers(0, n, size=(q, n), dtype=np.intp)
            idx += (np.arange(q, dtype=np.intp) * n)[:, None]
            np.add.at(flat[r * n : (r + q) * n], idx.reshape(-1), one)
        return
    for r in range(m):
        row = counts[r]
        for lo in range(0, n, _DRAW_BLOCK):
            np.add.at(row, rng.integers(0, n, size=min(_DRAW_BLOCK, n - lo), dtype=np.intp), one)


def _blocked_product(counts: npt.NDArray[Any], x: FloatArray, out: FloatArray) -> None:
    """``out = counts @ x`` in blocks of at most _PRODUCT_BLOCK counts, the row blocks of each
    resample block added in order (the counts converted to float64 one block at a time)."""
    m, n = counts.shape
    cols = max(1, min(n, _PRODUCT_BLOCK // _MIN_CHUNK))
    rows = max(1, _PRODUCT_BLOCK // cols)
    buf = np.empty((min(rows, m), cols), dtype=np.float64)
    for r in range(0, m, rows):
        acc = out[r : r + rows]
        acc.fill(0.0)
        for lo in range(0, n, cols):
            f = buf[: acc.shape[0], : min(cols, n - lo)]
            f[...] = counts[r : r + rows, lo : lo + cols]
            acc += f @ x[lo : lo + cols]


def _distinct_rows(key: FloatArray, limit: int) -> tuple[FloatArray, npt.NDArray[np.intp]] | None:
    """The distinct rows of ``key`` and how often each occurs, or None when there are more than
    ``limit`` (the multinomial path pays only with few distinct rows).

    Two cheap checks on the first column come before the row-wise unique of the whole key:
    if its first ``limit + 1`` values are all distinct, or the whole column has more than
    ``limit`` distinct values, so has the key (continuous scores stop at the first check, which
    sorts an eighth of the rows instead of all of them).
    """
    col = key[:, 0]
    if np.unique(col[: limit + 1]).shape[0] > limit or np.unique(col).shape[0] > limit:
        return None
    uniq, counts = np.unique(key, axis=0, return_counts=True)
    return (uniq, counts) if uniq.shape[0] <= limit else None


def _resample_means(counts: FloatArray, vals: FloatArray, w: FloatArray | None, n: int) -> FloatArray:
    """Means of ``vals`` columns under resample ``counts`` (resamples x distinct rows)."""
    if w is None:
        return np.asarray(counts @ vals / n, dtype=np.float64)
    num = counts @ (vals * w[:, None])
    den = counts @ w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(num / den[:, None], dtype=np.float64)


def _percentile(boot: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    q = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return q[0], q[1]


def bootstrap_ci(
    diffs: npt.ArrayLike,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: npt.ArrayLike | None = None,
) -> Interval:
    """Percentile bootstrap CI (two-sided, 1 - alpha) of the mean of per-row paired differences."""
    _check_alpha(alpha)
    lo, hi = _percentile(bootstrap_means(diffs, n_resamples, seed, weights), alpha)
    return Interval(float(lo[0]), float(hi[0]), 1 - alpha, "bootstrap")


def normal_ci(diffs: npt.ArrayLike, alpha: float = 0.05) -> Interval:
    """CLT interval: mean +- z_{1-alpha/2} * sd / sqrt(n)."""
    _check_alpha(alpha)
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return Interval(math.nan, math.nan, 1 - alpha, "normal")
    m, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    z = float(sps.norm.ppf(1 - alpha / 2))
    return Interval(m - z * se, m + z * se, 1 - alpha, "normal")


@dataclass(frozen=True)
class ClusterSE:
    """Cluster-robust (CR1) standard error of a (weighted) mean; ``df`` = clusters - 1."""

    mean: float
    se: float
    n_clusters: int
    df: int


@dataclass(frozen=True, eq=False)
class Groups:
    """One label per row, encoded once by :func:`groups`: row i's label is ``names[codes[i]]``,
    ``names`` sorted. Encoding sorts the labels, the costliest step of a slice or cluster
    computation at a million rows; :func:`slice_noninferiority`, :func:`cluster_se` and
    :func:`compare_arms` take a ``Groups`` wherever they take labels, so labels shared by several
    arms are sorted once."""

    codes: npt.NDArray[np.intp]
    names: npt.NDArray[np.generic]


def groups(labels: npt.ArrayLike | Groups, n: int, what: str = "labels") -> Groups:
    """Encode one label per row (of ``n`` rows); ``what`` names the labels in the error."""
    if isinstance(labels, Groups):
        if labels.codes.shape != (n,):
            raise ConfigError(f"{what}: expected one label per row ({n} rows), got {labels.codes.shape[0]}")
        return labels
    arr = np.asarray(labels)
    if arr.dtype == object:
        arr = arr.astype(str)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ConfigError(f"{what}: expected one label per row ({n} rows), got shape {arr.shape}")
    if arr.dtype.kind not in "US":
        uniq, inverse = np.unique(arr, return_inverse=True)
        return Groups(inverse.reshape(-1), uniq)
    # Strings: number them in order of first appearance (a dict, linear in the rows), then
    # renumber in sorted order, what np.unique(return_inverse=True) gives after sorting all the
    # rows' strings (n log n string comparisons: ten times slower for 20 slices of a million rows).
    first: dict[Any, int] = {}
    seen = [first.setdefault(v, len(first)) for v in arr.tolist()]
    names = np.array(list(first), dtype=arr.dtype)
    order = np.argsort(names, kind="stable")
    rank = np.empty(order.shape[0], dtype=np.intp)
    rank[order] = np.arange(order.shape[0])
    return Groups(rank[np.array(seen, dtype=np.intp)], names[order])


def cluster_se(
    diffs: npt.ArrayLike, clusters: npt.ArrayLike | Groups, weights: npt.ArrayLike | None = None
) -> ClusterSE:
    """CR1 cluster-robust SE of the (weighted) mean of ``diffs``.

    With residual contributions e_i = w_i (d_i - mean_w) / sum(w) and S_g their sum in cluster g,
    se^2 = G / (G - 1) * sum_g S_g^2. Unweighted, this is exactly statsmodels'
    ``OLS(d, 1).fit(cov_type="cluster")`` (its small-sample factor (N - 1) / (N - K) is 1 for K = 1).
    """
    d = np.asarray(diffs, dtype=np.float64)
    gr = groups(clusters, d.shape[0], "clusters")
    inv, uniq = gr.codes, gr.names
    w = np.ones_like(d) if weights is None else np.asarray(weights, dtype=np.float64)
    m = float(np.sum(w * d) / np.sum(w))
    e = w * (d - m) / np.sum(w)
    s = np.bincount(inv, weights=e, minlength=uniq.shape[0])
    g = int(uniq.shape[0])
    se = math.sqrt(g / (g - 1) * float(np.sum(s * s))) if g > 1 else math.nan
    return ClusterSE(m, se, g, g - 1)


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on the discordant pairs: b = baseline right / arm wrong, c = the reverse.

    ``p_exact``: two-sided exact conditional (binomial) p = min(1, 2 P(X <= min(b, c))),
    X ~ Bin(b + c, 1/2). ``p_midp``: the mid-p version, p_exact - P(X = min(b, c)) (Fagerland,
    Lydersen & Laake 2013).
    """

    b: int
    c: int
    p_exact: float
    p_midp: float


def mcnemar(b: int, c: int) -> McNemar:
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be >= 0")
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0, 1.0)
    k = min(b, c)
    cdf, pmf = float(sps.binom.cdf(k, n, 0.5)), float(sps.binom.pmf(k, n, 0.5))
    p = min(1.0, 2.0 * cdf)
    mid = 2.0 * cdf - pmf  # before capping: with b == c the uncapped exact p exceeds 1 by exactly pmf
    return McNemar(int(b), int(c), p, min(1.0, max(0.0, mid)))


def is_binary(x: npt.ArrayLike) -> bool:
    """True when every value is exactly 0 or 1."""
    a = np.asarray(x, dtype=np.float64)
    return bool(np.all((a == 0.0) | (a == 1.0)))


def mcnemar_rows(baseline_rows: npt.ArrayLike, arm_rows: npt.ArrayLike) -> McNemar:
    """McNemar on per-row 0/1 scores (after averaging trials)."""
    b0 = np.asarray(baseline_rows, dtype=np.float64)
    a0 = np.asarray(arm_rows, dtype=np.float64)
    if not (is_binary(b0) and is_binary(a0)):
        raise ValueError("McNemar needs 0/1 per-row scores; use paired_t for fractional scores")
    b = int(np.count_nonzero((b0 == 1) & (a0 == 0)))
    c = int(np.count_nonzero((b0 == 0) & (a0 == 1)))
    return mcnemar(b, c)


@dataclass(frozen=True)
class TTest:
    """A paired or Welch t-test: mean, standard error, statistic, degrees of freedom, p-value and interval."""
    mean: float
    se: float
    statistic: float
    df: int
    p_value: float
    ci_low: float
    ci_high: float


def paired_t(diffs: npt.ArrayLike, alpha: float = 0.05) -> TTest:
    """Paired t-test (two-sided) on per-row differences, with the matching t interval."""
    _check_alpha(alpha)
    d = np.asarray(diffs, dtype=np.float64)
    n = d.size
    m = float(d.mean()) if n else math.nan
    if n < 2:
        return TTest(m, math.nan, math.nan, 0, math.nan, math.nan, math.nan)
    se = float(d.std(ddof=1) / math.sqrt(n))
    df = n - 1
    if se == 0.0:
        p = 1.0 if m == 0.0 else 0.0
        return TTest(m, 0.0, math.copysign(math.inf, m) if m else math.nan, df, p, m, m)
    t = m / se
    p = float(2 * sps.t.sf(abs(t), df))
    q = float(sps.t.ppf(1 - alpha / 2, df))
    return TTest(m, se, t, df, p, m - q * se, m + q * se)


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> Interval:
    """Wilson (1927) score interval for a proportion; Newcombe (1998) method 3.

    center = (p + z^2 / 2n) / (1 + z^2 / n), half = z / (1 + z^2 / n) sqrt(p(1 - p) / n + z^2 / 4n^2).
    """
    _check_alpha(alpha)
    if n <= 0 or not (0 <= successes <= n):
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes}/{n}")
    z = float(sps.norm.ppf(1 - alpha / 2))
    p = successes / n
    den = 1 + z * z / n
    center = (p + z * z / (2 * n)) / den
    half = z / den * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(max(0.0, center - half), min(1.0, center + half), 1 - alpha, "wilson")


# --------------------------------------------------------------------------------------------
# One-call paired comparison of arms against the baseline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedComparison:
    """Arm vs baseline on the same rows (raw units, arm minus baseline).

    ``ci_method``: bootstrap | normal | t | cluster. ``test``: mcnemar_midp | paired_t |
    weighted_t | cluster_t. ``p_exact``: McNemar's exact p when the test is McNemar.
    """

    n: int
    mean_baseline: float
    mean_arm: float
    effect: float
    sd_diff: float
    se: float
    ci_low: float
    ci_high: float
    alpha: float
    ci_method: str
    p_value: float
    test: str
    n_resamples: int
    seed: int
    n_clusters: int | None
    weighted: bool
    discordant_b: int | None
    discordant_c: int | None
    p_exact: float | None


def compare_arms(
    baseline: npt.ArrayLike,
    arms: Mapping[str, npt.ArrayLike],
    *,
    alpha: float = 0.05,
    ci_method: str = "bootstrap",
    clusters: npt.ArrayLike | Groups | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: npt.ArrayLike | None = None,
) -> dict[str, PairedComparison]:
    """Paired comparison of each arm with the baseline (trials averaged per row first).

    CI: ``bootstrap`` (percentile, rows resampled jointly for all arms, seeded), ``normal``
    (CLT), ``t``; when ``clusters`` is given, always the CR1 cluster-robust t interval with
    G - 1 df. Test: cluster-robust t with clusters; weighted t (linearised SE, n - 1 df) with
    severity weights; McNemar mid-p when both arms' per-row scores are 0/1; else paired t.
    """
    _check_alpha(alpha)
    if ci_method not in ("bootstrap", "normal", "t", "cluster"):
        raise ConfigError(f"unknown CI method {ci_method!r}; use bootstrap, normal, t or cluster")
    base = row_means(baseline, "baseline")
    n = base.shape[0]
    names = list(arms)
    rows = {name: row_means(arms[name], name) for name in names}
    for name, r in rows.items():
        if r.shape[0] != n:
            raise ConfigError(f"arm {name} has {r.shape[0]} rows but the baseline has {n}; score every arm on the same rows")
    w: FloatArray | None = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ConfigError(f"severity weights: need one finite weight >= 0 per row ({n} rows) with a positive sum")
    cl: Groups | None = None
    if clusters is not None:
        ci_method = "cluster"
        if names:  # sorted once for all the arms
            cl = groups(clusters, n, "clusters")
    diffs = np.column_stack([rows[name] - base for name in names]) if names else np.empty((n, 0))
    lows: FloatArray | None = None
    highs: FloatArray | None = None
    if ci_method == "bootstrap" and names:
        lows, highs = _percentile(bootstrap_means(diffs, n_resamples, seed, w), alpha)
    z = float(sps.norm.ppf(1 - alpha / 2))
    out: dict[str, PairedComparison] = {}
    binary_base = w is None and clusters is None and is_binary(base)
    for j, name in enumerate(names):
        d = diffs[:, j]
        sd = float(d.std(ddof=1)) if n > 1 else math.nan
        b_count = c_count = None
        p_exact = None
        n_clusters = None
        if cl is not None:
            cs = cluster_se(d, cl, w)
            effect, se, df = cs.mean, cs.se, cs.df
            n_clusters = cs.n_clusters
            test = "cluster_t"
        else:
            if w is None:
                effect = float(d.mean())
                se = sd / math.sqrt(n) if n > 1 else math.nan
            else:
                effect = float(np.sum(w * d) / np.sum(w))
                e = w * (d - effect) / np.sum(w)
                se = math.sqrt(n / (n - 1) * float(np.sum(e * e))) if n > 1 else math.nan
            df = n - 1
            test = "weighted_t" if w is not None else "paired_t"
        if binary_base and is_binary(rows[name]):
            mc = mcnemar_rows(base, rows[name])
            p = mc.p_midp
            p_exact = mc.p_exact
            b_count, c_count = mc.b, mc.c
            test = "mcnemar_midp"
        elif df < 1 or not math.isfinite(se):
            p = math.nan
        elif se == 0.0:
            p = 1.0 if effect == 0.0 else 0.0
        else:
            p = float(2 * sps.t.sf(abs(effect / se), df))
        if ci_method == "bootstrap":
            assert lows is not None and highs is not None
            lo, hi = float(lows[j]), float(highs[j])
        elif ci_method == "normal":
            lo, hi = effect - z * se, effect + z * se
        else:
            q = float(sps.t.ppf(1 - alpha / 2, df)) if df >= 1 else math.nan
            lo, hi = effect - q * se, effect + q * se
        out[name] = PairedComparison(
            n=n, mean_baseline=float(base.mean()), mean_arm=float(rows[name].mean()), effect=effect,
            sd_diff=sd, se=se, ci_low=lo, ci_high=hi, alpha=alpha, ci_method=ci_method, p_value=p,
            test=test, n_resamples=n_resamples if ci_method == "bootstrap" else 0, seed=seed,
            n_clusters=n_clusters, weighted=w is not None, discordant_b=b_count,
            discordant_c=c_count, p_exact=p_exact,
        )
    return out


def paired_comparison(
    baseline: npt.ArrayLike,
    arm: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    ci_method: str = "bootstrap",
    clusters: npt.ArrayLike | Groups | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: npt.ArrayLike | None = None,
) -> PairedComparison:
    """:func:`compare_arms` for a single arm."""
    return compare_arms(
        baseline, {"arm": arm}, alpha=alpha, ci_method=ci_method, clusters=clusters,
        n_resamples=n_resamples, seed=seed, weights=weights,
    )["arm"]


# --------------------------------------------------------------------------------------------
# Slices: per-slice non-inferiority at the loss floor
# --------------------------------------------------------------------------------------------


def slice_noninferiority(
    diffs: npt.ArrayLike,
    labels: npt.ArrayLike | Groups,
    *,
    floor: float,
    alpha: float = 0.05,
    direction: str = "higher",
    power: float = 0.8,
) -> tuple[SliceResult, ...]:
    """Per-slice non-inferiority of per-row paired differences (arm - baseline, raw units).

    For each slice: mean, sd, and one-sided t bounds at level ``alpha``:
    lower = mean - t_{1-alpha, n-1} sd / sqrt(n), upper = mean + t_{1-alpha, n-1} sd / sqrt(n).
    PASS when the (oriented) lower bound > -floor, FAIL when the upper bound < -floor, else
    INCONCLUSIVE with the rows that would decide it. No multiplicity correction: the arm ships to
    a slice set only if *every* slice in it passes, an intersection-union test, whose level is
    alpha without adjustment (Berger 1982). Slices with one row are INCONCLUSIVE.
    """
    _check_alpha(alpha)
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError("diffs must be one per-row difference per row")
    gr = groups(labels, d.shape[0], "slices")
    inv, uniq = gr.codes, gr.names
    g = uniq.shape[0]
    cnt = np.bincount(inv, minlength=g).astype(np.float64)
    mean = np.bincount(inv, weights=d, minlength=g) / cnt
    ss = np.bincount(inv, weights=(d - mean[inv]) ** 2, minlength=g)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(ss / (cnt - 1))
        q = sps.t.ppf(1 - alpha, cnt - 1)
        half = q * sd / np.sqrt(cnt)
    out = []
    for i in range(g):
        if cnt[i] < 2:
            lo = hi = s = math.nan
        else:
            s, lo, hi = float(sd[i]), float(mean[i] - half[i]), float(mean[i] + half[i])
        out.append(
            make_slice_result(
                str(uniq[i]), int(cnt[i]), float(mean[i]), s, lo, hi,
                floor=floor, alpha=alpha, direction=direction, power=power,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Planning: minimum detectable effect and rows needed
# --------------------------------------------------------------------------------------------


def _z(p: float) -> float:
    return float(sps.norm.ppf(p))


def _check_plan(alpha: float, power: float) -> None:
    if not (0.0 < alpha < 1.0):
        raise ConfigError(f"alpha {alpha} must be between 0 and 1")
    if not (0.0 < power < 1.0):
        raise ConfigError(f"power {power} must be between 0 and 1")


def _check_discordance(discordance: float) -> None:
    if not (0.0 < discordance <= 1.0):
        raise ConfigError(f"discordance {discordance} must be in (0, 1]: the share of rows where the arms disagree")


def paired_binary_power(n: int, effect: float, alpha: float = 0.05, discordance: float = 0.2) -> float:
    """Power of the two-sided McNemar test (Connor 1987 normal approximation, one tail)."""
    _check_discordance(discordance)
    d = abs(effect)
    if d == 0:
        return alpha
    if d > discordance:
        raise ConfigError(f"an effect of {effect} cannot occur when only {discordance} of rows are discordant")
    x = (d * math.sqrt(n) - _z(1 - alpha / 2) * math.sqrt(discordance)) / math.sqrt(discordance - d * d)
    return float(sps.norm.cdf(x)) if discordance > d * d else 1.0


def paired_binary_rows_needed(
    effect: float, alpha: float = 0.05, power: float = 0.8, discordance: float = 0.2
) -> int:
    """Rows (pairs) to detect a paired difference in proportions ``effect`` (Connor 1987).

    n = ceil( (z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi - delta^2))^2 / delta^2 ),
    with psi = ``discordance`` = P(the arms disagree on a row) = p10 + p01 and
    delta = ``effect`` = p01 - p10. Two-sided alpha.
    """
    _check_plan(alpha, power)
    _check_discordance(discordance)
    d = abs(effect)
    if not (0.0 < d <= discordance):
        raise ConfigError(
            f"effect {effect} must be non-zero and at most the discordance {discordance} "
            "(a difference in proportions can only come from rows where the arms disagree)"
        )
    num = _z(1 - alpha / 2) * math.sqrt(discordance) + _z(power) * math.sqrt(discordance - d * d)
    return max(1, math.ceil((num / d) ** 2 - 1e-9))


def paired_binary_mde(n: int, alpha: float = 0.05, power: float = 0.8, discordance: float = 0.2) -> float:
    """Smallest |p01 - p10| detectable with ``n`` rows (Connor 1987 solved for delta).

    Returns ``math.inf`` when no effect up to the discordance itself is detectable at ``n``.
    """
    _check_plan(alpha, power)
    _check_discordance(discordance)
    if n < 1:
        raise ConfigError(f"number of rows {n} must be >= 1")
    za, zb, psi, rn = _z(1 - alpha / 2), _z(power), discordance, math.sqrt(n)

    def f(d: float) -> float:
        return rn * d - za * math.sqrt(psi) - zb * math.sqrt(max(0.0, psi - d * d))

    if f(psi) < 0:
        return math.inf
    return float(optimize.brentq(f, 0.0, psi, xtol=1e-12))


def _eff_sd(sd_diff: float, trials_per_row: int, within_sd: float) -> float:
    if sd_diff < 0 or within_sd < 0 or trials_per_row < 1:
        raise ConfigError("sd_diff and within_sd must be >= 0 and trials_per_row >= 1")
    s = math.sqrt(sd_diff**2 + 2.0 * within_sd**2 / trials_per_row)
    if s == 0:
        raise ConfigError("sd_diff and within_sd are both 0: the rows needed are not defined")
    return s


def paired_continuous_power(
    n: int, effect: float, sd_diff: float, alpha: float = 0.05, trials_per_row: int = 1, within_sd: float = 0.0
) -> float:
    """Power of the two-sided paired t-test (exact, noncentral t with n - 1 df)."""
    s = _eff_sd(sd_diff, trials_per_row, within_sd)
    if n < 2:
        return math.nan
    df = n - 1
    nc = abs(effect) * math.sqrt(n) / s
    tc = float(sps.t.ppf(1 - alpha / 2, df))
    upper = float(sps.nct.sf(tc, df, nc))
    lower = float(sps.nct.cdf(-tc, df, nc))  # the wrong-sign tail; scipy gives NaN when it underflows
    return min(1.0, (upper if math.isfinite(upper) else 1.0) + (lower if math.isfinite(lower) else 0.0))


def paired_continuous_rows_needed(
    effect: float,
    sd_diff: float,
    alpha: float = 0.05,
    power: float = 0.8,
    trials_per_row: int = 1,
    within_sd: float = 0.0,
) -> int:
    """Fewest rows for the paired t-test to reach ``power`` at ``effect``.

    The sd of one row's observed difference is sqrt(sd_diff^2 + 2 within_sd^2 / trials_per_row):
    ``sd_diff`` is the row-to-row sd of the true difference, ``within_sd`` the trial-to-trial sd
    of one score, averaged over ``trials_per_row`` trials in each of the two arms.
    """
    _check_plan(alpha, power)
    s = _eff_sd(sd_diff, trials_per_row, within_sd)
    if effect == 0 or not math.isfinite(effect):
        raise ConfigError(f"effect {effect} must be a non-zero number")
    n = max(2, math.ceil(((_z(1 - alpha / 2) + _z(power)) * s / abs(effect)) ** 2))
    while paired_continuous_power(n, effect, sd_diff, alpha, trials_per_row, within_sd) < power:
        n += 1
    while n > 2 and paired_continuous_power(n - 1, effect, sd_diff, alpha, trials_per_row, within_sd) >= power:
        n -= 1
    return n


def paired_continuous_mde(
    n: int,
    sd_diff: float,
    alpha: float = 0.05,
    power: float = 0.8,
    trials_per_row: int = 1,
    within_sd: float = 0.0,
) -> float:
    """Smallest effect the paired t-test detects with ``power`` on ``n`` rows (exact noncentral t)."""
    _check_plan(alpha, power)
    s = _eff_sd(sd_diff, trials_per_row, within_sd)
    if n < 2:
        raise ConfigError(f"number of rows {n} must be >= 2")

    def f(d: float) -> float:
        return paired_continuous_power(n, d, sd_diff, alpha, trials_per_row, within_sd) - power

    hi = s * (_z(1 - alpha / 2) + _z(power) + 2) / math.sqrt(n)
    while f(hi) < 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-12 * s))


# --------------------------------------------------------------------------------------------
# Iteration honesty: best-of-N optimism and the ladder promotion rule
# --------------------------------------------------------------------------------------------


_GRID = np.linspace(-12.0, 12.0, 24001)


@functools.lru_cache(maxsize=1)
def _normal_logs() -> tuple[FloatArray, FloatArray]:
    """log Phi and log phi on the grid, computed once on first use (keeps import light)."""
    return sps.norm.logcdf(_GRID), sps.norm.logpdf(_GRID)


def expected_max_normal(n: int) -> float:
    """E[max of n iid standard normals] = int x n phi(x) Phi(x)^(n-1) dx (numeric integration).

    Trapezoid rule on [-12, 12] with step 0.001 (the integrand is smooth and negligible outside),
    accurate to about 1e-9 for n up to 10^6. n = 1 gives 0.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if n == 1:
        return 0.0
    logcdf, logpdf = _normal_logs()
    dens = np.exp(math.log(n) + logpdf + (n - 1) * logcdf)
    return float(np.trapezoid(_GRID * dens, _GRID))


def best_of_n_optimism(n: int, se: float) -> float:
    """Expected amount by which the best of ``n`` attempts with equal true score and standard
    error ``se`` overstates that score: E[max of n N(0, 1)] x se (DISCIPLINE rule 19)."""
    return expected_max_normal(n) * se


def promotion_decision(
    best_rows: npt.ArrayLike,
    candidate_rows: npt.ArrayLike,
    noise_floor: float,
    min_delta: float,
    direction: str = "higher",
) -> Promotion:
    """The ladder rule for ``gitera iterate`` on (rows, trials) arrays; see :func:`gitera.core.decision.ladder`.

    gain = mean over rows of (candidate - current best) per-row scores (trials averaged first),
    signed so that positive is better; keep iff gain > max(min_delta, 2 x noise_floor, paired SE).
    """
    if direction not in ("higher", "lower"):
        raise ConfigError(f"direction {direction!r}: use 'higher' or 'lower'")
    d = paired_differences(best_rows, candidate_rows)
    if direction == "lower":
        d = -d
    return ladder([float(x) for x in d], noise_floor, min_delta)


# --------------------------------------------------------------------------------------------
# Failure categories and severity weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryDelta:
    """Rows with one failure category, baseline vs arm (per trial on average when trials > 1).

    ``fixed``: rows the baseline had in this category and the arm does not; ``introduced``: the
    reverse (only with one label per row, else None).
    """

    category: str
    baseline_count: float
    arm_count: float
    delta: float
    baseline_rate: float
    arm_rate: float
    fixed: int | None
    introduced: int | None


def _findings(f: npt.ArrayLike, name: str) -> npt.NDArray[np.str_]:
    arr = np.asarray(f, dtype=object)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ConfigError(f"{name}: expected one finding label per row (and trial)")
    flat = ["" if x is None else str(x) for x in arr.ravel().tolist()]
    return np.asarray(flat, dtype=np.str_).reshape(arr.shape)


def category_deltas(
    baseline_findings: npt.ArrayLike,
    arm_findings: npt.ArrayLike,
    categories: Sequence[str] | None = None,
) -> tuple[CategoryDelta, ...]:
    """Per-category counts and deltas; a label of None or "" means "no failure" on that row."""
    b = _findings(baseline_findings, "baseline findings")
    a = _findings(arm_findings, "arm findings")
    if a.shape[0] != b.shape[0]:
        raise ConfigError(f"arm findings cover {a.shape[0]} rows but the baseline's cover {b.shape[0]}")
    cats = list(categories) if categories is not None else sorted(
        (set(np.unique(b).tolist()) | set(np.unique(a).tolist())) - {""}
    )
    n = b.shape[0]
    one = b.shape[1] == 1 and a.shape[1] == 1
    out = []
    for cat in cats:
        bc = float(np.count_nonzero(b == cat)) / b.shape[1]
        ac = float(np.count_nonzero(a == cat)) / a.shape[1]
        fixed = introduced = None
        if one:
            fixed = int(np.count_nonzero((b[:, 0] == cat) & (a[:, 0] != cat)))
            introduced = int(np.count_nonzero((a[:, 0] == cat) & (b[:, 0] != cat)))
        out.append(CategoryDelta(str(cat), bc, ac, ac - bc, bc / n, ac / n, fixed, introduced))
    return tuple(out)


@dataclass(frozen=True)
class SeveritySummary:
    """Unweighted and severity-weighted means side by side (rule 16)."""

    baseline_unweighted: float
    arm_unweighted: float
    delta_unweighted: float
    baseline_weighted: float
    arm_weighted: float
    delta_weighted: float


def severity_summary(
    baseline: npt.ArrayLike, arm: npt.ArrayLike, weights: npt.ArrayLike
) -> SeveritySummary:
    """Weighted mean = sum(w_i x_i) / sum(w_i), next to the plain mean, for both arms."""
    b = row_means(baseline, "baseline")
    a = row_means(arm, "arm")
    w = np.asarray(weights, dtype=np.float64)
    if not (a.shape == b.shape == w.shape) or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ConfigError("severity weights: need one finite weight >= 0 per row, with a positive sum")
    bw = float(np.sum(w * b) / w.sum())
    aw = float(np.sum(w * a) / w.sum())
    return SeveritySummary(float(b.mean()), float(a.mean()), float(a.mean() - b.mean()), bw, aw, aw - bw)
