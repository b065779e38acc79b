"""`gitera log --format jsonl / tsv` against their published definitions (docs/schemas/log-jsonl.schema.json,
docs/iterate.md "History"), and round trips with the Gitera-Result trailers git itself reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from gitera.adapters.history import Record
from gitera.core.trailers import dumps
from gitera.domain.logview import TSV_COLUMNS, render
from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs/schemas/log-jsonl.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def parse_tsv(text: str) -> list[dict[str, str]]:
    lines = text.split("\n")
    assert lines[0].split("\t") == list(TSV_COLUMNS)
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == len(TSV_COLUMNS) for r in rows), rows
    return [dict(zip(TSV_COLUMNS, r)) for r in rows]


def expected_tsv(commit: str, t: dict[str, Any]) -> dict[str, str]:
    """The tsv row docs/iterate.md defines for an attempt's trailer."""
    scored = isinstance(t["score"], (int, float))
    return {"commit": commit[:12], "metric": f"{t['score']:.6f}" if scored else "",
            "guard": "fail" if t["status"] == "guard_fail" else ("ok" if scored else ""),
            "status": t["status"], "description": " ".join(t["hypothesis"].split())}


def test_log_jsonl_and_tsv_round_trip_through_the_trailers_git_reads(repo: Path) -> None:
    synthetic_project(repo)
    policy = repo / "policy_b.txt"
    for text, hyp in (("accuracy: 0.65\n", "raise accuracy\tto 0.65"), ("accuracy: 0.651\n", "a tiny nudge"),
                      ("accuracy: 0.8\nlatency: 100\n", "slower, better"), ("accuracy: 0.7\n", "after the gate"),
                      ("crash\n", "this breaks the harness")):
        policy.write_text(text)
        run_gitera(repo, "iterate", "-m", hyp)
    # git's own reading: one valid JSON object per line
    raw = git(repo, "log", "--reverse", "--format=%H%x1f%(trailers:key=Gitera-Result,valueonly,separator=%x1e)", "autoexp/syn")
    trailers = []
    for line in filter(str.strip, raw.split("\n")):
        commit, _, values = line.partition("\x1f")
        for value in filter(None, values.split("\x1e")):
            obj = json.loads(value)
            assert isinstance(obj, dict)
            if obj["kind"] == "attempt":
                trailers.append((commit, obj))
    assert [t["status"] for _, t in trailers] == ["keep", "discard", "guard_fail", "keep", "crash"]

    lines = run_gitera(repo, "log", "--format", "jsonl").out.splitlines()
    parsed = [json.loads(x) for x in lines]
    for obj in parsed:
        VALIDATOR.validate(obj)
    config, results = parsed[0], parsed[1:]
    assert config["type"] == "config" and config["tag"] == "syn" and config["max_iterations"] == 30
    assert config["baseline"]["arm"] == "a"
    assert [(r.pop("commit"), r.pop("type")) for r in results] == [(c, "result") for c, _ in trailers]
    assert results == [t for _, t in trailers]

    rows = parse_tsv(run_gitera(repo, "log", "--format", "tsv").out.rstrip("\n"))
    assert rows == [expected_tsv(c, t) for c, t in trailers]
    assert rows[0]["description"] == "raise accuracy to 0.65" and rows[-1]["metric"] == "" and rows[-1]["guard"] == ""


# --- the renderer on any trailer a loop could write ---------------------------------------------

numbers = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
criterion = st.fixed_dictionaries({"field": st.sampled_from(["score", "cost_usd", "weighted"]), "direction": st.sampled_from(["higher", "lower"]),
                                   "gain": numbers, "se": numbers, "threshold": numbers, "noise_floor": numbers})
attempt = st.fixed_dictionaries({
    "kind": st.just("attempt"), "iteration": st.integers(1, 10_000), "sprint": st.integers(1, 5_000), "arm": texts, "split": st.just("dev"),
    "n": st.integers(0, 10**6), "trials": st.integers(1, 200), "score": numbers, "sd": numbers, "delta": numbers,
    "ci": st.one_of(st.none(), st.tuples(numbers, numbers).map(list)), "best_score": numbers, "threshold": numbers,
    "status": st.sampled_from(["keep", "discard", "crash", "timeout", "guard_fail"]), "reason": texts,
    "outcome": st.sampled_from(["supported", "neutral", "falsified"]), "hypothesis": texts,
    "mode": st.sampled_from(["primary", "pareto", "weighted"]), "gains": st.one_of(st.none(), st.dictionaries(texts, criterion, max_size=3)),
    "weights": st.one_of(st.none(), st.dictionaries(texts, st.floats(-100, 100, allow_nan=False), max_size=3)),
    "confirm": st.one_of(st.none(), st.fixed_dictionaries({"first_gain": numbers, "first_threshold": numbers,
                                                             "fresh_trials": st.lists(st.integers(0, 99), max_size=3),
                                                             "complete": st.booleans(), "held": st.booleans()})),
    "cost_per_1k": numbers, "latency_ms": numbers, "spent_usd": numbers, "frame": st.just("f" * 64), "rows": texts,
    "noise_floor": st.floats(0, 10, allow_nan=False),
})


@settings(max_examples=120, deadline=None)
@given(attempts=st.lists(attempt, min_size=1, max_size=4), commits=st.lists(st.text("0123456789abcdef", min_size=40, max_size=40), min_size=4, max_size=4))
def test_any_attempt_trailer_renders_to_valid_jsonl_and_exact_tsv(attempts: list[dict[str, Any]], commits: list[str]) -> None:
    records = [Record(c, 0, "s", "Result", json.loads(dumps(a)), dumps(a)) for c, a in zip(commits, attempts)]
    lines = str(render("jsonl", "exp1", records, 30)).split("\n")
    assert len(lines) == len(records) + 1
    for line, rec in zip(lines[1:], records):
        obj = json.loads(line)
        VALIDATOR.validate(obj)
        assert obj.pop("type") == "result" and obj.pop("commit") == rec.commit and obj == rec.data
    VALIDATOR.validate(json.loads(lines[0]))
    rows = parse_tsv(str(render("tsv", "exp1", records, 30)))
    assert rows == [expected_tsv(r.commit, r.data) for r in records]
