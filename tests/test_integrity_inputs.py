"""Properties of the parsers and rules behind issue 12 points 1, 7, 8 (the attacks themselves are played
end to end in tests/test_integrity_scoring.py): JSONL with Unicode line breaks, depth-bounded
result lines, git log output holding separator characters, the environment pass-through rule,
the tie rule, the YAML bounds and the spend journal."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitera.adapters.evalrun.isolation import harness_env
from gitera.adapters.evalrun.journal import SpendJournal, journal_total
from gitera.adapters.evalrun.parse import MAX_DEPTH, NestedTooDeep, load_line
from gitera.adapters.history import _entries, _parse
from gitera.adapters.yamlio import load_with_lines
from gitera.core.decision import ladder
from gitera.core.errors import ConfigError
from gitera.core.frame import ENV_ALWAYS, ENV_NEVER, env_matches, env_refusal
from gitera.core.results import depth_over, dumps_line, jsonl_lines
from gitera.core.rules import clears_threshold
from gitera.core.ties import above, at_least, tie

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gitera" / "adapters" / "evalrun"))
from pyworker import too_deep  # noqa: E402 - the worker is a script that imports nothing from gitera

BREAKS = "\u2028\u2029\x85\n\r\x1c\x1d\x1e\x0b\x0c"
texts = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs", "P", "Zl", "Zp", "Cc")) | st.sampled_from(BREAKS))
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | texts,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(texts, json_values, max_size=4), max_size=5))
def test_jsonl_written_by_gitera_reads_back_as_the_same_records_whatever_the_text(records: list[dict[str, Any]]) -> None:
    lines = [dumps_line(r) for r in records]
    assert all(len(line.splitlines()) == 1 for line in lines)  # no character str.splitlines() breaks at
    assert [json.loads(line) for line in jsonl_lines("\n".join(lines) + "\n")] == records


def nested(depth: int) -> Any:
    """A value of ``depth`` nested containers."""
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.sampled_from(["r7", 7, "with \"quote\" and \\ slash"]))
def test_a_result_line_is_refused_exactly_when_it_nests_deeper_than_the_limit(depth: int, row_id: Any) -> None:
    inner = "[" * (depth - 1) + "1" + "]" * (depth - 1)  # written out: json.dumps itself recurses
    line = '{"id": ' + json.dumps(row_id) + ', "score": 1, "output": ' + inner + "}"
    try:
        obj = load_line(line)
    except NestedTooDeep as exc:
        assert depth > MAX_DEPTH and exc.key == str(row_id)
    else:
        assert depth <= MAX_DEPTH and obj["id"] == row_id
    assert depth_over(nested(min(depth, 900)), MAX_DEPTH) == (min(depth, 900) > MAX_DEPTH)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]{}\":,0123456789ida \\"))
def test_any_text_as_a_result_line_is_a_value_or_a_value_error(text: str) -> None:
    try:
        load_line(text)
    except ValueError:
        pass


@settings(max_examples=60, deadline=None)
@given(json_values, st.integers(0, 250))
def test_the_python_workers_depth_check_agrees_with_the_parsers(value: Any, depth: int) -> None:
    for v in (value, nested(depth) if depth else value):
        reply = json.dumps({"k": 1, "ok": v})
        assert too_deep(reply) == depth_over(v, MAX_DEPTH)


shas = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
values = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00") | st.sampled_from("\x1e\x1f\n"), max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(shas, st.integers(0, 2**31), values, values), min_size=1, max_size=5))
def test_git_log_output_is_cut_into_one_entry_per_commit_whatever_the_trailers_hold(commits: list[tuple[str, int, str, str]]) -> None:
    subjects = [(c, t, s.replace("\n", " ").replace("\x1e", " ").replace("\x1f", " "), v) for c, t, s, v in commits]
    out = "".join(f"{c}\x00{t}\x00{s}\x00Gitera-Tag: x\x1fGitera-Result: {{\"v\": {json.dumps(v)}}}\x1e\n" for c, t, s, v in subjects)
    entries = _entries(out)
    assert [e.split("\x00", 1)[0] for e in entries] == [c for c, _, _, _ in subjects]
    _parse(out, "x")  # never raises, whatever the values hold


names = st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,12}\Z")
entries = st.builds(lambda n, star: n + ("*" if star else ""), names, st.booleans())
forbidden = st.sampled_from(ENV_NEVER).flatmap(lambda n: st.builds(lambda tail: n[:-1] + tail, st.from_regex(r"\A[A-Z0-9_]{0,6}\Z")) if n.endswith("*") else st.just(n))


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, max_size=4), st.dictionaries(st.one_of(names, forbidden), st.text(max_size=5), max_size=8))
def test_no_accepted_pass_through_list_lets_a_forbidden_variable_reach_the_harness(listed: list[str], source: dict[str, str]) -> None:
    accepted = [e for e in listed if env_refusal(e) is None]
    env = harness_env({**source, "PATH": "/usr/bin:rel/bin::/bin"}, accepted, {"GITERA_ARM": "a"})
    own = {"GITERA_ARM": "a", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}  # set by gitera, whatever the source says
    assert {k: env[k] for k in own} == own
    for name in set(env) - set(own):
        assert not any(env_matches(name, n) for n in ENV_NEVER)
        assert any(env_matches(name, e) for e in (*ENV_ALWAYS, *accepted))
    assert env["PATH"] == "/usr/bin:/bin"
    for entry in listed:
        if any(env_matches(n, entry) for n in ("GITERA_SEAL_KEY", "PYTHONPATH", "LD_PRELOAD")):
            assert env_refusal(entry) is not None


finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(finite, finite)
def test_a_tie_is_neither_above_nor_below_and_at_least_is_its_complement(a: float, b: float) -> None:
    assert above(a, b) == (not at_least(b, a))
    assert not (above(a, b) and above(b, a))
    if tie(a, b):
        assert not above(a, b) and at_least(a, b) and at_least(b, a)
    assert tie(a, a * (1 + 1e-12)) and (abs(a) < 1e-300 or not tie(a, a * (1 + 1e-6)))


def test_the_ladder_discards_a_one_row_gain_for_every_n_and_keeps_two_rows() -> None:
    for n in range(2, 500):
        promotion = ladder([1.0] + [0.0] * (n - 1), noise_floor=0.0, min_delta=0.0)
        assert not promotion.keep and math.isclose(promotion.gain, promotion.threshold, rel_tol=1e-9), n
        assert ladder([1.0, 1.0] + [0.0] * (n - 1), noise_floor=0.0, min_delta=0.0).keep, n


def test_an_effect_at_the_threshold_up_to_rounding_clears_it() -> None:
    effect = sum([0.35] * 3) / 3 - sum([0.3] * 3) / 3
    assert effect < 0.05 and clears_threshold(effect, effect, 0.05, "point") and clears_threshold(0.0, effect, 0.05, "ci_low")
    assert not clears_threshold(0.0499, 0.0, 0.05, "point")


def test_slice_and_fail_states_treat_a_bound_at_the_floor_as_neither() -> None:
    from gitera.core.rules import FAIL, INCONCLUSIVE, PASS, ArmInput, Threshold, decide, slice_state

    floor = 0.02
    at_floor = (0.1 + 0.2) - 0.32  # -0.020000000000000018: -floor up to rounding
    assert slice_state(at_floor, 0.5, floor) == INCONCLUSIVE and slice_state(-0.5, at_floor, floor) == INCONCLUSIVE
    assert slice_state(-0.019, 0.5, floor) == PASS and slice_state(-0.5, -0.021, floor) == FAIL
    thr = Threshold(effect=0.05)
    high = sum([0.35] * 3) / 3 - sum([0.3] * 3) / 3  # 0.04999999999999993: the CI's upper end at the threshold
    arm = decide([ArmInput("b", effect=0.0, ci_low=-0.05, ci_high=high, p_value=0.5)], thr).arms[0]
    assert high < 0.05 and arm.aggregate == INCONCLUSIVE  # not FAIL: a tie is not below


@pytest.mark.parametrize("levels", [3, 5, 8])
def test_yaml_alias_chains_are_refused_once_they_expand_past_the_bound(levels: int) -> None:
    text = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i + 1}: &a{i + 1} [{', '.join([f'*a{i}'] * 9)}]\n" for i in range(levels))
    if 9 ** (levels + 1) > 20_000:
        with pytest.raises(ConfigError, match="alias bomb"):
            load_with_lines(text, "f.yaml")
    else:
        data, _ = load_with_lines(text, "f.yaml")
        assert len(data) == levels + 1


def test_too_many_aliases_are_refused() -> None:
    with pytest.raises(ConfigError, match="more than 100 aliases"):
        load_with_lines("a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n", "f.yaml")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 10, allow_nan=False), max_size=20), st.lists(st.text(max_size=10), max_size=3))
def test_the_spend_journal_sums_what_was_appended_for_its_experiment(tmp_path_factory: Any, costs: list[float], garbage: list[str]) -> None:
    path = tmp_path_factory.mktemp("journal") / "x.jsonl"
    journal, other = SpendJournal(path, "frame-1"), SpendJournal(path, "frame-2")
    for cost in costs:
        journal(cost)
        other(1.0)
    journal.close()
    other.close()
    with path.open("a") as fh:
        fh.write("".join(g.replace("\n", " ") + "\n" for g in garbage))
    assert journal_total(path, "frame-1") == pytest.approx(math.fsum(c for c in costs if c > 0))
