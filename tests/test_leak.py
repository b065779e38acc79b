"""The leak guard finds sealed rows in content (exact, re-cased, re-spaced, embedded) and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitera.adapters.datasource import Table, load_rows
from gitera.core.leak import LeakIndex, fingerprints, normalize, row_texts, scan, text_columns
from gitera.core.split import split_rows

ROOT = Path(__file__).resolve().parents[1]
SALT = bytes(range(16))


@pytest.fixture(scope="module")
def banking() -> tuple[Table, list[str], list[str]]:
    table = load_rows(ROOT / "examples" / "banking77" / "tickets.csv", "row_id", ["text", "intent"])
    result = split_rows(table.rows, ids=table.ids, stratify=["intent_group", "intent"], seed=7)
    test = [str(r["text"]) for r, lab in zip(table.rows, result.labels) if lab == "test"]
    train = [str(r["text"]) for r, lab in zip(table.rows, result.labels) if lab == "train"]
    return table, test, train


def test_normalize() -> None:
    assert normalize("  How do I   LOCATE my card?\n") == "how do i locate my card"
    assert normalize('"¿Dónde está mi TARJETA?"') == "dónde está mi tarjeta"
    assert normalize("Straße\tand\r\nＦｕｌｌwidth!!") == "strasse and fullwidth"
    assert normalize("...") == ""


def test_fingerprints_are_salted_and_normalized() -> None:
    a, b, c = fingerprints(["How do I locate my card?", "how do i  locate my CARD"], SALT) + \
        fingerprints(["How do I locate my card?"], b"another salt")
    assert a == b and a != c
    assert len(a) == 16 and int(a, 16) >= 0


def index_of(texts: list[str]) -> LeakIndex:
    return LeakIndex.build(texts, SALT)


def test_finds_exact_whole_lines_and_variants() -> None:
    row = "I still have not received my new card, I ordered over a week ago."
    idx = index_of([row])
    (fp,) = idx.fingerprints
    content = "\n".join([
        "unrelated line",
        row,                                             # 2: exact
        "  i STILL have not received my new card,  i ordered over a week ago  ",  # 3: case/space
        'cases.append({"text": "%s", "label": 1})' % row,  # 4: inside code
        "t1," + json.dumps(row) + ",card_arrival",          # 5: inside a CSV record
        "I still have not received my new card,",        # 6-7: wrapped over two lines
        "I ordered over a week ago.",
        "I still have not received my new card",         # 8: a prefix only
    ])
    hits = scan(content, idx)
    assert [h.line_no for h in hits] == [2, 3, 4, 5, 6]
    assert {h.fingerprint for h in hits} == {fp}
    assert row not in repr(hits) and normalize(row) not in repr(hits)


def test_short_rows_only_when_delimited() -> None:
    idx = index_of(["Can I top up?", "card lost"])  # 12 chars normalized; 9 chars: skipped
    assert idx.skipped == 1 and len(idx) == 1
    content = "\n".join([
        "How much money can I top up?",       # running prose: no
        "can i top up",                       # whole line: yes
        'q = "Can I top up?"',                # string literal: yes
        "t9,Can I top up?,top_up",            # CSV field: yes
        "card lost",                          # too short to index: no
        "scan i top up",                      # not at a word boundary... different text: no
        "pecan i top up",                     # starts inside a word: no
    ])
    assert [h.line_no for h in scan(content, idx)] == [2, 3, 4]


def test_long_rows_found_inside_longer_text() -> None:
    idx = index_of(["how can I get a virtual card"])
    hits = scan("I'd rather not use my physical card, how can I get a virtual card?", idx)
    assert [h.line_no for h in hits] == [1]
    assert scan("how can I get a virtual cardholder", idx) == []  # ends inside a word


def test_banking_test_rows_found_train_rows_not(banking: tuple[Table, list[str], list[str]]) -> None:
    _, test, train = banking
    idx = index_of(test)
    assert len(idx) + idx.skipped == len(test)
    csv_like = "\n".join(f"t{i},{json.dumps(t)},label" for i, t in enumerate(test))
    found = {h.fingerprint for h in scan(csv_like, idx)}
    assert found == set(idx.fingerprints)
    shouted = "\n".join("    " + " ".join(t.upper().split()) for t in test)
    assert {h.fingerprint for h in scan(shouted, idx)} == set(idx.fingerprints)
    # Train rows are other queries: no whole-line hits, and at most a few long test rows quoted inside them.
    train_hits = scan("\n".join(" ".join(t.split()) for t in train), idx)
    flat = [" ".join(t.split()) for t in train]
    for h in train_hits:
        assert normalize(flat[h.line_no - 1]) not in {normalize(t) for t in test}
    assert len(train_hits) <= len(train) // 50


def test_index_round_trip_and_row_texts() -> None:
    rows = [{"id": "t1", "text": "Where is my new card please", "n": 3}, {"id": "t2", "text": " "}]
    texts = row_texts(rows, exclude=["id"])
    assert texts == ["Where is my new card please"]
    labelled = [{"id": "r1", "text": "my card never arrived", "intent": "card_arrival", "note": ""},
                {"id": "r2", "text": "pin blocked again", "intent": "pin_blocked", "note": "call back later"}]
    assert text_columns(labelled, exclude=["id"]) == ["text", "note"]
    assert row_texts(labelled) == ["my card never arrived", "pin blocked again", "call back later"]
    assert row_texts(labelled, ["intent"]) == ["card_arrival", "pin_blocked"]
    idx = index_of(texts)
    again = LeakIndex.from_dict(json.loads(json.dumps(idx.to_dict())))
    assert again == idx
    assert "card" not in json.dumps(idx.to_dict())
    with pytest.raises(ValueError, match="malformed leak index"):
        LeakIndex.from_dict({"salt": "zz"})
    assert scan("anything at all", LeakIndex.build([], SALT)) == []


words = st.sampled_from(["card", "my", "top", "up", "transfer", "the", "pending", "why", "is", "still", "x1"])
sentences = st.lists(words, min_size=3, max_size=9).map(" ".join)


@settings(max_examples=80, deadline=None)
@given(row=sentences, before=st.text(max_size=40), after=st.text(max_size=40),
       sep=st.sampled_from(['"', "\n", ",", "\t", "'"]))
def test_embedded_row_always_found(row: str, before: str, after: str, sep: str) -> None:
    idx = index_of([row])
    if not len(idx):
        return  # under the minimum length
    content = before + "\n" + sep + row.upper() + sep + "\n" + after
    assert {h.fingerprint for h in scan(content, idx)} == set(idx.fingerprints)


@settings(max_examples=80, deadline=None)
@given(content=st.text(max_size=300), rows=st.lists(st.text(min_size=12, max_size=40), max_size=5))
def test_scan_never_fails(content: str, rows: list[str]) -> None:
    hits = scan(content, index_of(rows))
    n_lines = content.count("\n") + 1
    assert all(1 <= h.line_no <= n_lines for h in hits)


def test_escaped_forms_found() -> None:
    row = 'It\'s listed in the app as "pending" and costs €1,\nwhy?'
    idx = index_of([row])
    as_csv = 't1,"It\'s listed in the app as ""pending"" and costs €1,\nwhy?",x'
    as_json = "{\"text\": " + json.dumps(row) + "}"
    as_py = "x = 'It\\'s listed in the app as \"pending\" and costs \\u20ac1,\\nwhy?'"
    for content in (as_csv, as_json, as_py):
        assert len(scan("first line\n" + content, idx)) == 1, content
        assert scan("first line\n" + content, idx)[0].line_no == 2
