from __future__ import annotations

import json
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from gitera.core.trailers import build_message, check_message, parse_trailers, records


def interpret(message: str) -> list[str]:
    proc = subprocess.run(["git", "interpret-trailers", "--parse"], input=message, capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def test_git_reads_our_trailers_and_values_are_json() -> None:
    result = {"arm": "v2", "score": 0.81, "status": "keep", "hypothesis": "naming: the processor — ünïcode"}
    message = build_message("gitera iterate: exp1 #3", [("Tag", "exp1"), ("Result", result), ("Result", {"arm": "v1"})], body="Body text.\n\nMore.")
    lines = interpret(message)
    assert lines[0] == "Gitera-Tag: exp1"
    assert [json.loads(line.split(": ", 1)[1]) for line in lines[1:]] == [result, {"arm": "v1"}]
    assert check_message(message) == []
    assert records(message, "Result") == [result, {"arm": "v1"}]


def test_malformed_trailers_are_named() -> None:
    bad_json = "subject\n\nGitera-Tag: exp1\nGitera-Result: {score: 1}\n"
    assert [p.line for p in check_message(bad_json)] == [4]
    assert "not valid JSON" in check_message(bad_json)[0].message
    unknown = "subject\n\nGitera-Reslt: {}\n"
    assert "unknown trailer Gitera-Reslt" in check_message(unknown)[0].message
    not_object = "subject\n\nGitera-Result: [1, 2]\n"
    assert "must hold a JSON object" in check_message(not_object)[0].message
    bad_tag = "subject\n\nGitera-Tag: Not A Tag\n"
    assert "not a valid experiment tag" in check_message(bad_tag)[0].message
    hidden = 'subject\n\nGitera-Result: {"a": 1}\n\nSigned-off-by: me <m@e>\n'
    assert "not in the message's last paragraph" in check_message(hidden)[0].message
    broken_block = 'subject\n\nGitera-Tag: exp1\nthis line is prose\n'
    assert any("hides the Gitera-* trailers" in p.message for p in check_message(broken_block))


def test_messages_without_gitera_trailers_pass() -> None:
    assert check_message("fix a typo\n\nSigned-off-by: A <a@b>\n") == []
    assert check_message("") == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_check_message_never_crashes(text: str) -> None:
    for problem in check_message(text):
        assert problem.line >= 1 and problem.message


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_any_json_record_round_trips_through_git_interpret_trailers(record: dict[str, object]) -> None:
    message = build_message("subject", [("Tag", "exp1"), ("Result", record)])
    assert check_message(message) == []
    parsed = interpret(message)
    assert json.loads(parsed[1].split(": ", 1)[1]) == record
    assert parse_trailers(message)[1][0] == "Result"
