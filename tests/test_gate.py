"""The generalization gate's pure logic: hardcode scan, Thresholdout, replication, saturation, outcome."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.core import gate
from gitera.core.errors import ConfigError
from gitera.core.gate import HardcodeHit, Replication, Saturation, Thresholdout, thresholdout_query

ROOT = Path(__file__).resolve().parents[1]
TICKETS = ROOT / "examples" / "banking77" / "tickets.csv"

HAND_ROWS = [
    ("t90001", "I am still waiting on my card, it has been two weeks since I ordered it", "card_arrival"),
    ("t90002", "How do I top up my account using a bank transfer from abroad?", "transfer_into_account"),
    ("t90003", "My top up is still pending after three days, what is going on", "pending_top_up"),
    ("t90004", "I would like a refund for the headphones I returned to the shop", "request_refund"),
    ("t90005", "Why was I charged an extra fee when I paid with my card in Lisbon", "card_payment_fee_charged"),
    ("t90006", "Can I change my PIN at any cash machine in the country", "change_pin"),
    ("t90007", "The exchange rate applied to my transfer in yen looks wrong", "exchange_rate"),
    ("t90008", "Someone used my card at a petrol station in Leeds that I never visited", "card_payment_not_recognised"),
]


def load_rows() -> list[dict[str, object]]:
    """Real banking77 tickets when the example is present, else a hand-written handful."""
    if TICKETS.exists():
        with TICKETS.open(newline="", encoding="utf-8") as fh:
            return [{"id": r["row_id"], "text": r["text"], "intent": r["intent"]} for r in csv.DictReader(fh)]
    return [{"id": i, "text": t, "intent": y} for i, t, y in HAND_ROWS]


ROWS = load_rows()
WORDS = [re.findall(r"\w+", str(r["text"]).casefold()) for r in ROWS]


def gram_rows(n: int) -> Counter[tuple[str, ...]]:
    c: Counter[tuple[str, ...]] = Counter()
    for w in WORDS:
        c.update({tuple(w[i:i + n]) for i in range(len(w) - n + 1)})
    return c


DF = Counter(x for w in WORDS for x in set(w))
G4 = gram_rows(4)
G6 = gram_rows(6)


def scan(diff: str, rows: list[dict[str, object]] | None = None) -> list[HardcodeHit]:
    return gate.scan_diff(diff, ROWS if rows is None else rows, text_columns=["text"], label_column="intent")


def pick_row(pred: object) -> int:
    for i, w in enumerate(WORDS):
        if pred(i, w):  # type: ignore[operator]
            return i
    raise AssertionError("no suitable row")


def distinctive(i: int, n: int, counts: Counter[tuple[str, ...]]) -> tuple[str, ...] | None:
    label = set(re.findall(r"[^\W_]+", str(ROWS[i]["intent"]).casefold()))
    w = WORDS[i]
    for p in range(len(w) - n + 1):
        g = tuple(w[p:p + n])
        if counts[g] == 1 and not label & set(g) and any(DF[x] <= 3 for x in g):
            return g
    return None


def test_planted_hardcodes_are_caught_with_kind_file_and_line() -> None:
    i_text = pick_row(lambda i, w: 4 <= len(w) <= 12 and len(" ".join(w)) >= 20)
    i_id = 7
    i_frag = pick_row(lambda i, w: i > 20 and len(w) >= 10 and distinctive(i, 6, G6) is not None)
    i_pair = pick_row(lambda i, w: i > 40 and distinctive(i, 4, G4) is not None)
    frag = " ".join(distinctive(i_frag, 6, G6) or ())
    pair = " ".join(distinctive(i_pair, 4, G4) or ())
    diff = (
        "diff --git a/prompts/v2.txt b/prompts/v2.txt\n"
        "index 111..222 100644\n"
        "--- a/prompts/v2.txt\n"
        "+++ b/prompts/v2.txt\n"
        "@@ -10 +10 @@ Classify the ticket\n"
        "-Pick the closest intent.\n"
        "+Pick the closest intent.  Rules:\n"
        "@@ -20,0 +21,4 @@\n"
        "+refund -> request_refund\n"
        "+top+up -> pending_top_up\n"
        "+card+arrive -> card_arrival\n"
        f"+Example: {str(ROWS[i_text]['text']).upper()}\n"
        "diff --git a/src/rules.py b/src/rules.py\n"
        "--- a/src/rules.py\n"
        "+++ b/src/rules.py\n"
        "@@ -5,2 +5,3 @@\n"
        f"+SPECIAL = {{'{ROWS[i_id]['id']}': True}}\n"
        f"+    # customers often say \"{frag}\"\n"
        f"+    if \"{pair}\" in text: return \"{ROWS[i_pair]['intent']}\"\n"
        "-old line\n"
        "-another old line\n"
    )
    hits = scan(diff)
    got = {(h.kind, h.file, h.line_no) for h in hits}
    assert ("text", "prompts/v2.txt", 24) in got
    assert ("id", "src/rules.py", 5) in got
    assert ("fragment", "src/rules.py", 6) in got
    assert ("row_label", "src/rules.py", 7) in got
    by_line = {(h.file, h.line_no, h.kind): h for h in hits}
    assert ROWS[i_text]["id"] in by_line["prompts/v2.txt", 24, "text"].row_ids
    assert by_line["src/rules.py", 5, "id"].row_ids == (ROWS[i_id]["id"],)
    assert ROWS[i_frag]["id"] in by_line["src/rules.py", 6, "fragment"].row_ids
    assert by_line["src/rules.py", 7, "row_label"].row_ids == (ROWS[i_pair]["id"],)
    # general keyword rules (lines 10, 21-23) are not hardcodes
    assert not [h for h in hits if h.file == "prompts/v2.txt" and h.line_no in (10, 21, 22, 23)], hits
    for h in hits:
        assert len(h.excerpt) <= gate.EXCERPT_CHARS and len(h.row_ids) <= gate.MAX_ROW_IDS


@pytest.mark.parametrize("line", [
    "refund -> request_refund",
    "top+up -> pending_top_up",
    "card+arrive -> card_arrival",
    "if 'refund' in text: return 'request_refund'",
    "- Messages about a card that has not arrived yet -> card_arrival",
    "how long does it take for a transfer -> transfer_timing",  # a phrasing many rows share
    "Labels: request_refund, pending_top_up, card_arrival, exchange_rate, change_pin",
])
def test_general_rules_are_not_flagged(line: str) -> None:
    assert scan(f"+++ b/prompt.txt\n@@ -0,0 +1 @@\n+{line}\n") == []


def test_the_label_must_sit_outside_the_distinctive_words() -> None:
    rows: list[dict[str, object]] = [{"id": "r0001", "text": "please process my refund for the blue kettle", "intent": "refund"}]
    assert scan("+++ b/p\n@@ -0,0 +1 @@\n+my refund for the\n", rows) == []
    hits = scan("+++ b/p\n@@ -0,0 +1 @@\n+'for the blue kettle' => refund\n", rows)
    assert [(h.kind, h.row_ids) for h in hits] == [("row_label", ("r0001",))]


def test_short_and_numeric_ids_are_ignored_and_ids_need_whole_tokens() -> None:
    rows: list[dict[str, object]] = [{"id": "ab1", "text": "x", "intent": "a"}, {"id": "2024", "text": "y", "intent": "b"},
                                     {"id": "t00123", "text": "z", "intent": "c"}]
    diff = "+++ b/p\n@@ -0,0 +1,4 @@\n+ab1 and 2024\n+xt00123y\n+see T00123.\n+id=t00123-b\n"
    hits = scan(diff, rows)
    assert [(h.kind, h.line_no) for h in hits] == [("id", 3), ("id", 4)]


def test_diff_headers_deleted_lines_and_plus_plus_content() -> None:
    diff = (
        "diff --git a/p.txt b/p.txt\n--- a/p.txt\n+++ b/p.txt\n"
        "@@ -1,2 +1,3 @@\n ctx\n-gone t00011\n++++ t00011 starts with pluses\n+x\n"
        "\\ No newline at end of file\n"
        "diff --git a/old.txt b/old.txt\ndeleted file mode 100644\n--- a/old.txt\n+++ /dev/null\n"
        "@@ -1 +0,0 @@\n-t00011\n"
    )
    lines = gate.added_lines(diff)
    assert [(a.file, a.line_no, a.text) for a in lines] == [("p.txt", 2, "+++ t00011 starts with pluses"), ("p.txt", 3, "x")]
    rows: list[dict[str, object]] = [{"id": "t00011", "text": "whatever", "intent": "x"}]
    assert [(h.kind, h.file, h.line_no) for h in scan(diff, rows)] == [("id", "p.txt", 2)]


def test_excerpt_is_the_added_line_trimmed() -> None:
    rows: list[dict[str, object]] = [{"id": "t00042", "text": "a", "intent": "x"}]
    long = "t00042 " + "z" * 300
    (hit,) = scan(f"+++ b/p\n@@ -0,0 +1 @@\n+   {long}\n", rows)
    assert hit.excerpt.startswith("t00042 zz") and len(hit.excerpt) == gate.EXCERPT_CHARS
    assert hit.to_dict()["line"] == 1


def test_scan_is_fast_enough_for_a_few_hundred_lines() -> None:
    import time

    rng = np.random.default_rng(0)
    lines = []
    for _ in range(400):
        w = WORDS[int(rng.integers(len(WORDS)))]
        lines.append("+" + " ".join(w[: int(rng.integers(3, 16))]) + " -> " + str(ROWS[int(rng.integers(len(ROWS)))]["intent"]))
    diff = "+++ b/p\n@@ -0,0 +1,400 @@\n" + "\n".join(lines) + "\n"
    t = time.perf_counter()
    scan(diff)
    assert time.perf_counter() - t < 5.0  # about 0.05 s on one core; generous for loaded CI


# ---- hypothesis: the scanner never crashes and only reports added lines inside their hunks

DIFFISH = st.lists(st.one_of(
    st.text(max_size=40),
    st.sampled_from(["+++ b/f.txt", "--- a/f.txt", "diff --git a/f b/f", "@@ -1 +1 @@", "@@ -0,0 +3,2 @@",
                     "@@ -5,2 +7 @@ x", "+t00011", "+refund -> request_refund", "-x", " ctx", "\\ No newline",
                     "@@ -1,0 +99999999999999999999,1 @@", "+++ \"b/q u\\tote\"", "+++ b/x\t2020-01-01"]),
), max_size=30).map("\n".join)


@settings(max_examples=150, deadline=None)
@given(DIFFISH)
def test_scan_never_crashes_on_arbitrary_text(diff: str) -> None:
    hits = scan(diff, ROWS[:50])
    for h in hits:
        assert h.line_no >= 0 and h.kind in ("id", "text", "fragment", "row_label")


SOURCE_LINES = [str(r["text"]) for r in ROWS[:30]] + [str(r["id"]) for r in ROWS[:30]] + ["refund -> request_refund", "x = 1", ""]


@st.composite
def well_formed_diff(draw: st.DrawFn) -> tuple[str, dict[str, list[tuple[int, int]]]]:
    out: list[str] = []
    ranges: dict[str, list[tuple[int, int]]] = {}
    for f in draw(st.lists(st.sampled_from(["a.txt", "src/b.py", "p r.md"]), min_size=1, max_size=3, unique=True)):
        out += [f"diff --git a/{f} b/{f}", f"--- a/{f}", f"+++ b/{f}"]
        start = 1
        for _ in range(draw(st.integers(1, 3))):
            start += draw(st.integers(0, 50))
            old = draw(st.integers(0, 3))
            new = draw(st.integers(0 if old else 1, 4))
            out.append(f"@@ -{start},{old} +{start},{new} @@")
            out += ["-" + draw(st.sampled_from(SOURCE_LINES)) for _ in range(old)]
            out += ["+" + draw(st.sampled_from(SOURCE_LINES)) for _ in range(new)]
            if new:
                ranges.setdefault(f, []).append((start, start + new - 1))
            start += new
    return "\n".join(out) + "\n", ranges


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed_diff())
def test_line_numbers_are_inside_the_hunks(case: tuple[str, dict[str, list[tuple[int, int]]]]) -> None:
    diff, ranges = case
    added = gate.added_lines(diff)
    assert len(added) == sum(b - a + 1 for rs in ranges.values() for a, b in rs)
    located: list[tuple[str, int]] = [(x.file, x.line_no) for x in added]
    located += [(h.file, h.line_no) for h in scan(diff, ROWS[:30])]
    for file, line_no in located:
        assert any(a <= line_no <= b for a, b in ranges[file]), (file, line_no, ranges)


# ---- Thresholdout

def test_overfit_attacker_gets_answers_close_to_the_holdout_truth() -> None:
    errors, used = [], 0
    for seed in range(300):
        state = Thresholdout.create(seed=seed)
        truth = 0.70 + 0.01 * (seed % 5)
        answer, state = thresholdout_query(state, train_value=0.95, holdout_value=truth)
        assert answer.value is not None
        used += answer.used_holdout
        errors.append(abs(answer.value - truth))
    assert used >= 297  # |0.95 - 0.7| = 0.25 dwarfs T + noise
    assert float(np.mean(errors)) < 0.02 and np.mean(np.array(errors) < 0.05) > 0.95  # Lap(0.01) noise


def test_honest_queries_mostly_answer_train_and_keep_the_budget() -> None:
    state = Thresholdout.create(seed=11, budget=10_000)
    used = 0
    for k in range(400):
        answer, state = thresholdout_query(state, 0.80, 0.80)
        used += answer.used_holdout
        if not answer.used_holdout:
            assert answer.value == 0.80
    assert used / 400 < 0.30  # P(gamma + eta < -T) ~ 0.22 with the defaults (docs/gate.md)
    assert state.spent == used and state.queries == 400
    quiet = Thresholdout.create(seed=5, sigma=0.001, budget=3)
    for _ in range(50):
        answer, quiet = thresholdout_query(quiet, 0.80, 0.79)
        assert answer.value == 0.80 and not answer.used_holdout
    assert quiet.budget_left == 3


def test_budget_decrements_then_refuses() -> None:
    state = Thresholdout.create(seed=1, sigma=0.0, budget=3)
    lefts = []
    for _ in range(3):
        answer, state = thresholdout_query(state, 0.9, 0.6)
        assert answer.used_holdout and answer.value == pytest.approx(0.6)
        lefts.append(answer.budget_left)
    assert lefts == [2, 1, 0] and state.exhausted
    answer, after = thresholdout_query(state, 0.9, 0.6)
    assert answer.exhausted and answer.value is None and not answer.used_holdout and answer.budget_left == 0
    assert after.queries == 4 and after.spent == 3
    assert answer.to_dict() == {"query": 4, "value": None, "holdout_used": False, "exhausted": True,
                                "budget_left": 0, "gamma_from": 3}


def test_same_seed_and_queries_give_the_same_answers() -> None:
    pairs = [(0.8, 0.8), (0.9, 0.7), (0.85, 0.83), (0.95, 0.6), (0.7, 0.72)] * 3
    a, sa = gate.thresholdout_replay(Thresholdout.create(seed=42), pairs)
    b, sb = gate.thresholdout_replay(Thresholdout.create(seed=42), pairs)
    assert a == b and sa == sb
    # resuming from the JSON state mid-way gives the same continuation (what the caller does)
    first, mid = gate.thresholdout_replay(Thresholdout.create(seed=42), pairs[:7])
    rest, end = gate.thresholdout_replay(Thresholdout.from_dict(json.loads(json.dumps(mid.to_dict()))), pairs[7:])
    assert first + rest == a and end == sa
    c, _ = gate.thresholdout_replay(Thresholdout.create(seed=43), pairs)
    assert [x.value for x in c] != [x.value for x in a]


STATES = st.builds(
    lambda t, s, b, seed, q, spent_frac, g: Thresholdout(t, s, b, seed, q, min(b, int(spent_frac * b)), min(g, q)),
    st.floats(0, 1, allow_nan=False), st.floats(0, 0.5, allow_nan=False), st.integers(0, 1000),
    st.integers(0, 2**63), st.integers(0, 10**6), st.floats(0, 1), st.integers(0, 10**6))


@settings(max_examples=100, deadline=None)
@given(STATES)
def test_thresholdout_json_round_trip(state: Thresholdout) -> None:
    assert Thresholdout.from_dict(json.loads(json.dumps(state.to_dict()))) == state


@pytest.mark.parametrize("bad", [
    {"threshold": 0.04, "sigma": 0.01, "budget": 10},  # no seed
    {"threshold": "x", "sigma": 0.01, "budget": 10, "seed": 1},
    {"threshold": 0.04, "sigma": -1, "budget": 10, "seed": 1},
    {"threshold": 0.04, "sigma": 0.01, "budget": 2, "seed": 1, "spent": 3},
    {"threshold": 0.04, "sigma": 0.01, "budget": 2.5, "seed": 1},
])
def test_malformed_state_is_a_config_error(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Thresholdout.from_dict(bad)


# ---- replication

@pytest.mark.parametrize("dev_gain, gate_gain, se, passed, informative", [
    (0.10, 0.07, 0.02, True, True),    # a real gain, shrunk a little on fresh rows
    (0.10, 0.02, 0.01, False, True),   # the gain lived on the climbing rows only
    (0.10, -0.01, 0.02, False, True),  # gate loses
    (0.10, 0.015, 0.02, True, True),   # required 0.05 - 0.04 = 0.01: noisy but consistent
    (0.04, 0.00, 0.03, True, False),   # gate too small to tell: sign only
    (0.04, -0.001, 0.03, False, False),
    (0.00, -0.03, 0.02, True, True),   # nothing claimed, loss within 2 SE
    (0.00, -0.05, 0.01, False, True),  # nothing claimed, but a real loss
])
def test_replication_rule(dev_gain: float, gate_gain: float, se: float, passed: bool, informative: bool) -> None:
    r = gate.replication(dev_gain, 0.60 + gate_gain, 0.60, noise_floor=0.005, se_gate=se)
    assert (r.passed, r.informative) == (passed, informative), r
    assert r.gate_gain == pytest.approx(gate_gain) and r.reason
    assert json.dumps(r.to_dict())


def test_replication_sampling_noise_vs_climbing_only_gain() -> None:
    rng = np.random.default_rng(7)
    se = 0.02
    real = [gate.replication(0.10, 0.6 + 0.08 + rng.normal(0, se), 0.6, 0.005, se).passed for _ in range(2000)]
    fake = [gate.replication(0.10, 0.6 + rng.normal(0, se), 0.6, 0.005, se).passed for _ in range(2000)]
    assert np.mean(real) > 0.97 and np.mean(fake) < 0.35


# ---- saturation

def hist(*entries: tuple[str, float | None]) -> tuple[list[float | None], list[str]]:
    return [s for _, s in entries], [k for k, _ in entries]


def test_saturation_plateau_and_stale_best() -> None:
    base = ("baseline", 0.70)
    scores, statuses = hist(base, ("keep", 0.72), ("discard", 0.69), ("keep", 0.725), ("discard", None),
                            ("crash", None), ("keep", 0.728), ("discard", 0.7))
    s = gate.saturation(scores, statuses, noise_floor=0.01)
    assert s.saturated and "plateau" in s.reason and "stale" not in s.reason and s.best == pytest.approx(0.728)
    scores, statuses = hist(base, ("keep", 0.75), *[("discard", 0.74)] * 6)
    s = gate.saturation(scores, statuses, noise_floor=0.01)
    assert s.saturated and "stale" in s.reason and "plateau" in s.reason
    scores, statuses = hist(base, ("discard", 0.6), ("discard", 0.6), ("keep", 0.8), ("discard", 0.6), ("discard", 0.6),
                            ("discard", 0.6))
    assert not gate.saturation(scores, statuses, noise_floor=0.01).saturated
    scores, statuses = hist(base, ("discard", 0.6), ("discard", 0.6))
    s = gate.saturation(scores, statuses, noise_floor=0.01)
    assert not s.saturated and "only 2" in s.reason and json.dumps(s.to_dict())


def test_saturation_lower_is_better() -> None:
    scores, statuses = hist(("baseline", 100.0), ("keep", 80.0), *[("discard", 90.0)] * 5)
    assert not gate.saturation(scores, statuses, 1.0, higher_is_better=False).saturated
    scores, statuses = hist(("baseline", 100.0), *[("keep", 99.5 - i * 0.1) for i in range(6)])
    s = gate.saturation(scores, statuses, 1.0, higher_is_better=False)
    assert s.saturated and "plateau" in s.reason and "stale" not in s.reason


# ---- outcome

HIT = HardcodeHit("p.txt", 3, "id", ("t00001",), "t00001 -> x")
OK_REP = Replication(True, 0.05, 0.01, 0.06, True, "fine")
BAD_REP = Replication(False, 0.0, 0.03, 0.06, True, "gone")
SAT = Saturation(True, "plateau")
FRESH = Saturation(False, "still climbing")


@pytest.mark.parametrize("hits, rep, sat, exhausted, expected", [
    ([], OK_REP, FRESH, False, "pass"),
    ([], None, FRESH, False, "pass"),  # no gate rows: passes, and says replication was not measured
    ([HIT], OK_REP, FRESH, False, "fail"),
    ([HIT], OK_REP, SAT, True, "fail"),
    ([], BAD_REP, FRESH, False, "fail"),
    ([], BAD_REP, SAT, False, "fail"),
    ([], OK_REP, SAT, False, "saturated"),
    ([], OK_REP, FRESH, True, "saturated"),
    ([], None, FRESH, True, "saturated"),
])
def test_gate_outcome_table(hits: list[HardcodeHit], rep: Replication | None, sat: Saturation, exhausted: bool,
                            expected: str) -> None:
    out = gate.gate_outcome(hits, rep, sat, exhausted)
    assert out.outcome == expected and out.reasons
    d = json.loads(json.dumps(out.to_dict()))
    assert d["outcome"] == expected
    if hits:
        assert "remove it or the arm is killed" in out.reasons[0] and "p.txt:3" in out.reasons[0]
    if rep is None and expected == "pass":
        assert "NOT measured" in out.reasons[0]
