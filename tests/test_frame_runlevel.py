"""The frame of a run-level experiment (metric.level: run): what it accepts and what it refuses, in words."""

from __future__ import annotations

import pytest

from tests.helpers import FRAME as ROW_FRAME
from tests.runproject import AUTORESEARCH
from tests.runproject import FRAME as RUN_FRAME
from tests.test_frame import error_of, parse


def test_the_example_frame_parses() -> None:
    frame = parse((AUTORESEARCH / "frame.yaml").read_text())
    m = frame.metric
    assert m.level == "run" and m.primary == "val_bpb" and m.direction == "lower" and m.patterns == {"val_bpb": r"^val_bpb:\s*(\S+)"}
    assert frame.data.seal == ("data/test.txt",) and frame.data.gate_seal == ("data/gate.txt",) and frame.data.dev == ("data/val.txt",)
    assert frame.iterate is not None and frame.iterate.max_runs == 5 and frame.iterate.target == ("train.py",)
    # the baseline may be the iterated file itself (its content at the lock commit)
    assert frame.baseline.ref == "train.py:1"
    assert frame.eval.concurrency == 1 and frame.threshold.slice_loss_floor == 0.0


def test_secondary_patterns_and_plain_names() -> None:
    frame = parse(RUN_FRAME.replace("secondary: [{name: memory_mb, pattern: '^peak_mb:\\s*(\\S+)'}]",
                                    "secondary: [wall_s, {name: memory_mb, pattern: '^peak_mb:\\s*(\\S+)'}]"))
    assert frame.metric.secondary == ("wall_s", "memory_mb") and frame.metric.patterns == {"memory_mb": r"^peak_mb:\s*(\S+)"}


def test_the_baseline_file_as_target_is_refused_at_row_level_only() -> None:
    row = ROW_FRAME.replace('ref: "src/route.py:3"', 'ref: "rules_v2.txt:1"')
    assert error_of(row).endswith("iterate.target: rules_v2.txt holds the baseline as deployed and cannot be a target")
    assert parse(RUN_FRAME.replace('ref: "train.py:3"', 'ref: "train.py:1"')).baseline.file == "train.py"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("primary: {name: loss, direction: lower}", "primary: {name: loss, direction: lower, pattern: 'loss: (\\S+'}",
     "metric.primary.pattern: is not a valid regular expression"),
    ("primary: {name: loss, direction: lower}", "primary: {name: loss, direction: lower, pattern: '^loss: \\S+'}",
     "metric.primary.pattern: must have exactly one capturing group, the number"),
    ("level: run", "level: rows", "metric.level: must be one of row, run; got 'rows'"),
    ("  seal: [data/test.txt]\n", "", "data.seal: is required with metric.level: run"),
    ("locked: [prepare.py, data/val.txt]", "locked: [prepare.py]", "data.dev[0]: data/val.txt is the dev eval's data: list it in `locked` too"),
    ("gate_seal: [data/gate.txt]", "gate_seal: [data/test.txt]", "data.gate_seal[0]: data/test.txt is also in data.seal"),
    ("locked: [prepare.py, data/val.txt]", "locked: [prepare.py, data/val.txt, data/test.txt]",
     "data.seal[0]: data/test.txt is sealed: it cannot also be locked or a target"),
    ("eval: {command: python train.py, timeout_s: 60}", "eval: {python: 'train:main'}",
     "eval.python: metric.level is run: each run of the script prints one score, there are no rows: give `eval.command`"),
    ("eval: {command: python train.py, timeout_s: 60}", "eval: {command: python train.py, run_timeout_s: 60}",
     "eval.run_timeout_s: metric.level is run"),
    ("data:\n", "data:\n  source: data/rows.csv\n", "data.source: metric.level is run"),
    ("data:\n", "data:\n  slices: [tier]\n", "data.slices: metric.level is run"),
    ("  max_runs: 5\n", "  max_runs: 5\n  mode: pareto\n  directions: {cost_usd: lower}\n", "iterate.mode: metric.level is run: the sequential keep rule decides on the primary metric; remove mode: pareto"),
    ("  max_runs: 5\n", "  max_runs: 5\n  confirm: false\n", "iterate.confirm: metric.level is run"),
    ("  max_runs: 5\n", "  max_runs: 0\n", "iterate.max_runs: must be between 1 and 50; got 0"),
    ("  trials: 3\n", "  trials: 3\n  finding: [a, b, c]\n", "metric.finding: metric.level is run"),
    ("secondary: [{name: memory_mb", "secondary: [seconds, {name: memory_mb", "metric.secondary[0]: 'seconds' names a field of gitera's own per-run record"),
])
def test_run_level_refusals_name_the_field_and_what_to_do(old: str, new: str, expected: str) -> None:
    assert old in RUN_FRAME
    assert expected in error_of(RUN_FRAME.replace(old, new))


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("  seed: 7\n", "  seed: 7\n  seal: [data/test.bin]\n", "data.seal: declares files of a run-level experiment: it needs metric.level: run"),
    ("  sprint: 3\n", "  sprint: 3\n  max_runs: 4\n", "iterate.max_runs: caps the runs of a run-level attempt: it needs metric.level: run"),
    ("primary: {name: accuracy, direction: higher}", "primary: {name: accuracy, direction: higher, pattern: '^acc: (\\S+)'}",
     "metric.primary.pattern: a pattern reads one number per run from stdout: it needs metric.level: run"),
])
def test_run_level_fields_are_refused_at_row_level(old: str, new: str, expected: str) -> None:
    assert old in ROW_FRAME
    assert expected in error_of(ROW_FRAME.replace(old, new))


def test_row_frames_are_unchanged() -> None:
    frame = parse(ROW_FRAME)
    assert frame.metric.level == "row" and frame.metric.patterns == {} and frame.data.seal == () and frame.eval.concurrency == 4
