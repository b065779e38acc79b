"""The pure parts behind issue 12's data points: what the leak scan decodes, the seal header's
pins, the pins digest and the hardcode scan's new kinds (property tests for every parser)."""

from __future__ import annotations

import base64
import codecs
import gzip
import hashlib
import html
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.adapters import seal
from gitera.core import gate
from gitera.core.leak import (
    DERIVED_LIMIT,
    NORMALIZE_V1,
    LeakIndex,
    _fingerprint,
    decode_text,
    normalize,
    scan,
    scan_blob,
    scan_bytes,
)
from gitera.core.split import pins_digest

WORDS = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9), min_size=5, max_size=12)
SALT = b"a fixed salt for the tests"


def row_of(words: list[str]) -> str:
    return "Where is " + " ".join(words) + "?"


def lines(data: bytes, index: LeakIndex) -> list[int]:
    return [h.line_no for h in scan_bytes(data, index)]


# --- the leak scan -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(WORDS, st.integers(0, 3), st.sampled_from(["std", "url"]))
def test_every_encoding_of_a_row_is_found(words: list[str], prefix: int, alphabet: str) -> None:
    row = row_of(words)
    index = LeakIndex.build([row], SALT)
    b64 = (base64.b64encode if alphabet == "std" else base64.urlsafe_b64encode)(row.encode()).decode().rstrip("=")
    salted = "\u200b".join(words[0])
    cases = {
        "plain": f"x\n{row}\n".encode(),
        "zero-width": f"x\n{row.replace(words[0], salted, 1)}\n".encode(),
        "full-width": f"x\n{row.upper().translate({c: c + 0xFEE0 for c in range(0x41, 0x5B)})}\n".encode(),
        "html": f"x\n{html.escape(row)}\n".encode(),
        "utf-16": f"x\n{row}\n".encode("utf-16"),
        "utf-16-be, no BOM": f"x\n{row}\n".encode("utf-16-be"),
        "utf-32": f"x\n{row}\n".encode("utf-32"),
        "base64, misaligned": f"x\nkey = '{'Q' * prefix}{b64}'\n".encode(),
        "gzip": gzip.compress(f"x\n{row}\n".encode()),
        "zlib": zlib.compress(f"x\n{row}\n".encode()),
        "base64 of gzip": b"x\n" + base64.b64encode(gzip.compress(row.encode())) + b"\n",
    }
    for name, data in cases.items():
        assert lines(data, index) == [2], name


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    index = LeakIndex.build(["where is my new card that I ordered"], SALT)
    result = scan_blob(data, index)
    assert isinstance(result.complete, bool)
    scan_bytes(gzip.compress(data), index)
    scan_bytes(base64.b64encode(data) * 3, index)


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=2000))
def test_arbitrary_text_never_raises_and_finds_nothing_in_unrelated_text(text: str) -> None:
    index = LeakIndex.build(["zqxj wvut plokm nbvcx asdfg"], SALT)
    assert scan(text, index) == [] or "zqxj" in normalize(text)


def test_curly_quotes_in_the_row_or_the_copy_meet_in_the_middle() -> None:
    row = "I can\u2019t see the \u201cpending\u201d payment anywhere"
    index = LeakIndex.build([row], SALT)
    assert lines(row.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"').encode(), index) == [1]
    assert lines(row.encode(), index) == [1]


def test_an_index_made_before_the_new_normalization_still_finds_exact_copies() -> None:
    row = "I have lost the card I ordered, it\u2019s gone"
    old = normalize(row, NORMALIZE_V1)
    assert old != normalize(row)
    base = LeakIndex.build([row], SALT).to_dict()
    doc = {**base, "normalize": NORMALIZE_V1, "fingerprints": [_fingerprint(SALT, old)]}
    legacy = LeakIndex.from_dict(doc)  # the tags are over the first 12 characters: the same in both forms here
    assert legacy.normalization == NORMALIZE_V1
    assert lines(row.encode(), legacy) == [1]
    with pytest.raises(ValueError, match="unknown normalization"):
        LeakIndex.from_dict({**doc, "normalize": "something else"})


def test_payloads_past_the_limit_are_cut_and_said_so() -> None:
    row = "where is the card I ordered last month"
    index = LeakIndex.build([row], SALT)
    bomb = gzip.compress(b"a" * (DERIVED_LIMIT + 1) + row.encode())
    result = scan_blob(bomb, index)
    assert result.complete is False and result.hits == []  # the row sits past the limit: a documented miss
    small = scan_blob(gzip.compress(row.encode()), index)
    assert small.complete is True and [h.line_no for h in small.hits] == [1]


@pytest.mark.parametrize(("data", "text"), [
    (codecs.BOM_UTF8 + "héllo".encode(), "héllo"),
    ("héllo wörld".encode("utf-16"), "héllo wörld"),
    ("héllo wörld".encode("utf-32"), "héllo wörld"),
    ("plain ascii text here".encode("utf-32-le"), "plain ascii text here"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None),
])
def test_decode_text(data: bytes, text: str | None) -> None:
    assert decode_text(data) == text


# --- the seal header's pins ----------------------------------------------------------------

HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@settings(max_examples=25, deadline=None)
@given(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True), HEX64, st.one_of(st.none(), HEX64),
       st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,3}\.seal", fullmatch=True))
