from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.adapters.yamlio import load_with_lines
from gitera.core.errors import ConfigError
from gitera.core.frame import parse_frame
from tests.helpers import FRAME

NAME = ".gitera/exp1/frame.yaml"
ERROR_RE = re.compile(r"^\.gitera/exp1/frame\.yaml:\d+: \S.*: .+$")


def parse(text: str) -> Any:
    data, lines = load_with_lines(text, NAME)
    return parse_frame(data, lines, NAME)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    message = info.value.message
    assert "\n" not in message
    return message


def test_the_documented_frame_parses_into_values() -> None:
    frame = parse(FRAME)
    assert frame.baseline.arm == "v1" and frame.baseline.file == "src/route.py" and frame.baseline.line == 3
    assert frame.candidates == ("v2",)
    assert frame.arms["v2"].params == {"rules": "rules_v2.txt"}
    assert frame.iterate is not None and frame.iterate.target == ("rules_v2.txt",)
    assert frame.iterate.budget.max_cost_usd == 5.0
    assert frame.metric.trials == 3 and frame.metric.guards[0].kind == "max_increase"
    assert frame.threshold.effect == 0.05 and frame.threshold.basis == "point"
    assert frame.data.split == (0.3, 0.5, 0.2)
    assert frame.locked == ("eval/run.py", "eval/metric.py")


def test_eval_run_timeout_is_optional_and_must_be_positive() -> None:
    assert parse(FRAME).eval.run_timeout_s is None and parse(FRAME).eval.timeout_s == 60.0
    text = FRAME.replace("timeout_s: 60}", "timeout_s: 60, run_timeout_s: 3600}")
    assert parse(text).eval.run_timeout_s == 3600.0
    bad = FRAME.replace("timeout_s: 60}", "timeout_s: 60, run_timeout_s: 0}")
    assert error_of(bad).endswith(":26: eval.run_timeout_s: must be positive; got 0")
    bad = FRAME.replace("timeout_s: 60}", "timeout_s: 60, run_timeout_s: soon}")
    assert error_of(bad).endswith(":26: eval.run_timeout_s: must be a number; got text 'soon'")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("trials: 3", "trials: 1", ":24: metric.trials: must be between 3 and 100; got 1"),
        ("trials: 3", "trials: three", ":24: metric.trials: must be a whole number ≥ 3; got text 'three'"),
        ("effect: 0.05,", "effect: -0.05,", ":25: threshold.effect: must be positive; got -0.05"),
        ("slice_loss_floor: 0.02", "slice_loss_floor: 0", ":25: threshold.slice_loss_floor: must be positive; got 0"),
        ("test: 0.2}", "test: 0.3}", ":18: data.split: train + dev + test must sum to 1; got 1.1"),
        ('ref: "src/route.py:3"', 'ref: "src/route.py"', ":3: baseline.ref: must be file:line"),
        ("target: [rules_v2.txt]", "target: [eval/run.py]", ":9: iterate.target: eval/run.py is also locked"),
        ("secondary: [cost_usd, latency_ms]", "secondary: [cost_usd, latency_ms, tokens]", ":22: metric.secondary: at most 2 allowed; got 3"),
        ("primary: {name: accuracy, direction: higher}", "primary: [{name: accuracy}, {name: f1}]", ":21: metric.primary: exactly one primary metric"),
        ("direction: higher}", "direction: up}", ":21: metric.primary.direction: must be one of higher, lower; got 'up'"),
        ("  arm: v2\n", "  arm: v9\n", ":8: iterate.arm: must be one of the candidate arms (v2); got 'v9'"),
        ("baseline: {arm: v1,", "baseline: {arm: v0,", ":3: baseline.arm: 'v0' is not one of the arms (v1, v2)"),
        ("eval: {command: python eval/run.py,", "eval: {python: not-a-target,", ":26: eval.python: must be module:function"),
        ("question: Does", "questoin: Does", ":1: questoin: unknown field; valid fields here: question,"),
        ("  seed: 7\n", "  seed: 7\n  seed: 8\n", ":20: invalid YAML: duplicate field 'seed'"),
        ("locked: [eval/run.py, eval/metric.py]", "locked: [../secret.py]", ":27: locked[0]: must be a file path relative to the repository root"),
        ("hypothesis: Naming", "hypothesis: TODO Naming", ":2: hypothesis: still holds the template's TODO placeholder"),
        ("guards: [{name: latency_ms, max_increase: 0.5}]", "guards: [{name: latency_ms}]", ":23: metric.guards[0]: give exactly one limit"),
    ],
)
def test_hand_written_bad_frames_name_file_line_and_field(old: str, new: str, expected: str) -> None:
    assert old in FRAME
    message = error_of(FRAME.replace(old, new, 1))
    assert message.startswith(NAME + expected), message


