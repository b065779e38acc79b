"""The verdict rules on hand-made cases for every decision, plus analyze() end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitera.core import analysis, rules
from gitera.core.errors import ConfigError
from gitera.core.rules import ArmInput, SliceResult, Threshold, decide

THR = Threshold(effect=0.05, basis="point", slice_loss_floor=0.02, alpha=0.05)
Z80 = 0.8416212335729143


def sl(name: str, mean: float, lower: float, upper: float, n: int = 100, sd: float = 0.2) -> SliceResult:
    return rules.make_slice_result(name, n, mean, sd, lower, upper, floor=0.02, alpha=0.05)


GOOD_SLICES = (sl("free", 0.06, 0.01, 0.11), sl("pro", 0.07, 0.02, 0.12))
REGRESSING = (sl("free", 0.15, 0.10, 0.20), sl("pro", -0.10, -0.15, -0.05))


def arm(name: str, effect: float, lo: float, hi: float, p: float, slices: tuple[SliceResult, ...] = GOOD_SLICES,
        n: int = 400, sd: float = 0.3, unweighted: tuple[float, float, float] | None = None) -> ArmInput:
    return ArmInput(name, effect, lo, hi, p, n=n, sd_diff=sd, slices=slices, unweighted=unweighted)


def test_ship_when_aggregate_and_every_slice_pass() -> None:
    v = decide([arm("v2", 0.08, 0.05, 0.11, 0.001)], THR)
    assert v.decision == "ship" and v.arm == "v2" and v.slices == ("free", "pro")
    assert v.arms[0].aggregate == rules.PASS and v.rows_needed is None
    assert v.reasons[0].startswith("ship v2")


def test_aggregate_winner_with_a_regressing_slice_ships_narrowly() -> None:
    v = decide([arm("v2", 0.08, 0.05, 0.11, 0.001, slices=REGRESSING)], THR)
    assert v.decision == "ship_narrowly" and v.arm == "v2" and v.slices == ("free",)
    assert any("slice pro regresses" in r for r in v.reasons)
    states = {s.name: s.state for s in v.arms[0].slices}
    assert states == {"free": rules.PASS, "pro": rules.FAIL}


def col(column: str, name: str, mean: float, lower: float, upper: float) -> SliceResult:
    return rules.make_slice_result(f"{column}={name}", 100, mean, 0.2, lower, upper, floor=0.02, alpha=0.05, column=column)


def test_with_several_slice_columns_a_narrow_rollout_needs_a_passing_slice_in_every_column() -> None:
    tiers = (col("tier", "gold", 0.1, 0.05, 0.15), col("tier", "free", -0.1, -0.15, -0.05))
    lost_everywhere = (col("region", "eu", -0.1, -0.15, -0.05), col("region", "us", -0.1, -0.15, -0.05))
    v = decide([arm("v2", 0.08, 0.05, 0.11, 0.001, slices=tiers + lost_everywhere)], THR)
    assert v.decision == "kill" and v.arm is None  # tier=gold passes, but no region does: no rows to ship to
    one_region = (col("region", "eu", 0.1, 0.05, 0.15), col("region", "us", 0.1, 0.05, 0.15), col("region", "apac", -0.1, -0.15, -0.05))
    v = decide([arm("v2", 0.08, 0.05, 0.11, 0.001, slices=tiers + one_region)], THR)
    assert v.decision == "ship_narrowly" and v.slices == ("tier=gold", "region=eu", "region=us")
    assert v.reasons[0].startswith("ship v2 narrowly, to rows in tier=gold, and in region=eu or region=us:")
    assert rules.narrow_scope(["tier=gold", "tier=silver"]) == "tier=gold, tier=silver"


def test_analyze_names_the_slices_of_every_column() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2, size=(400, 3)).astype(float)
    better = np.maximum(base, rng.integers(0, 2, size=(400, 3)))
    v = analysis.analyze(base, {"v2": better}, {"tier": ["gold", "free"] * 200, "region": ["eu"] * 400}, threshold=THR, seed=1)
    assert [(s.name, s.column) for s in v.arms[0].slices] == [("tier=free", "tier"), ("tier=gold", "tier"), ("region=eu", "region")]
    plain = analysis.analyze(base, {"v2": better}, ["gold", "free"] * 200, threshold=THR, seed=1)
    assert [(s.name, s.column) for s in plain.arms[0].slices] == [("free", None), ("gold", None)]


def test_analyze_records_the_unweighted_effect_next_to_the_weighted_one() -> None:
    base = np.zeros((300, 3))
    arm_rows = np.zeros((300, 3))
    arm_rows[:100] = 1.0  # the arm fixes the first 100 rows, which weigh 5 each
    weights = [5.0] * 100 + [1.0] * 200
    v = analysis.analyze(base, {"v2": arm_rows}, threshold=THR, seed=1, severity=weights).to_dict()
    (a,) = v["arms"]
    assert math.isclose(a["effect"], 500 / 700) and math.isclose(a["unweighted"]["effect"], 1 / 3)
    assert a["unweighted"]["ci_low"] <= 1 / 3 <= a["unweighted"]["ci_high"]
    assert "unweighted_comparisons" in v["details"]
    assert analysis.analyze(base, {"v2": arm_rows}, threshold=THR, seed=1).to_dict()["arms"][0]["unweighted"] is None


@given(st.lists(st.one_of(st.none(), st.text(max_size=5), st.floats(allow_nan=True), st.integers(-5, 5)), min_size=1, max_size=20))
@settings(max_examples=200)
def test_severity_weights_accept_exactly_finite_non_negative_numbers(values: list[object]) -> None:
    rows = [{"id": f"r{i}", "sev": v} for i, v in enumerate(values)]

    def ok(v: object) -> bool:
        try:
            f = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return v is not None and v != "" and math.isfinite(f) and f >= 0

    if all(ok(v) for v in values) and sum(float(v) for v in values) > 0:  # type: ignore[arg-type]
        assert rules.severity_weights(rows, "sev") == [float(v) for v in values]  # type: ignore[arg-type]
    else:
        with pytest.raises(ConfigError, match="severity|weight"):
            rules.severity_weights(rows, "sev")


def test_winner_with_passing_slices_beats_a_bigger_winner_that_regresses_a_slice() -> None:
    v = decide(
        [arm("big", 0.12, 0.09, 0.15, 1e-6, slices=REGRESSING), arm("steady", 0.07, 0.055, 0.085, 1e-4)],
        THR,
    )
    assert v.decision == "ship" and v.arm == "steady"


def test_three_arms_the_one_that_wins_everywhere_ships() -> None:
    arms = [
        arm("a1", 0.12, 0.09, 0.15, 1e-6, slices=REGRESSING),
        arm("a2", 0.08, 0.06, 0.10, 1e-5),
        arm("a3", 0.00, -0.02, 0.02, 0.9),
    ]
    v = decide(arms, THR)
    assert v.decision == "ship" and v.arm == "a2"
    by = {a.name: a for a in v.arms}
    assert by["a1"].aggregate == rules.PASS and not by["a1"].all_slices_pass
    assert by["a3"].aggregate == rules.FAIL
    # the Holm adjustment was applied across the three arms
    assert by["a2"].p_holm == pytest.approx(2e-5)
    assert by["a1"].p_holm == pytest.approx(3e-6)
    # order of the arms does not matter
    assert decide(arms[::-1], THR).arm == "a2"


def test_underpowered_says_how_many_rows_would_decide() -> None:
    v = decide([arm("v2", 0.04, -0.01, 0.09, 0.12, sd=0.3)], THR)
    assert v.decision == "underpowered" and v.arm is None
    a = v.arms[0]
    assert a.aggregate == rules.INCONCLUSIVE
    # effect below the threshold: rows for the CI's upper end to fall below it, 80% power
    expect = math.ceil(((1.959963984540054 + Z80) * 0.3 / 0.01) ** 2)
    assert a.rows_needed == expect and v.rows_needed == expect
    assert f"about {expect} rows" in v.reasons[0]


def test_underpowered_above_threshold_needs_significance_rows() -> None:
    v = decide([arm("v2", 0.08, -0.01, 0.17, 0.08, sd=0.5, n=100)], THR)
    assert v.decision == "underpowered"
    expect = math.ceil(((1.959963984540054 + Z80) * 0.5 / 0.08) ** 2)
    assert v.rows_needed == expect


def test_kill_when_every_arm_fails() -> None:
    v = decide([arm("v2", 0.01, -0.01, 0.03, 0.3), arm("v3", -0.05, -0.08, -0.02, 0.001)], THR)
    assert v.decision == "kill" and v.arm is None
    assert all(a.aggregate == rules.FAIL for a in v.arms)


def test_holm_can_turn_two_marginal_arms_inconclusive() -> None:
    one = decide([arm("v2", 0.08, 0.001, 0.16, 0.03)], THR)
    assert one.decision == "ship"
    two = decide([arm("v2", 0.08, 0.001, 0.16, 0.03), arm("v3", 0.07, 0.001, 0.14, 0.04)], THR)
    assert two.decision == "underpowered"
    assert [a.p_holm for a in two.arms] == pytest.approx([0.06, 0.06])


def test_ci_low_basis_needs_the_whole_interval_above_the_threshold() -> None:
    a = arm("v2", 0.08, 0.03, 0.13, 0.001)
    assert decide([a], THR).decision == "ship"
    strict = Threshold(0.05, basis="ci_low", slice_loss_floor=0.02)
    v = decide([a], strict)
    assert v.decision == "underpowered" and v.arms[0].aggregate == rules.INCONCLUSIVE
    assert decide([arm("v2", 0.08, 0.051, 0.11, 0.001)], strict).decision == "ship"


def test_lower_is_better_flips_signs() -> None:
    lat = Threshold(0.05, slice_loss_floor=0.02, direction="lower")
    worse_slice = sl("eu", 0.10, 0.05, 0.15)  # raw: this slice got slower
    better_slice = sl("us", -0.10, -0.15, -0.05)
    a = arm("fast", -0.08, -0.11, -0.05, 0.001, slices=(worse_slice, better_slice))
    v = decide([a], lat)
    assert v.decision == "ship_narrowly" and v.slices == ("us",)
    assert v.arms[0].improvement == pytest.approx(0.08)
    # the same numbers with "higher is better" are a loss
    assert decide([a], THR).decision == "kill"


def test_all_slices_inconclusive_is_underpowered_and_all_failing_is_kill() -> None:
    unsure = (sl("free", 0.0, -0.05, 0.05), sl("pro", 0.0, -0.06, 0.06))
    v = decide([arm("v2", 0.08, 0.05, 0.11, 0.001, slices=unsure)], THR)
    assert v.decision == "underpowered" and v.rows_needed is not None
    bad = (sl("free", -0.1, -0.15, -0.05), sl("pro", -0.1, -0.12, -0.08))
    assert decide([arm("v2", 0.08, 0.05, 0.11, 0.001, slices=bad)], THR).decision == "kill"


def test_weighted_winner_needs_the_unweighted_score_to_clear() -> None:
    ok = arm("v2", 0.08, 0.05, 0.11, 0.001, unweighted=(0.06, 0.03, 0.09))
    assert decide([ok], THR).decision == "ship"
    only_weighted = arm("v2", 0.08, 0.05, 0.11, 0.001, unweighted=(0.02, -0.01, 0.05))
    v = decide([only_weighted], THR)
    assert v.decision != "ship" and v.arms[0].aggregate != rules.PASS
    assert any("unweighted" in r for r in v.reasons)


def test_no_slices_means_every_slice_passes_vacuously() -> None:
    assert decide([arm("v2", 0.08, 0.05, 0.11, 0.001, slices=())], THR).decision == "ship"


def test_to_dict_is_strict_json() -> None:
    v = decide([arm("v2", 0.04, -0.01, 0.09, 0.12, sd=math.nan)], THR)
    d = v.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["decision"] == "underpowered" and back["arms"][0]["sd_diff"] is None
    assert back["threshold"]["effect"] == 0.05 and isinstance(back["reasons"], list)


def test_threshold_and_inputs_are_validated() -> None:
    with pytest.raises(ConfigError, match="basis"):
        Threshold(0.05, basis="median")
    with pytest.raises(ConfigError, match="direction"):
        Threshold(0.05, direction="up")
    with pytest.raises(ConfigError, match="alpha"):
        Threshold(0.05, alpha=1.5)
    with pytest.raises(ConfigError, match="unique"):
        decide([arm("a", 0.1, 0, 0.2, 0.01), arm("a", 0.1, 0, 0.2, 0.01)], THR)


def test_rules_import_without_numpy_or_scipy() -> None:
    code = (
        "import sys; sys.modules['scipy'] = None; sys.modules['numpy'] = None\n"
        "import gitera.core.rules as r\n"
        "v = r.decide([r.ArmInput('a', 0.1, 0.06, 0.14, 0.001)], r.Threshold(0.05))\n"
        "assert v.decision == 'ship', v\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


_effect = st.floats(-0.3, 0.3)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_effect, st.floats(0.001, 0.2), st.floats(0, 1), _effect, st.floats(0.001, 0.1)),
                min_size=1, max_size=3))
def test_direction_flip_and_arm_order_do_not_change_the_verdict(spec: list[tuple[float, float, float, float, float]]) -> None:
    hi_arms, lo_arms = [], []
    for i, (e, half, p, s_mean, s_half) in enumerate(spec):
        slices = (sl("s", s_mean, s_mean - s_half, s_mean + s_half),)
        flipped = (sl("s", -s_mean, -s_mean - s_half, -s_mean + s_half),)
        hi_arms.append(arm(f"a{i}", e, e - half, e + half, p, slices=slices))
        lo_arms.append(arm(f"a{i}", -e, -e - half, -e + half, p, slices=flipped))
    up = decide(hi_arms, THR)
    down = decide(lo_arms, Threshold(0.05, slice_loss_floor=0.02, direction="lower"))
    assert (up.decision, up.arm, up.slices) == (down.decision, down.arm, down.slices)
    rev = decide(hi_arms[::-1], THR)
    assert (rev.decision, rev.arm) == (up.decision, up.arm)
    assert up.decision in rules.DECISIONS
    if up.decision in ("ship", "ship_narrowly"):
        chosen = next(a for a in up.arms if a.name == up.arm)
        assert chosen.aggregate == rules.PASS and chosen.improvement >= 0.05 and chosen.p_holm <= 0.05


# ------------------------------------------------------------------ analyze end to end


def _simulate(seed: int = 0, rows: int = 3000) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    slices = rng.choice(["s0", "s1", "s2"], rows)
    p = rng.uniform(0.4, 0.8, rows)
    base = (rng.random((rows, 3)) < p[:, None]).astype(float)
    good_p = np.clip(p + 0.12, 0, 1)
    greedy_p = np.where(slices == "s0", p - 0.15, np.clip(p + 0.30, 0, 1))
    good = (rng.random((rows, 3)) < good_p[:, None]).astype(float)
    greedy = (rng.random((rows, 3)) < greedy_p[:, None]).astype(float)
    flat = (rng.random((rows, 3)) < p[:, None]).astype(float)
    return base, {"greedy": greedy, "good": good, "flat": flat}, slices


def test_analyze_ships_the_arm_that_wins_everywhere() -> None:
    base, arms, slices = _simulate()
    v = analysis.analyze(base, arms, slices, threshold=THR, seed=7)
    assert v.decision == "ship" and v.arm == "good"
    by = {a.name: a for a in v.arms}
    assert by["greedy"].aggregate == rules.PASS
    assert {s.name: s.state for s in by["greedy"].slices}["s0"] == rules.FAIL
    assert by["flat"].aggregate == rules.FAIL
    comp = v.details["comparisons"]["good"]
    assert comp["n"] == 3000 and comp["n_resamples"] == 2000 and comp["ci_method"] == "bootstrap"
    assert v.details["noise_floor"]["n_trials"] == 3
    # deterministic given the seed
    again = analysis.analyze(base, arms, slices, threshold=THR, seed=7)
    assert again.to_dict() == v.to_dict()
    json.dumps(v.to_dict(), allow_nan=False)


def test_analyze_without_the_good_arm_ships_narrowly() -> None:
    base, arms, slices = _simulate()
    v = analysis.analyze(base, {"greedy": arms["greedy"]}, slices, threshold=THR, seed=1)
    assert v.decision == "ship_narrowly" and v.slices == ("s1", "s2")


def test_analyze_small_sample_is_underpowered_and_mismatch_is_config_error() -> None:
    base, arms, slices = _simulate(rows=40, seed=3)
    v = analysis.analyze(base, {"good": arms["good"]}, slices, threshold=THR, seed=1)
    assert v.decision in ("underpowered", "ship_narrowly")
    with pytest.raises(ConfigError, match="same rows"):
        analysis.analyze(base, {"good": arms["good"][:-1]}, threshold=THR)


def test_analyze_with_clusters_and_severity() -> None:
    base, arms, slices = _simulate()
    clusters = np.arange(3000) // 10
    v = analysis.analyze(base, arms, slices, threshold=THR, clusters=clusters, severity=np.ones(3000))
    assert v.arm == "good"
    assert v.details["comparisons"]["good"]["ci_method"] == "cluster"


def test_degenerate_inputs_do_not_crash() -> None:
    one = analysis.analyze(np.array([[0.5, 0.6, 0.7]]), {"v2": np.array([[0.9, 0.8, 1.0]])}, ["s"], threshold=THR)
    assert one.decision == "underpowered" and one.rows_needed is None
    json.dumps(one.to_dict(), allow_nan=False)
    nan_p = decide([arm("v2", 0.08, 0.05, 0.11, math.nan)], THR)
    assert nan_p.decision == "underpowered" and nan_p.arms[0].p_holm == 1.0
    same = analysis.analyze(np.ones((50, 3)), {"v2": np.ones((50, 3))}, threshold=THR)
    assert same.decision == "kill"
