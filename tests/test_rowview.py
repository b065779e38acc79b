"""The pure row-level pieces: sides, outcomes (a crash is never a tie), subjects, redaction, the page's embedding."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gitera.core import htmlpage, rowview


def rec(rid: str, trial: int, score: float | None, status: str = "ok", **extra: Any) -> dict[str, Any]:
    return {"id": rid, "trial": trial, "score": score, "status": status, **extra}


def test_a_side_pools_trials_and_is_wrong_when_most_of_them_are() -> None:
    records = [rec("x", 0, 1), rec("x", 1, 0), rec("x", 2, 0), rec("y", 0, 1), rec("y", 1, 1, finding="slow"), rec("y", 2, 0)]
    s = rowview.sides(records, binary=True, direction="higher")
    assert s["x"].score == 1 / 3 and s["x"].wrong is True
    assert s["y"].wrong is True  # two wrong trials of three: the 0, and the 1 whose harness gave a finding
    lower = rowview.sides(records, binary=True, direction="lower")  # an error rate: 1 is the wrong answer
    assert lower["x"].wrong is False


def test_continuous_scores_are_wrong_only_where_the_harness_reported_a_finding() -> None:
    records = [rec("x", 0, 0.2), rec("x", 1, 0.3), rec("y", 0, 0.9, finding="hallucination"), rec("y", 1, 0.8, finding="hallucination")]
    assert rowview.is_binary(records) is False
    s = rowview.sides(records, binary=False, direction="higher")
    assert s["x"].wrong is False and s["y"].wrong is True


def test_a_row_with_an_unscored_trial_is_a_crash_with_its_first_error() -> None:
    records = [rec("x", 0, 1), rec("x", 1, None, "timeout", error="took 60 s"), rec("x", 2, None, "crash", error="later")]
    s = rowview.sides(records, binary=True, direction="higher")["x"]
    assert s.crashed and s.failed == 2 and s.error == "took 60 s" and s.status == "timeout" and s.score == 1.0
    ok = rowview.sides([rec("x", 0, 1)], binary=True, direction="higher")["x"]
    assert rowview.outcome(ok, s, "higher") == "crash" and rowview.outcome(s, ok, "higher") == "crash"
    assert rowview.outcome(ok, None, "higher") == "crash"
    assert rowview.first_error(records) == ("x", 1, "took 60 s")


side_st = st.builds(
    rowview.Side, score=st.one_of(st.none(), st.floats(0, 1)), scored=st.integers(0, 3), failed=st.integers(0, 3),
    wrong=st.one_of(st.none(), st.booleans()), output=st.none(), finding=st.none(), error=st.none(), status=st.just("ok"),
).filter(lambda s: (s.score is None) == (s.scored == 0))


@given(side_st, side_st, st.sampled_from(["higher", "lower"]))
def test_outcomes_are_antisymmetric_and_a_crash_is_never_a_tie(a: rowview.Side, b: rowview.Side, direction: str) -> None:
    forward, backward = rowview.outcome(a, b, direction), rowview.outcome(b, a, direction)
    if a.crashed or b.crashed:
        assert forward == backward == "crash"
    else:
        assert (forward, backward) in {("win", "loss"), ("loss", "win"), ("tie", "tie")}
    flips = {"fixed": "broken", "broken": "fixed", "wrong_both": "wrong_both", None: None}
    assert rowview.change(b, a) == flips[rowview.change(a, b)]


@given(st.integers(1, 10**9 - 1), st.sampled_from(["", "#"]))
def test_attempt_numbers_parse_with_or_without_a_hash(n: int, prefix: str) -> None:
    assert rowview.parse_subject(f"{prefix}{n}", ["v1", "v2"]) == rowview.Subject("attempt", str(n))


def test_subject_names() -> None:
    arms = ["v1", "best", "7"]
    assert rowview.parse_subject("baseline", arms) == rowview.Subject("baseline", "baseline")
    assert rowview.parse_subject("best", arms) == rowview.Subject("arm", "best")  # an arm named best is the arm
    assert rowview.parse_subject("best", ["v1"]) == rowview.Subject("best", "best")
    assert rowview.parse_subject("7", arms) == rowview.Subject("arm", "7") and rowview.parse_subject("#7", arms) == rowview.Subject("attempt", "7")
    for bad in ("", "0", "#0", "-x", "a b", "#", "x" * 64):
        assert rowview.parse_subject(bad, arms) is None, bad


@given(st.text())
def test_the_subject_parser_never_raises(spec: str) -> None:
    s = rowview.parse_subject(spec, ["v1"])
    assert s is None or s.kind in ("baseline", "best", "attempt", "arm")


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789 ", min_size=0, max_size=40)


@given(words, st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ", min_size=12, max_size=40).filter(lambda s: len(s.strip()) >= 12), words,
       st.sampled_from([str.upper, str.lower, lambda s: s.replace(" ", "\n  ")]))
def test_redaction_leaves_no_trace_of_a_dev_row(before: str, secret: str, after: str, shown_as: Any) -> None:
    text = f"Traceback: {before}{shown_as(secret)}{after}"
    out = rowview.redact(text, [secret, "short"])
    folded = " ".join(out.lower().split())
    assert " ".join(secret.lower().split()) not in folded
    assert rowview.REDACTED in out


def test_short_strings_are_not_redacted() -> None:
    assert rowview.redact("card lost: KeyError", ["card lost"]) == "card lost: KeyError"


@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text()),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=20))
def test_embedded_json_round_trips_and_cannot_close_its_script(data: Any) -> None:
    text = htmlpage.embed_json(data)
    assert "<" not in text
    assert json.loads(text) == data


def test_a_page_holds_the_data_once_and_escapes_the_title() -> None:
    template = "<title><!--GITERA_TITLE--></title><script type=application/json>/*GITERA_DATA*/</script>"
    page = htmlpage.fill(template, "a <b> & c", {"x": "</script><script>alert(1)</script>"})
    assert page.count("</script>") == 1 and "&lt;b&gt; &amp; c" in page


def test_two_inline_charts_share_no_id_and_each_reference_stays_inside_its_chart() -> None:
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
           '<defs><clipPath id="clip1"><rect/></clipPath><path id="DejaVuSans-41"/></defs>'
           '<g clip-path="url(#clip1)"><use xlink:href="#DejaVuSans-41"/></g></svg>')
    a, b = htmlpage.inline_svg(svg, "arm-bar"), htmlpage.inline_svg(svg, "forest-plot")
    assert a.startswith("<svg") and "<?xml" not in a and "DOCTYPE" not in a
    ids_a, ids_b = set(re.findall(r'id="([^"]+)"', a)), set(re.findall(r'id="([^"]+)"', b))
    assert ids_a and not ids_a & ids_b
    for page, ids in ((a, ids_a), (b, ids_b)):
        assert set(re.findall(r'(?:url\(#|href="#)([^")]+)', page)) <= ids


def test_the_row_table_stores_each_distinct_text_once() -> None:
    strings = htmlpage.Strings()
    rows = [{"id": "r1", "q": "hello there friend", "label": "A"}, {"id": "r2", "q": "bye now friend", "label": "A"}]
    subjects = [htmlpage.SubjectRows(k, k, "arm", [rec("r1", 0, 1, output="A"), rec("r2", 0, 0, output="B")]) for k in ("arm:v1", "arm:v2")]
    t = htmlpage.split_table(["r1", "r2", "r3"], rows, inputs=["q"], reference="label", slices=[], subjects=subjects, direction="higher", strings=strings)
    assert strings.values.count("A") == 1 and t["ref"][0] == t["ref"][1] == t["subjects"][0]["output"][0]
    assert t["subjects"][0]["wrong"] == [0, 1, None] and t["subjects"][0]["failed"] == [0, 0, 1]
    assert strings.values[t["subjects"][0]["error"][2]] == "no result for this row"
    assert t["subjects"][0]["finding"] is None  # no finding anywhere: the column is left out


def test_diagnose_with_continuous_scores_counts_as_wrong_only_the_rows_with_a_finding() -> None:
    from gitera.commands.diagnose import _table
    from gitera.domain.diagnosis import compare_rows

    rows = [{"id": "x", "group": "g1"}, {"id": "y", "group": "g1"}, {"id": "z", "group": "g2"}]
    a = [rec("x", 0, 0.4), rec("y", 0, 0.7), rec("z", 0, 0.5)]
    b = [rec("x", 0, 0.6), rec("y", 0, 0.2, finding="hallucination"), rec("z", 0, None, "timeout", error="took 600 s")]
    view = compare_rows(rows, ["x", "y", "z"], a, b, ["group"], "higher")
    assert view["totals"] == {"win": 1, "loss": 1, "tie": 0, "crash": 1}
    assert view["wrong"] == {"n": 1, "both": 0, "fixed": 0, "broken": 1, "ids": ["y"], "binary": False}
    assert view["crash"] == {"n": 1, "ids": ["z"], "error": "took 600 s"}
    text = "\n".join(_table("b vs a on 3 dev rows", {**view, "n": 3}, "dev", "b"))
    assert "a row counts as wrong only where the harness reported a finding" in text and "1 crashes" in text
