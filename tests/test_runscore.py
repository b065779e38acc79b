"""Reading one run's numbers (gitera.core.runscore): fixed cases and property tests."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gitera.core.frame import RUN_RECORD_FIELDS
from gitera.core.runscore import number, read_run

names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(lambda n: n not in ("score", "cost_usd"))
values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
noise_lines = st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=":="), max_size=40), max_size=5)


def test_autoresearch_style_output_with_a_pattern() -> None:
    stdout = "step 100 loss 3.1\nval_bpb: 0.9734\ntraining_seconds: 300.1\npeak_vram_mb: 45060.2\n"
    r = read_run(stdout, None, primary="val_bpb", secondary=["memory_gb"], patterns={"memory_gb": r"^peak_vram_mb:\s*(\S+)"})
    assert r.score == 0.9734 and r.source == "val_bpb line" and r.numbers == {"memory_gb": 45060.2} and r.problems == ()


def test_sources_in_order_json_then_score_line_then_name_line() -> None:
    assert read_run("SCORE: 0.5\nacc: 0.7\n", json.dumps({"score": 0.9, "cost_usd": 0.02}), primary="acc").score == 0.9
    assert read_run("acc: 0.7\nSCORE: 0.5\n", None, primary="acc").source == "SCORE line"
    r = read_run("acc = 0.7\n", None, primary="acc")
    assert r.score == 0.7 and r.source == "acc line"
    pretty = json.dumps({"acc": 0.61, "tokens_per_s": 1200.5}, indent=2)
    r = read_run("", pretty, primary="acc", secondary=["tokens_per_s"])
    assert (r.score, r.numbers) == (0.61, {"tokens_per_s": 1200.5})


def test_a_declared_pattern_is_the_only_source_of_its_metric() -> None:
    r = read_run("val_bpb: 0.9\nbpb=0.8\n", json.dumps({"score": 0.1}), primary="val_bpb", patterns={"val_bpb": r"^bpb=(\S+)"})
    assert r.score == 0.8 and r.source == "pattern"
    r = read_run("val_bpb: 0.9\n", None, primary="val_bpb", patterns={"val_bpb": r"^bpb=(\S+)"})
    assert r.score is None and "no stdout line matches the pattern of val_bpb" in r.problems[0]


def test_problems_say_what_was_missing_and_what_would_do() -> None:
    r = read_run("training done\n", None, primary="val_bpb", secondary=["memory_gb"])
    assert r.score is None
    assert "no JSON object with `score` in $GITERA_OUT, no `SCORE: <number>` line and no `val_bpb: <number>` line" in r.problems[0]
    assert "the run reported no memory_gb (a declared secondary metric)" in r.problems[1]
    r = read_run("val_bpb: nan\n", "not json", primary="val_bpb")
    assert r.score is None and r.problems == ("$GITERA_OUT holds no JSON object; ignored", "the val_bpb line holds 'nan', not a finite number")
    assert read_run("", json.dumps({"score": True}), primary="x").score is None  # a bool is no score


def test_cost_is_read_though_undeclared() -> None:
    assert read_run("SCORE: 1\ncost_usd: 0.25\n", None, primary="acc").numbers == {"cost_usd": 0.25}


@given(names, values, noise_lines, noise_lines)
@settings(max_examples=200)
def test_a_name_line_round_trips(name: str, value: float, before: list[str], after: list[str]) -> None:
    stdout = "\n".join([*before, f"{name}: {value!r}", *after])
    r = read_run(stdout, None, primary=name)
    assert r.score == value


@given(names, st.lists(values, min_size=1, max_size=5))
def test_the_last_line_wins(name: str, seq: list[float]) -> None:
    stdout = "".join(f"{name}: {v!r}\n" for v in seq)
    assert read_run(stdout, None, primary=name).score == seq[-1]


@given(names, values, st.dictionaries(names, values, max_size=3))
def test_a_json_object_round_trips(name: str, value: float, others: dict[str, float]) -> None:
    obj = {**others, name: value}
    r = read_run("", json.dumps(obj), primary=name, secondary=[k for k in others if k != name][:2])
    assert r.score == value
    assert all(r.numbers[k] == obj[k] for k in r.numbers if k != "cost_usd")


@given(st.text(max_size=300), st.one_of(st.none(), st.text(max_size=300)), names)
@settings(max_examples=300)
def test_any_output_gives_a_score_or_a_problem_never_an_exception(stdout: str, out: str | None, name: str) -> None:
    r = read_run(stdout, out, primary=name, secondary=["memory_gb"], patterns={"memory_gb": r"^mem (\S+)"})
    assert (r.score is not None and math.isfinite(r.score)) or r.problems
    assert all(math.isfinite(v) for v in r.numbers.values())


@given(st.one_of(st.text(max_size=20), st.floats(), st.integers(), st.booleans(), st.none()))
def test_number_is_finite_or_none(raw: object) -> None:
    got = number(raw)
    assert got is None or math.isfinite(got)


# --- the sealed archive and the per-run record (gitera.domain.runseal, gitera.adapters.runscript) ---------------

paths = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z]{1,3})?", fullmatch=True), min_size=1, max_size=3).map("/".join)


@given(st.dictionaries(paths, st.binary(max_size=300), min_size=1, max_size=4))
@settings(max_examples=100)
def test_a_sealed_archive_round_trips_and_is_deterministic(files: dict[str, bytes]) -> None:
    from gitera.domain.runseal import pack, unpack

    data = pack(files)
    assert unpack(data, list(files)) == files
    assert pack(dict(reversed(list(files.items())))) == data  # the same files, the same bytes (and commitment)


@given(st.dictionaries(paths, st.binary(max_size=50), min_size=2, max_size=4))
@settings(max_examples=50)
def test_an_archive_with_an_undeclared_or_missing_file_is_refused(files: dict[str, bytes]) -> None:
    import pytest

    from gitera.core.errors import RefusedError
    from gitera.domain.runseal import pack, unpack

    names = sorted(files)
    with pytest.raises(RefusedError, match="which the frame does not declare"):
        unpack(pack(files), names[1:])
    with pytest.raises(RefusedError, match="lacks"):
        unpack(pack({names[0]: files[names[0]]}), names)


@given(st.integers(0, 10**7), st.sampled_from(["ok", "crash", "timeout", "invalid"]), st.one_of(st.none(), values),
       st.floats(0, 1e4), st.dictionaries(names.filter(lambda n: n not in RUN_RECORD_FIELDS), values, max_size=3))
def test_a_run_record_round_trips(trial: int, status: str, score: float | None, seconds: float, numbers: dict[str, float]) -> None:
    from gitera.adapters.runscript import RunResult

    r = RunResult(trial, status, score, round(seconds, 3), numbers, "pattern", "boom" if status != "ok" else None, ("a problem",))
    assert RunResult.from_record(json.loads(json.dumps(r.record()))) == r
