"""The statistics of run-level experiments against scipy / statsmodels, and the keep rule by simulation."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import special, stats
from statsmodels.stats.power import TTestIndPower

from gitera.core import runstats
from gitera.core.errors import ConfigError

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("a, b, x", [(0.5, 0.5, 0.3), (2.0, 0.5, 0.9), (10.0, 0.5, 0.01), (0.25, 3.5, 0.999), (150.0, 0.5, 0.5)])
def test_betainc_matches_scipy(a: float, b: float, x: float) -> None:
    assert runstats.betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-11, abs=1e-14)


@given(st.floats(-60, 60), st.floats(0.5, 400))
@settings(max_examples=300, deadline=None)
def test_t_sf_matches_scipy(t: float, df: float) -> None:
    assert runstats.t_sf(t, df) == pytest.approx(float(stats.t.sf(t, df)), rel=1e-9, abs=1e-13)


@given(st.floats(0.0005, 0.9995), st.floats(1.0, 300))
@settings(max_examples=200, deadline=None)
def test_t_ppf_matches_scipy(q: float, df: float) -> None:
    assert runstats.t_ppf(q, df) == pytest.approx(float(stats.t.ppf(q, df)), rel=1e-9, abs=1e-9)


def test_t_tails_and_bad_quantiles() -> None:
    assert runstats.t_sf(math.inf, 3) == 0.0 and runstats.t_sf(-math.inf, 3) == 1.0 and runstats.t_sf(0.0, 7) == 0.5
    with pytest.raises(ValueError):
        runstats.t_ppf(1.0, 3)


def test_welch_matches_scipy_on_fixed_runs() -> None:
    base, arm = [2.9383, 2.9564, 2.9434, 2.9501], [2.7513, 2.7349, 2.7702]
    c = runstats.welch(base, arm, alpha=0.05)
    ref = stats.ttest_ind(arm, base, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert c.effect == pytest.approx(np.mean(arm) - np.mean(base))
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert c.df == pytest.approx(ref.df, rel=1e-12)
    assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))
    assert c.sd_diff == pytest.approx(math.hypot(np.std(arm, ddof=1), np.std(base, ddof=1)))


@pytest.mark.filterwarnings("ignore:Precision loss occurred")
@given(st.lists(finite, min_size=2, max_size=12), st.lists(finite, min_size=2, max_size=12), st.sampled_from([0.01, 0.05, 0.2]))
@example(base=[0.0, 0.0], arm=[0.0, 3.4350544846331614e-146], alpha=0.01)  # a variance that underflows when squared
@settings(max_examples=200, deadline=None)
def test_welch_matches_scipy_on_generated_runs(base: list[float], arm: list[float], alpha: float) -> None:
    c = runstats.welch(base, arm, alpha)
    if c.se == 0.0:  # no spread at all: the difference is exact
        assert c.p_value == (0.0 if c.effect != 0 else 1.0) and c.ci_low == c.ci_high == c.effect
        return
    if c.se < 1e-9 * (1 + abs(c.effect)):
        return  # float cancellation regime: scipy itself is unstable here
    ref = stats.ttest_ind(arm, base, equal_var=False)
    assert c.p_value == pytest.approx(float(ref.pvalue), rel=1e-6, abs=1e-12)
    ci = ref.confidence_interval(1 - alpha)
    assert c.ci_low == pytest.approx(float(ci.low), rel=1e-6, abs=1e-9)


def test_welch_refuses_single_runs() -> None:
    with pytest.raises(ConfigError, match="at least 2 runs per arm"):
        runstats.welch([1.0], [1.0, 2.0])


@pytest.mark.parametrize("effect, sd, alpha, power", [(0.005, 0.002, 0.05, 0.8), (0.05, 0.0095, 0.05, 0.8), (0.02, 0.01, 0.01, 0.9),
                                                      (0.1, 0.2, 0.05, 0.8)])
def test_runs_needed_matches_statsmodels(effect: float, sd: float, alpha: float, power: float) -> None:
    exact = TTestIndPower().solve_power(effect_size=effect / sd, alpha=alpha, power=power, ratio=1.0)
    assert runstats.runs_needed(effect, sd, alpha, power) == max(2, math.ceil(exact - 1e-9))


def test_runs_needed_worked_example_and_mde_inverse() -> None:
    # "to detect 0.005 with noise sd 0.002 you need N runs per arm": 4 at alpha 0.05, power 80 %
    assert runstats.runs_needed(0.005, 0.002) == 4
    mde = runstats.runs_mde(4, 0.002)
    assert TTestIndPower().power(effect_size=mde / 0.002, nobs1=4, alpha=0.05, ratio=1.0) == pytest.approx(0.8, abs=1e-6)
    assert runstats.runs_needed(0.05, 0.0) == 2 and runstats.runs_mde(5, 0.0) == 0.0
    with pytest.raises(ConfigError):
        runstats.runs_needed(0.0, 0.01)


# --- the sequential keep rule ----------------------------------------------------------------------------


def look(best: list[float], cand: list[float], noise: list[float], **kw: object) -> runstats.Look:
    args: dict[str, object] = {"noise_floor": runstats.sd(noise), "min_delta": 0.0, "alpha": 0.05, "max_runs": 5, "direction": "higher"}
    args.update(kw)
    return runstats.sequential_look(best, cand, [noise], **args)  # type: ignore[arg-type]


def test_keep_needs_the_ladder_and_the_test_on_pooled_runs() -> None:
    noise = [0.50, 0.51, 0.49]
    best = noise  # the iterated arm at the start: the same runs as the baseline's (counted once)
    lk = look(best, [0.60], noise)
    s, df = runstats.pooled_sd([noise, [0.60]])
    se = s * math.sqrt(1 + 1 / 3)
    assert df == 2 and lk.df == 2 and lk.se == pytest.approx(se)
    assert lk.threshold == pytest.approx(max(2 * runstats.sd(noise), se))
    assert lk.p == pytest.approx(float(stats.t.sf((0.60 - 0.50) / se, df)))
    assert lk.action == runstats.KEEP and lk.alpha_look == pytest.approx(0.01)


def test_pooled_t_statistic_matches_scipy_student_t() -> None:
    noise, best, cand = [1.0, 1.1, 0.95, 1.02], [1.2, 1.25, 1.18], [1.31, 1.27]
    lk = look(best, cand, noise, max_runs=2)
    s, df = runstats.pooled_sd([noise, best, cand])
    t = (np.mean(cand) - np.mean(best)) / (s * math.sqrt(1 / 2 + 1 / 3))
    assert lk.p == pytest.approx(float(stats.t.sf(t, df))) and df == 3 + 2 + 1
    # the same pooled t as scipy's Student two-sample t when the noise runs are the best's own
    ref = stats.ttest_ind(cand, best, equal_var=True, alternative="greater")
    assert look(best, cand, best, max_runs=2).p == pytest.approx(float(ref.pvalue))


def test_clearly_worse_is_discarded_after_one_run_and_lower_is_better_flips() -> None:
    noise = [2.90, 2.91, 2.89]
    worse = look(noise, [3.5], noise, direction="lower")
    assert worse.action == runstats.DISCARD and worse.gain < 0 and "after 1 run" in worse.reason
    better = look(noise, [2.5], noise, direction="lower")
    assert better.action == runstats.KEEP and better.gain == pytest.approx(2.90 - 2.5)


def test_within_noise_of_a_keep_asks_for_more_then_stops_at_the_cap() -> None:
    noise = [1.0, 1.02, 0.98]
    first = look(noise, [1.035], noise)  # gain 0.035 vs threshold 0.04: within one SE
    assert first.action == runstats.MORE and "one more run" in first.reason
    capped = look(noise, [1.035, 1.03, 1.04], noise, max_runs=3)
    assert capped.action == runstats.DISCARD and "(the cap)" in capped.reason


def test_a_deterministic_script_has_no_noise_and_keeps_any_gain_beyond_min_delta() -> None:
    same = [0.5, 0.5, 0.5]
    assert look(same, [0.51], same).action == runstats.KEEP
    assert look(same, [0.51], same, min_delta=0.02).action == runstats.DISCARD
    assert look(same, [0.5], same).action == runstats.DISCARD


def test_bad_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        look([], [1.0], [1.0, 2.0])
    with pytest.raises(ConfigError):
        look([1.0], [1.0], [1.0], noise_floor=-1.0)
    with pytest.raises(ConfigError, match="no repeated runs"):
        runstats.sequential_look([1.0], [1.0], [], noise_floor=0.0, min_delta=0.0, alpha=0.05, max_runs=3, direction="higher")


def _attempt(rng: random.Random, true_gain: float, k: int, cap: int, sigma: float = 1.0) -> tuple[bool, int]:
    base = [rng.gauss(0, sigma) for _ in range(k)]
    cand: list[float] = []
    while True:
        cand.append(rng.gauss(true_gain, sigma))
        lk = runstats.sequential_look(base, cand, [base], noise_floor=runstats.sd(base), min_delta=0.0, alpha=0.05, max_runs=cap,
                                      direction="higher")
        if lk.action != runstats.MORE:
            return lk.action == runstats.KEEP, len(cand)


@pytest.mark.parametrize("k, cap", [(3, 1), (3, 5), (5, 3), (4, 8)])
def test_false_keep_rate_under_no_true_change_is_at_most_alpha(k: int, cap: int) -> None:
    rng = random.Random(20261204 + 10 * k + cap)
    n = 4000
    keeps = sum(_attempt(rng, 0.0, k, cap)[0] for _ in range(n))
    # alpha 0.05; the binomial sd at 0.05 over 4,000 attempts is 0.0034, so 3 sd of slack
    assert keeps / n <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / n)


def test_runs_are_spent_only_when_needed() -> None:
    rng = random.Random(7)
    worse = [_attempt(rng, -3.0, 3, 5) for _ in range(500)]
    assert all(runs == 1 and not kept for kept, runs in worse)  # clearly worse: one run each
    null = [_attempt(rng, 0.0, 3, 5)[1] for _ in range(2000)]
    assert sum(null) / len(null) < 2.0 and max(null) == 5  # mostly one run, a few go to the cap
    strong = [_attempt(rng, 6.0, 3, 5) for _ in range(500)]
    assert sum(kept for kept, _ in strong) / 500 > 0.95 and sum(runs for _, runs in strong) / 500 < 2.0
