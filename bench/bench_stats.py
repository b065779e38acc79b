"""Time the statistics of one verdict and compare the bootstrap with scipy.stats.bootstrap.

`python bench/bench_stats.py [--rows N] [--resamples B] [--repeat R] [--quick]`

Workload (the issue's): 100,000 rows x 4 arms (baseline + 3) x 20 slices x 3 trials. Two kinds
of scores: binary (accuracy-like, 0/1 per trial; the row means take 4 values) and continuous
(a judge score with noise; every row mean distinct). For each, two timings:

* "verdict statistics": `gitera.core.analysis.analyze` end to end - per-row reduction, noise floor,
  paired bootstrap CIs for 3 arms, McNemar or paired t, Holm, 20-slice non-inferiority for every
  arm, and the decision.
* "paired bootstrap CI": only the bootstrap percentile CIs of the 3 arm-minus-baseline mean
  differences, done by gitera (`stats.bootstrap_means` + percentiles) and by
  `scipy.stats.bootstrap(paired=True, vectorized=True, method="percentile")` with the same rows,
  the same number of resamples, and one vector-valued statistic covering the 3 arms, so both
  draw one set of resampled rows for all arms. scipy's `batch` is set to 200 (its default, all
  resamples at once, was ~5x slower on this machine).

Each timing is the best of `--repeat` runs. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

from gitera.core import analysis, rules, stats  # noqa: E402

ARMS = ("a1", "a2", "a3")


def make_data(kind: str, rows: int, trials: int, n_slices: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    slices = rng.integers(0, n_slices, rows).astype(str)
    p = rng.uniform(0.5, 0.9, rows)
    lifts = {"a1": 0.01, "a2": 0.03, "a3": 0.06}
    if kind == "binary":
        base = (rng.random((rows, trials)) < p[:, None]).astype(np.float64)
        arms = {a: (rng.random((rows, trials)) < np.clip(p + lift, 0, 1)[:, None]).astype(np.float64) for a, lift in lifts.items()}
    else:
        base = p[:, None] + rng.normal(0, 0.2, (rows, trials))
        arms = {a: p[:, None] + lift + rng.normal(0, 0.2, (rows, trials)) for a, lift in lifts.items()}
    return base, arms, slices


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--slices", type=int, default=20)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="20,000 rows, one repeat")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.repeat = 20_000, 1
    thr = rules.Threshold(effect=0.02, basis="point", slice_loss_floor=0.02, alpha=0.05)
    B = args.resamples
    lines = [
        f"{args.rows:,} rows x 4 arms (baseline + 3) x {args.slices} slices x {args.trials} trials; "
        f"{B:,} bootstrap resamples; best of {args.repeat}; {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}, numpy {np.__version__}",
        "",
        "| scores | computation | gitera (s) | scipy.stats.bootstrap (s) | scipy / gitera |",
        "|---|---|---:|---:|---:|",
    ]
    for kind in ("binary", "continuous"):
        base, arms, slices = make_data(kind, args.rows, args.trials, args.slices)
        t_verdict, verdict = best_of(
            args.repeat, lambda: analysis.analyze(base, arms, slices, threshold=thr, seed=1, n_resamples=B)
        )
        assert isinstance(verdict, rules.Verdict)
        b = base.mean(axis=1)
        ys = [arms[a].mean(axis=1) for a in ARMS]
        diffs = np.column_stack([y - b for y in ys])

        def ours() -> np.ndarray:
            boot = stats.bootstrap_means(diffs, B, seed=1)
            return np.quantile(boot, [0.025, 0.975], axis=0)

        def theirs() -> np.ndarray:
            def stat(x: np.ndarray, y1: np.ndarray, y2: np.ndarray, y3: np.ndarray, axis: int) -> np.ndarray:
                return np.stack([np.mean(y - x, axis=axis) for y in (y1, y2, y3)])

            res = sps.bootstrap(
                (b, *ys), stat, paired=True, vectorized=True, n_resamples=B, method="percentile",
                confidence_level=0.95, batch=200, rng=np.random.default_rng(1),
            )
            return np.array([res.confidence_interval.low, res.confidence_interval.high])

        t_ours, ci_ours = best_of(args.repeat, ours)
        t_scipy, ci_scipy = best_of(args.repeat, theirs)
        gap = float(np.max(np.abs(np.asarray(ci_ours) - np.asarray(ci_scipy))))
        lines.append(f"| {kind} | verdict statistics (`analysis.analyze`: decision {verdict.decision} {verdict.arm}) | {t_verdict:.3f} | | |")
        lines.append(
            f"| {kind} | paired bootstrap CI, 3 arms (max CI-end gap vs scipy {gap:.1e}) | {t_ours:.3f} | {t_scipy:.3f} | {t_scipy / t_ours:.1f}x |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
