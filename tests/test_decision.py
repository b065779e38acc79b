"""The iterate keep rule's modes (primary, pareto, weighted), the confirmation trigger, and their frame schema."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.adapters.yamlio import load_with_lines
from gitera.core import decision as rule
from gitera.core.errors import ConfigError
from gitera.core.frame import parse_frame
from tests.helpers import FRAME

NAME = ".gitera/exp1/frame.yaml"
ERROR_RE = re.compile(r"^\.gitera/exp1/frame\.yaml:\d+: \S.*: .+$")


def crit(name: str, gain: float, se: float = 0.01, threshold: float = 0.02, noise: float = 0.005) -> rule.Criterion:
    return rule.Criterion(name, name, "higher", gain, se, threshold, noise)


# --- the rule ----------------------------------------------------------------------------------


def test_primary_mode_is_the_ladder_rule_on_the_primary_alone() -> None:
    assert rule.decide("primary", [crit("accuracy", 0.05), crit("cost_usd", -1.0)]).keep
    d = rule.decide("primary", [crit("accuracy", 0.015)])
    assert not d.keep and not d.falsified and "does not exceed the threshold 0.02" in d.reason
    assert rule.decide("primary", [crit("accuracy", -0.05)]).falsified


@pytest.mark.parametrize(
    ("gains", "keep", "falsified", "words"),
    [
        ((0.0, 0.05), True, False, "better on cost_usd (+0.05 > 0.02), not worse on accuracy"),  # cheaper, as accurate
        ((0.05, 0.0), True, False, "better on accuracy"),
        ((0.05, -0.03), False, False, "worse on cost_usd (-0.03 beyond its noise tolerance)"),  # better and worse: a trade-off
        ((0.015, -0.005), False, False, "better on none"),  # a loss within max(2 × noise, SE) is not worse
        ((0.0, -0.03), False, True, "worse on cost_usd"),
    ],
)
def test_pareto_keeps_only_a_gain_that_costs_nothing_beyond_noise(gains: tuple[float, float], keep: bool, falsified: bool, words: str) -> None:
    d = rule.decide("pareto", [crit("accuracy", gains[0]), crit("cost_usd", gains[1])])
    assert (d.keep, d.falsified) == (keep, falsified)
    assert d.reason.startswith("kept (pareto): " if keep else "discarded (pareto): ") and words in d.reason, d.reason


def test_weighted_mode_decides_on_the_weighted_sum_alone() -> None:
    crits = [crit("accuracy", -0.01), crit("cost_usd", 0.5), crit(rule.WEIGHTED, 0.04)]
    assert rule.decide("weighted", crits).keep
    crits[-1] = crit(rule.WEIGHTED, -0.04)
    d = rule.decide("weighted", crits)
    assert not d.keep and d.falsified and d.reason.startswith("discarded (weighted): weighted gain -0.04")


def test_a_gain_is_marginal_when_it_clears_its_threshold_by_less_than_one_se() -> None:
    assert rule.decide("primary", [crit("accuracy", 0.025, se=0.01, threshold=0.02)]).marginal
    assert not rule.decide("primary", [crit("accuracy", 0.031, se=0.01, threshold=0.02)]).marginal
    assert not rule.decide("primary", [crit("accuracy", 0.015, se=0.01, threshold=0.02)]).marginal  # not kept at all
    # pareto: marginal only if every criterion it was kept on is marginal
    assert rule.decide("pareto", [crit("accuracy", 0.025), crit("cost_usd", 0.0)]).marginal
    assert not rule.decide("pareto", [crit("accuracy", 0.025), crit("cost_usd", 0.5)]).marginal


def test_criterion_follows_the_ladder_and_orients_lower_is_better() -> None:
    c = rule.criterion("cost_usd", "cost_usd", "lower", [1.0, 1.0, 2.0], [2.0, 2.0, 2.0], noise_floor=0.1, min_delta=0.0)
    assert c.gain == pytest.approx(2 / 3) and c.direction == "lower"
    assert c.threshold == pytest.approx(max(0.2, c.se)) and c.better
    assert rule.Criterion.from_dict("cost_usd", c.to_dict()) == rule.Criterion("cost_usd", "cost_usd", "lower", *(
        round(x, 8) for x in (c.gain, c.se, c.threshold, c.noise_floor)))


def test_row_means_and_noise_use_every_ok_trial_and_the_weights() -> None:
    recs = [{"id": "a", "trial": t, "score": s, "cost_usd": 0.1, "status": "ok"} for t, s in ((0, 1), (1, 0), (2, 1))]
    recs += [{"id": "b", "trial": 0, "score": 0, "cost_usd": 0.3, "status": "ok"}, {"id": "b", "trial": 1, "score": None, "status": "crash"}]
    assert rule.row_means(recs, ["a", "b"], "score") == pytest.approx([2 / 3, 0.0])
    assert rule.row_means(recs, ["a", "c"], "score") is None
    w = {"score": 1.0, "cost_usd": -10.0}
    assert rule.row_means(recs, ["a", "b"], "", w) == pytest.approx([2 / 3 - 1.0, -3.0])
    assert rule.trial_noise(recs, "score") == pytest.approx(0.5)  # sd of the trial means 0.5, 0 and 1


def test_recheck_finds_an_edited_gain_and_a_decision_the_rule_does_not_give() -> None:
    best = [{"id": i, "trial": t, "score": 1 if i < "c" else 0, "cost_usd": 0.2, "status": "ok"} for i in "abcd" for t in range(3)]
    cand = [{**r, "cost_usd": 0.1} for r in best]
    acc = rule.criterion("accuracy", "score", "higher", [1, 1, 0, 0], [1, 1, 0, 0], 0.0, 0.0)
    cost = rule.criterion("cost_usd", "cost_usd", "lower", [0.1] * 4, [0.2] * 4, 0.0, 0.0)
    result: dict[str, Any] = {"iteration": 4, "mode": "pareto", "status": "keep",
                              "gains": {"accuracy": acc.to_dict(), "cost_usd": cost.to_dict()}}
    assert rule.recheck(result, cand, best) is None
    assert rule.recheck({**result, "status": "discard"}, cand, best) == "#4 discarded although the pareto rule keeps it"
    assert rule.recheck({**result, "status": "discard", "confirm": {"held": False}}, cand, best) is None
    tampered = {**result, "gains": {**result["gains"], "cost_usd": {**cost.to_dict(), "gain": 0.5}}}
    assert rule.recheck(tampered, cand, best) == "#4: recorded cost_usd gain 0.5 but rows give +0.100000"
    assert rule.recheck(result, best, best) == "#4: recorded cost_usd gain 0.1 but rows give +0.000000"


# --- the frame schema -------------------------------------------------------------------------


def parse(text: str) -> Any:
    data, lines = load_with_lines(text, NAME)
    return parse_frame(data, lines, NAME)


def with_iterate(extra: str) -> str:
    return FRAME.replace("  sprint: 3\n", "  sprint: 3\n" + extra, 1)


def test_the_modes_parse_into_the_iterate_values() -> None:
    it = parse(FRAME).iterate
    assert (it.mode, dict(it.directions), dict(it.weights), it.confirm) == ("primary", {}, {}, True)
    it = parse(with_iterate("  mode: pareto\n  directions: {cost_usd: lower, latency_ms: lower}\n  confirm: false\n")).iterate
    assert it.mode == "pareto" and it.directions == {"cost_usd": "lower", "latency_ms": "lower"} and it.confirm is False
    it = parse(with_iterate("  mode: weighted\n  weights: {accuracy: 1, cost_usd: -20}\n")).iterate
    assert it.mode == "weighted" and it.weights == {"accuracy": 1.0, "cost_usd": -20.0}


SECONDARY_F1 = "[secondary f1] "


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  mode: best\n", ":11: iterate.mode: must be one of primary, pareto, weighted; got 'best'"),
        ("  mode: pareto\n", ":7: iterate.directions: is required with mode: pareto (e.g. {cost_usd: lower})"),
        ("  mode: pareto\n  directions: {tokens: lower}\n", ":12: iterate.directions.tokens: must be a secondary metric (cost_usd, latency_ms)"),
        ("  mode: pareto\n  directions: {accuracy: higher}\n", ":12: iterate.directions.accuracy: must be a secondary metric"),
        ("  mode: pareto\n  directions: {cost_usd: down}\n", ":12: iterate.directions.cost_usd: must be one of higher, lower; got 'down'"),
        ("  directions: {cost_usd: lower}\n", ":11: iterate.directions: is used only with mode: pareto"),
        ("  mode: weighted\n", ":7: iterate.weights: is required with mode: weighted (e.g. {accuracy: 1.0, cost_usd: -20})"),
        ("  mode: weighted\n  weights: {cost_usd: -20}\n", ":12: iterate.weights: must weigh the primary metric accuracy"),
        ("  mode: weighted\n  weights: {accuracy: 1}\n", ":12: iterate.weights: must weigh at least one secondary metric"),
        ("  mode: weighted\n  weights: {accuracy: -1, cost_usd: -20}\n", ":12: iterate.weights.accuracy: must be positive: accuracy is better when higher"),
        ("  mode: weighted\n  weights: {accuracy: 1, cost_usd: 0}\n", ":12: iterate.weights.cost_usd: must be a non-zero number"),
        ("  mode: weighted\n  weights: {accuracy: 1, tokens: 2}\n", ":12: iterate.weights.tokens: must be the primary metric accuracy or a secondary"),
        ("  mode: weighted\n  weights: [accuracy]\n", ":12: iterate.weights: must map metric names to values"),
        ("  weights: {accuracy: 1, cost_usd: -2}\n", ":11: iterate.weights: is used only with mode: weighted"),
        ("  confirm: maybe\n", ":11: iterate.confirm: must be true or false; got text 'maybe'"),
        (SECONDARY_F1 + "  mode: pareto\n  directions: {f1: higher}\n", ":12: iterate.directions.f1: f1 is not recorded per row: "
         "beside the score, gitera keeps only cost_usd, latency_ms, tokens of a result line, so only those can be compared"),
        (SECONDARY_F1 + "  mode: weighted\n  weights: {accuracy: 1, f1: 0.5}\n", ":12: iterate.weights.f1: f1 is not recorded per row"),
    ],
)
def test_bad_mode_settings_name_file_line_and_field(extra: str, expected: str) -> None:
    text = FRAME
    if extra.startswith(SECONDARY_F1):  # a secondary metric the harness may write, but gitera does not keep
        extra = extra[len(SECONDARY_F1):]
        text = FRAME.replace("secondary: [cost_usd, latency_ms]", "secondary: [cost_usd, f1]")
    with pytest.raises(ConfigError) as info:
        parse(text.replace("  sprint: 3\n", "  sprint: 3\n" + extra, 1))
    assert info.value.message.startswith(NAME + expected), info.value.message


def _values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.sampled_from(
        ["accuracy", "cost_usd", "latency_ms", "lower", "higher", "pareto", "weighted", "primary"]))
    return st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(
        st.sampled_from(["accuracy", "cost_usd", "latency_ms", "tokens"]), c, max_size=3)), max_leaves=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(["primary", "pareto", "weighted", "other"]), directions=_values(), weights=_values(), confirm=_values())
def test_any_mode_settings_give_a_frame_or_a_one_line_config_error(mode: str, directions: Any, weights: Any, confirm: Any) -> None:
    doc = yaml.safe_load(FRAME)
    doc["iterate"].update(mode=mode, directions=directions, weights=weights, confirm=confirm)
    try:
        it = parse(yaml.safe_dump(doc, allow_unicode=True)).iterate
    except ConfigError as exc:
        assert "\n" not in exc.message and ERROR_RE.match(exc.message), exc.message
        return
    assert it.mode == mode and isinstance(it.confirm, bool)
    if mode == "weighted":
        assert it.weights["accuracy"] > 0 and len(it.weights) >= 2 and all(math.isfinite(w) and w for w in it.weights.values())
    if mode == "pareto":
        assert it.directions and set(it.directions) <= {"cost_usd", "latency_ms"}