def test_too_many_arms_is_refused() -> None:
    extra = "  v3: {change: a}\n  v4: {change: b}\n  v5: {change: c}\n"
    message = error_of(FRAME.replace("arms:\n", "arms:\n" + extra))
    assert message == f"{NAME}:4: arms: needs the baseline plus 1-3 candidate arms; got 4 candidates"


def test_a_missing_required_field_points_at_its_parent() -> None:
    message = error_of(FRAME.replace("threshold: {effect: 0.05, basis: point, slice_loss_floor: 0.02, alpha: 0.05}", "threshold: {effect: 0.05}"))
    assert message.startswith(f"{NAME}:25: threshold.slice_loss_floor: is required")


def test_bad_yaml_gives_the_line() -> None:
    message = error_of("question: [unclosed\nhypothesis: x\n")
    assert message.startswith(f"{NAME}:3: invalid YAML:") or message.startswith(f"{NAME}:2: invalid YAML:")


def test_empty_file() -> None:
    assert error_of("") == f"{NAME}:1: frame: the file is empty; run `gitera init TAG` for a template"


def test_the_init_template_is_refused_until_filled() -> None:
    from gitera.core.scaffold import FrameDraft, frame_yaml

    message = error_of(frame_yaml(FrameDraft(tag="exp1")))
    assert "TODO placeholder" in message


def test_a_fully_filled_template_parses() -> None:
    from gitera.core.scaffold import FrameDraft, frame_yaml

    draft = FrameDraft(
        tag="exp1", question="Q?", hypothesis="H.", baseline="v1", baseline_ref="src/a.py:1",
        arms={"v1": "current", "v2": "new"}, eval_command="python e.py", locked=["e.py"],
        target=["p.txt"], iterate_arm="v2", slices=["tier"], label="intent", effect=0.05, slice_loss_floor=0.02,
    )
    frame = parse(frame_yaml(draft))
    assert frame.iterate is not None and frame.iterate.arm == "v2"
    assert frame.data.stratify == ("tier", "intent")


# --- property-based: whatever the frame holds, the parser answers with a frame or a ConfigError


def _values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=True), st.text(max_size=12))
    return st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)), max_leaves=6)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_of_a_field_gives_a_frame_or_a_one_line_config_error(data: st.DataObject) -> None:
    doc = yaml.safe_load(FRAME)
    section = data.draw(st.sampled_from(sorted(doc)))
    if isinstance(doc[section], dict) and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(doc[section])))
        if data.draw(st.booleans()):
            del doc[section][key]
        else:
            doc[section][key] = data.draw(_values())
    elif data.draw(st.booleans()):
        del doc[section]
    else:
        doc[section] = data.draw(_values())
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        parse(text)
    except ConfigError as exc:
        assert "\n" not in exc.message
        assert ERROR_RE.match(exc.message), exc.message


@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_parser(text: str) -> None:
    try:
        parse(text)
    except ConfigError as exc:
        assert exc.message.startswith(NAME + ":")