def test_the_header_round_trips_its_binding(tmp_path_factory: pytest.TempPathFactory, tag: str, frame: str,
                                            pins: str | None, path: str) -> None:
    work = tmp_path_factory.mktemp("seal")
    plain = work / "p.jsonl"
    plain.write_bytes(b'{"id": 1}\n')
    binding = seal.Binding(tag, frame, path, pins)
    key = seal.DataKey.generate()
    seal.seal_file(plain, work / "s.seal", key, binding)
    header = seal.read_header(work / "s.seal")
    assert header.binding == binding and header.version == (1 if pins is None else 2)
    assert seal.header_of((work / "s.seal").read_bytes(), "s.seal").binding == binding
    seal.open_seal(work / "s.seal", key, binding, work / "out")
    other = seal.Binding(tag, frame, path, None if pins else "0" * 64)
    with pytest.raises(seal.SealWrongExperiment):
        seal.open_seal(work / "s.seal", key, other, work / "out2")
    assert not (work / "out2").exists()


def test_binding_pins_must_be_a_sha256() -> None:
    with pytest.raises(ValueError, match="pins"):
        seal.Binding("t", "0" * 64, "a.seal", "XYZ")


def test_a_truncated_pinned_header_is_reported_as_truncated(tmp_path: Path) -> None:
    plain = tmp_path / "p"
    plain.write_bytes(b"x")
    seal.seal_file(plain, tmp_path / "s", seal.DataKey.generate(), seal.Binding("t", "0" * 64, "s.seal", "1" * 64))
    data = (tmp_path / "s").read_bytes()
    with pytest.raises(seal.SealTruncated):
        seal.header_of(data[:90], "s")


@given(st.fixed_dictionaries({p: HEX64 for p in ("train", "dev", "gate", "test")}), st.sampled_from(["train", "dev", "gate", "test"]))
def test_the_pins_digest_changes_with_every_pin(pins: dict[str, str], part: str) -> None:
    changed = {**pins, part: hashlib.sha256(pins[part].encode()).hexdigest()}
    assert pins_digest(pins) != pins_digest(changed)
    assert pins_digest(dict(reversed(list(pins.items())))) == pins_digest(pins)
    with pytest.raises(ValueError, match=part):
        pins_digest({k: v for k, v in pins.items() if k != part})


# --- the hardcode scan ---------------------------------------------------------------------

ROWS = [{"id": f"r{i:04d}", "text": f"please look at the {w}{i % 7} {v}x{i % 11} zq{i:05d}wort issue for me today thanks a lot",
         "label": f"L{i % 5}"}
        for i, (w, v) in enumerate((a, b) for a in ("alder", "birch", "cedar", "delta", "ember", "fjord", "grove", "heath")
                                   for b in ("inlet", "jetty", "knoll", "larch", "marsh", "nook", "ochre", "pines", "quay", "reef")
                                   for _ in range(2))]


def hits(line: str) -> set[tuple[str, tuple[str, ...]]]:
    found = gate.scan_diff(f"+++ b/p.txt\n@@ -0,0 +1 @@\n+{line}\n", ROWS, text_columns=["text"], label_column="label")
    return {(h.kind, h.row_ids) for h in found}


def test_three_words_of_a_long_row_with_its_label_are_a_row_label_hit() -> None:
    row = ROWS[37]
    three = " ".join(str(row["text"]).split()[4:7])
    assert hits(f'if "{three}" in text: return "{row["label"]}"') == {("row_label", (row["id"],))}
    assert hits(f'if "{three}" in text: return "something"') == set()  # one rare word alone is no copy
    assert hits(" ".join(str(row["text"]).split()[:3])) == set()  # common words: no row's own


def test_three_rare_words_alone_are_a_fragment() -> None:
    rows = [{"id": "a1", "text": "the quokka zebroid wallaby came to my branch and took the card out of my hands", "label": "x"},
            *ROWS]
    found = gate.scan_diff("+++ b/p.txt\n@@ -0,0 +1 @@\n+about quokka zebroid wallaby\n", rows, text_columns=["text"], label_column="label")
    assert [(h.kind, h.row_ids) for h in found] == [("fragment", ("a1",))]


@pytest.mark.parametrize("form", ["raw", "strip", "lower"])
@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_a_table_keyed_by_row_hashes_is_a_row_hash_hit(algorithm: str, form: str) -> None:
    row = ROWS[12]
    text = {"raw": str(row["text"]), "strip": str(row["text"]).strip(), "lower": str(row["text"]).lower()}[form]
    digest = hashlib.new(algorithm, text.encode()).hexdigest()
    assert ("row_hash", (row["id"],)) in hits(f"ANSWERS = {{'{digest}': '{row['label']}'}}")
    assert ("row_hash", (row["id"],)) in hits(f"ANSWERS = {{'{digest[:12].upper()}': 1}}")  # a prefix, any case
    assert hits(f"COMMIT = '{hashlib.sha1(b'unrelated').hexdigest()}'") == set()
    assert hits(f"short = '{digest[:8]}'") == set()  # under 10 hex digits: too short to tell from chance


def test_a_zero_width_space_does_not_hide_a_copied_row() -> None:
    row = ROWS[3]
    salted = str(row["text"]).replace("look", "lo\u200bok")
    assert ("text", (row["id"],)) in hits(salted)
