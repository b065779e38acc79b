"""Reading rows: CSV/TSV/JSONL round trips, ids, and every malformed input gives a ConfigError."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.adapters.datasource import derive_id, load_rows, write_jsonl
from gitera.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TICKETS = ROOT / "examples" / "banking77" / "tickets.csv"

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

text_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
column_names = st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd"), max_codepoint=0x2FF),
                       min_size=1, max_size=8)


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)  # the writer leaves a lone \r unquoted
    out.writerow(header)
    out.writerows(rows)
    return buf.getvalue()


def test_bundled_tickets_load() -> None:
    table = load_rows(TICKETS, "row_id", ["text", "intent", "intent_group"])
    assert len(table) == 2000
    assert table.columns == ("row_id", "text", "intent", "intent_group")
    assert table.ids[0] == "t00001" and table.lines[0] == 2
    assert len({r["intent"] for r in table.rows}) == 77
    assert len({r["intent_group"] for r in table.rows}) == 7
    packaged = ROOT / "gitera" / "example_data" / "tickets.csv"
    assert packaged.read_bytes() == TICKETS.read_bytes()


@FAST
@given(data=st.data())
def test_csv_round_trip(tmp_path: Path, data: st.DataObject) -> None:
    extra = data.draw(st.lists(column_names, min_size=1, max_size=4, unique=True).filter(lambda c: "id" not in c))
    n = data.draw(st.integers(1, 8))
    ids = [f"x{i}" for i in range(n)]
    rows = [[ids[i], *[data.draw(text_values) for _ in extra]] for i in range(n)]
    path = write(tmp_path, "rows.csv", csv_text(["id", *extra], rows))
    table = load_rows(path, "id", [])
    assert table.ids == tuple(ids)
    assert [list(r.values()) for r in table.rows] == rows


@FAST
@given(rows=st.lists(st.dictionaries(column_names, st.one_of(
    text_values, st.integers(-10**12, 10**12), st.booleans(), st.none(),
    st.floats(allow_nan=False, allow_infinity=False)), min_size=1, max_size=4), min_size=1, max_size=8))
def test_jsonl_round_trip_and_derived_ids(tmp_path: Path, rows: list[dict[str, object]]) -> None:
    unique = list({derive_id(r): r for r in rows}.values())
    path = tmp_path / "rows.jsonl"
    assert write_jsonl(unique, path) == len(unique)
    table = load_rows(path, None, [])
    assert list(table.rows) == unique
    assert table.ids == tuple(derive_id(r) for r in unique)
    assert all(i.startswith("r") and len(i) == 13 for i in table.ids)


@FAST
@given(blob=st.binary(max_size=200), suffix=st.sampled_from(["csv", "tsv", "jsonl"]),
       id_column=st.sampled_from([None, "id", "a"]))
def test_arbitrary_bytes_give_config_error_or_rows(tmp_path: Path, blob: bytes, suffix: str,
                                                   id_column: str | None) -> None:
    path = write(tmp_path, f"x.{suffix}", blob)
    try:
        table = load_rows(path, id_column, ["a"])
    except ConfigError as exc:
        assert str(path) in str(exc)
    else:
        assert len(table) >= 1 and len(set(table.ids)) == len(table)


@FAST
@given(text=st.text(st.sampled_from('ab,"\n\r {}[]:1\t\\x'), max_size=80),
       suffix=st.sampled_from(["csv", "jsonl"]))
def test_structured_garbage_gives_config_error_or_rows(tmp_path: Path, text: str, suffix: str) -> None:
    path = write(tmp_path, f"x.{suffix}", text)
    try:
        load_rows(path, None, [])
    except ConfigError as exc:
        assert "line" in str(exc) or "empty" in str(exc) or "no data rows" in str(exc)


def test_same_row_same_derived_id_in_csv_and_jsonl(tmp_path: Path) -> None:
    a = load_rows(write(tmp_path, "a.csv", "text,label\nhello,x\nbye,y\n"), None, [])
    b = load_rows(write(tmp_path, "b.jsonl", '{"label":"y","text":"bye"}\n{"text":"hello","label":"x"}\n'), None, [])
    assert set(a.ids) == set(b.ids)


def test_bom_and_crlf_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbfid,text\r\n1,caf\xc3\xa9\r\n2,\"two\r\nlines\"\r\n")
    table = load_rows(path, "id", ["text"])
    assert table.columns == ("id", "text")
    assert table.rows[0]["text"] == "café"
    assert table.rows[1]["text"] == "two\r\nlines"
    assert table.lines == (2, 3)


def test_tsv(tmp_path: Path) -> None:
    table = load_rows(write(tmp_path, "t.tsv", "id\ttext\n1\ta, b\n"), "id", ["text"])
    assert table.rows[0]["text"] == "a, b"


@pytest.mark.parametrize(("name", "data", "needle"), [
    ("latin1.csv", b"id,text\n1,caf\xe9\n", "line 2, byte offset 13 (0xe9) is not valid UTF-8"),
    ("utf16.csv", "id,text\n1,x\n".encode("utf-16"), "byte offset 0 (0xff) is not valid UTF-8"),
    ("latin1.jsonl", b'{"id": "1", "text": "a"}\n{"id": "\xe9"}\n', "line 2, byte offset 33 (0xe9)"),
    ("empty.csv", b"", "the file is empty"),
    ("blank.csv", b"\n\n", "the file is empty"),
    ("header.csv", b"id,text\n", "no data rows"),
    ("empty.jsonl", b"\n  \n", "no data rows"),
    ("dup.csv", b"id,text\n1,a\n2,b\n1,c\n", "line 4 repeats id '1' of line 2"),
    ("dup.jsonl", b'{"id": 1, "text": "a"}\n{"id": "1", "text": "b"}\n', "line 2 repeats id '1' of line 1"),
    ("nocol.csv", b"id,body\n1,a\n", "the header has no column 'text'"),
    ("nocol.jsonl", b'{"id": 1, "body": "a"}\n', "line 1 has no field 'text'"),
    ("noval.csv", b"id,text\n1,a\n2,  \n", "line 3 has no value in column 'text'"),
    ("noval.jsonl", b'{"id": 1, "text": "a"}\n{"id": 2, "text": null}\n', "line 2 has no value in column 'text'"),
    ("noid.csv", b"id,text\n,a\n", "line 2 has no value in column 'id'"),
    ("badjson.jsonl", b'{"id": 1, "text": "a"}\n{"id": 2, "text": \n', "line 2, character 19 is not valid JSON (Expecting value)"),
    ("nan.jsonl", b'{"id": 1, "text": "a", "s": NaN}\n', "line 1 is not valid JSON"),
    ("deep.jsonl", b'{"id": 1, "text": ' + b"[" * 100000 + b"\n", "line 1 is not valid JSON"),
    ("array.jsonl", b'[1, 2]\n', "line 1 is a JSON list, not an object"),
    ("floatid.jsonl", b'{"id": 1.5, "text": "a"}\n', "an id must be a string or a whole number"),
    ("width.csv", b"id,text\n1,a,b\n", "line 2 has 3 fields but the header has 2"),
    ("quote.csv", b'id,text\n1,"a"b\n', "line 2 is not valid CSV"),
    ("dupheader.csv", b"id,text,text\n1,a,b\n", "column 'text' appears twice"),
    ("noname.csv", b"id,text,\n1,a,\n", "column 3 of the header has no name"),
    ("rows.txt", b"id,text\n1,a\n", "unknown data format '.txt'"),
    ("missing.csv", None, "no such data file"),
])
def test_refusals_name_the_place(tmp_path: Path, name: str, data: bytes | None, needle: str) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_rows(path, "id", ["text"])
    assert needle in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2


def test_identical_rows_without_id_column_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\nhi,a\nyo,b\nhi,a\n")
    with pytest.raises(ConfigError, match="line 4 repeats id .* of line 2 .*identical"):
        load_rows(path, None, ["text"])


def test_jsonl_keeps_types_and_columns_in_first_seen_order(tmp_path: Path) -> None:
    path = write(tmp_path, "r.jsonl", '{"id": 7, "score": 0.5}\n\n{"id": "b", "tags": ["x"], "ok": true}\n')
    table = load_rows(path, "id", [])
    assert table.ids == ("7", "b")
    assert table.lines == (1, 3)
    assert table.columns == ("id", "score", "tags", "ok")
    assert table.rows[1]["tags"] == ["x"] and table.rows[1]["ok"] is True
    assert table.line_of("b") == 3


def test_write_jsonl_is_atomic_and_compact(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl([{"id": "1", "text": "é"}], path)
    assert path.read_text(encoding="utf-8") == '{"id":"1","text":"é"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    assert json.loads(path.read_text(encoding="utf-8")) == {"id": "1", "text": "é"}
