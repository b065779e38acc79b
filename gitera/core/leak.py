"""Leak guard: salted fingerprints of the sealed test rows, and a fast scan of staged content.

The index never holds row text, only keyed hashes, so it can be committed next to the seal and
read by the pre-commit hook without the key. Nothing in this module returns or prints a
row's text: a hit is a line number and a fingerprint.

Normalization (``normalize``), applied to test rows and, except the last step, to content:

1. Unicode NFKC (full-width and compatibility forms fold to their plain form);
2. invisible characters are removed (zero-width spaces and joiners, the soft hyphen, word
   joiners, bidi controls, variation selectors, the byte-order mark, tag characters), and
   curly and other typographic quotes and dashes become ``'``, ``"`` and ``-``;
3. ``str.casefold`` (case-insensitive, including ß → ss);
4. every run of whitespace (spaces, tabs, newlines, \\r) becomes one space;
5. (rows only) characters that are not letters or digits are stripped from both ends, so
   ``"How do I locate my card?"`` becomes ``how do i locate my card``.

Indexes written before step 2 existed carry ``normalize: nfkc-casefold-whitespace-strip-ends``
and are scanned without it (their fingerprints were made without it).

Index (``LeakIndex.build``): rows whose normalized text is shorter than ``min_length``
characters (default 12) are skipped, because short strings ("yes", "card lost") occur in
ordinary code and prose and would make the hook cry wolf; their count is kept in ``skipped``.
For each other row the index stores

- its fingerprint: HMAC-SHA256(salt, normalized text as UTF-8), first 16 hex digits;
- a 32-bit keyed BLAKE2b tag of its first ``min_length`` characters, with the lengths (in
  characters) of the rows sharing that tag.

Scan (``scan``): the content is normalized (steps 1-3; lines joined by one space, so a row
wrapped over several lines is still found) and, at every word start (a letter or digit not
preceded by one), the tag of the next ``min_length`` characters is looked up; only on a tag hit
are the windows of the listed lengths that end at a word boundary fingerprinted and compared.
A row of at least ``free_length`` characters (default 24) is found wherever it occurs as a
substring that starts and ends at word boundaries: as a whole line, inside a CSV/JSON record
or a longer sentence, or in a string literal. A shorter row ("can i top up") is found only
where it stands delimited: at a line start or right after a non-space character (a quote, a
comma, a tab), and at a line end or right before a non-space character; inside running prose
("how much money can i top up?") it is not, because short questions recur in unrelated text.
The work is one short keyed hash per word of content
plus rare confirmations: bounded by (words in content) + (tag hits x distinct lengths per tag).
Measured: 3 MB of Python source in about 0.5 s on one core (see docs/data-and-split.md).

Escapes: content holding a backslash or a doubled quote is scanned a second time with JSON /
Python string escapes (``\\"``, ``\\n``, ``\\uXXXX``...) and CSV doubled quotes resolved, so
rows dumped as JSON or quoted CSV are found too (escaped line breaks become spaces, so line
numbers still match the content). Lines holding HTML character references (``&#39;``,
``&amp;``, ``&quot;``...) are scanned again with them resolved.

Bytes (``scan_bytes``, what the hook and ``verify`` call for a file): a UTF-32/UTF-16 byte-order
mark, or the zero-byte pattern of Latin text in UTF-16/UTF-32 without one, decodes the file as
such; a gzip or zlib stream is inflated; other bytes with a zero byte in their first 8 KiB are
binary and not read. In text, every base64 run of 16 or more characters (standard or URL-safe
alphabet, at any of the 4 alignments, including blocks wrapped over lines of equal length) is
decoded, and when the result is UTF-8 or UTF-16 text, or gzip/zlib, it is scanned in turn
(nesting up to 3 levels). Work is bounded per file: inflated and decoded payloads count
against ``DERIVED_LIMIT`` (4 MiB); past it the scan stops and says so (``BlobScan.complete``).

Not detected (documented limits, docs/threat-model.md): a row paraphrased, re-punctuated inside,
translated, in homoglyphs (Cyrillic а for Latin a), in other encodings (URL-encoding, hex,
ROT13, zip/xz/bz2 archives, binary formats such as SQLite or pickle), UTF-16 text without a
byte-order mark in a non-Latin script, payloads beyond the 4 MiB limit; rows under ``min_length``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import codecs
import hashlib
import hmac
import html
import re
import unicodedata
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_MIN_LENGTH = 12
DEFAULT_FREE_LENGTH = 24
FINGERPRINT_HEX = 16
TAG_BYTES = 4
NORMALIZE_V1 = "nfkc-casefold-whitespace-strip-ends"
NORMALIZE_V2 = "nfkc-invisibles-quotes-casefold-whitespace-strip-ends"
DERIVED_LIMIT = 4 * 1024 * 1024  # bytes of inflated or decoded payloads scanned per file
MAX_DEPTH = 3  # payload inside payload (base64 of gzip of text is 2)
MIN_BASE64 = 16  # the base64 of a 12-character row
_ALNUM = re.compile(r"[^\W_]")
_WORD_START = re.compile(r"(?<![^\W_])[^\W_]")
# zero-width and other invisible format characters an agent could salt a copied row with
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]")
_PLAIN = {**dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2035\u02bc\u02b9", "'"),
          **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb", '"'),
          **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-")}
_TYPOGRAPHIC = re.compile("[" + "".join(_PLAIN) + "]")


def _canon(text: str, version: str = NORMALIZE_V2) -> str:
    """Steps 1-2 of the module doc (step 1 only for an index made before step 2 existed)."""
    t = unicodedata.normalize("NFKC", text)
    if version == NORMALIZE_V1:
        return t
    # search before replacing: most text holds neither, and a regex search is far cheaper than translate
    if _INVISIBLE.search(t):
        t = _INVISIBLE.sub("", t)
    return _TYPOGRAPHIC.sub(lambda m: _PLAIN[m.group()], t) if _TYPOGRAPHIC.search(t) else t


def canonical(text: str) -> str:
    """NFKC, invisible characters removed, typographic quotes and dashes made plain (steps 1-2)."""
    return _canon(text)


def _fold(text: str, version: str = NORMALIZE_V2) -> str:
    return " ".join(_canon(text, version).casefold().split())


def normalize(text: str, version: str = NORMALIZE_V2) -> str:
    """NFKC, invisibles and quotes, casefold, collapse whitespace, strip non-alphanumerics at both ends (module doc)."""
    t = _fold(text, version)
    i, j = 0, len(t)
    while i < j and not _ALNUM.match(t, i):
        i += 1
    while j > i and not _ALNUM.match(t, j - 1):
        j -= 1
    return t[i:j]


def _fingerprint(salt: bytes, normalized: str) -> str:
    return hmac.digest(salt, normalized.encode("utf-8"), "sha256").hex()[:FINGERPRINT_HEX]


def fingerprints(texts: Iterable[str], salt: bytes) -> list[str]:
    """Salted fingerprint (HMAC-SHA256, 16 hex) of each text's normalized form, in order."""
    return [_fingerprint(salt, normalize(t)) for t in texts]


def _tag_key(salt: bytes) -> bytes:
    return hmac.digest(salt, b"gitera-leak-prefix-tag", "sha256")


def _tagger(salt: bytes) -> hashlib.blake2b:
    return hashlib.blake2b(key=_tag_key(salt), digest_size=TAG_BYTES)


@dataclass(frozen=True)
class Hit:
    """A sealed row found in content: the 1-based line where it starts, and its fingerprint."""

    line_no: int
    fingerprint: str


@dataclass(frozen=True)
class LeakIndex:
    """Fingerprints and prefix tags of the sealed rows (no text); safe to commit."""

    salt: bytes
    min_length: int
    fingerprints: frozenset[str]
    tags: Mapping[bytes, tuple[int, ...]]  # prefix tag -> distinct normalized lengths
    skipped: int = 0
    free_length: int = DEFAULT_FREE_LENGTH
    normalization: str = NORMALIZE_V2

    @classmethod
    def build(cls, texts: Iterable[str], salt: bytes, min_length: int = DEFAULT_MIN_LENGTH,
              free_length: int = DEFAULT_FREE_LENGTH) -> LeakIndex:
        """Index every text whose normalized form has at least ``min_length`` characters.

        Rows of at least ``free_length`` characters are found anywhere at word boundaries;
        shorter ones only where they stand delimited (see the module doc).
        """
        if min_length < 1:
            raise ValueError("min_length must be at least 1")
        if not salt:
            raise ValueError("the leak index needs a non-empty salt")
        fps: set[str] = set()
        tags: dict[bytes, set[int]] = {}
        skipped = 0
        base = _tagger(salt)
        for text in texts:
            norm = normalize(text)
            if len(norm) < min_length:
                skipped += 1
                continue
            fps.add(_fingerprint(salt, norm))
            h = base.copy()
            h.update(norm[:min_length].encode("utf-8"))
            tags.setdefault(h.digest(), set()).add(len(norm))
        return cls(salt, min_length, frozenset(fps), {t: tuple(sorted(ls)) for t, ls in tags.items()}, skipped,
                   max(free_length, min_length))

    def __len__(self) -> int:
        return len(self.fingerprints)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (salt and tags in hex, sorted so the file is stable)."""
        return {
            "version": 1,
            "normalize": self.normalization,
            "fingerprint": f"hmac-sha256-{FINGERPRINT_HEX}hex",
            "salt": self.salt.hex(),
            "min_length": self.min_length,
            "free_length": self.free_length,
            "skipped": self.skipped,
            "fingerprints": sorted(self.fingerprints),
            "tags": {t.hex(): list(ls) for t, ls in sorted(self.tags.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LeakIndex:
        """Inverse of ``to_dict``; ``ValueError`` for anything malformed."""
        try:
            salt = bytes.fromhex(str(data["salt"]))
            min_length = int(str(data["min_length"]))
            fps = data["fingerprints"]
            raw_tags = data["tags"]
            skipped = int(str(data.get("skipped", 0)))
            free_length = int(str(data.get("free_length", DEFAULT_FREE_LENGTH)))
            normalization = str(data.get("normalize", NORMALIZE_V1))
            if normalization not in (NORMALIZE_V1, NORMALIZE_V2):
                raise ValueError(f"unknown normalization {normalization!r}")
            if not isinstance(fps, list) or not isinstance(raw_tags, dict):
                raise TypeError("fingerprints must be a list and tags a mapping")
            tags = {bytes.fromhex(str(t)): tuple(int(x) for x in ls) for t, ls in raw_tags.items()}
            return cls(salt, min_length, frozenset(str(f) for f in fps), tags, skipped, free_length, normalization)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed leak index: {exc}") from None


def _normalized_content(lines: Iterable[tuple[int, str]]) -> tuple[str, list[int], list[int]]:
    """Lines folded (steps 1-3) and joined by one space; start offsets and line numbers."""
    parts: list[str] = []
    starts: list[int] = []
    line_nos: list[int] = []
    pos = 0
    for number, line in lines:
        norm = " ".join(line.split())
        if not norm:
            continue
        if parts:
            pos += 1
        starts.append(pos)
        line_nos.append(number)
        parts.append(norm)
        pos += len(norm)
    return " ".join(parts), starts, line_nos


_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|[nrt"\'\\/])|""')
_SIMPLE = {"n": " ", "r": " ", "t": " ", '"': '"', "'": "'", "\\": "\\", "/": "/"}


def _unescape_one(m: re.Match[str]) -> str:
    esc = m.group(1)
    if esc is None:
        return '"'  # a CSV doubled quote
    if esc[0] == "u":
        ch = chr(int(esc[1:], 16))
        return " " if ch in "\n\r" or 0xD800 <= ord(ch) < 0xE000 else ch
    return _SIMPLE[esc]


def unescape(content: str) -> str:
    """JSON/Python string escapes and CSV doubled quotes resolved, without adding line breaks."""
    return _ESCAPE.sub(_unescape_one, content)


_HTML_REF = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def scan(content: str, index: LeakIndex) -> list[Hit]:
    """Every place a sealed row occurs in ``content`` (see the module doc), sorted, without text.

    Content holding backslashes or doubled quotes is scanned a second time with those escapes
    resolved (``unescape``), so rows written as JSON/Python strings or quoted CSV are found;
    likewise for HTML character references; base64 payloads are decoded and scanned.
    """
    return _scan_text(content, index, _Budget(DERIVED_LIMIT), 0).sorted()


@dataclass
class _Budget:
    """The leak scan's work left for one file, and whether the file was read completely."""
    left: int
    complete: bool = True

    def take(self, n: int) -> bool:
        if n > self.left:
            self.complete = False
            return False
        self.left -= n
        return True


class _Hits(set[tuple[int, str]]):
    def sorted(self) -> list[Hit]:
        return [Hit(line, fp) for line, fp in sorted(self)]


def _scan_text(content: str, index: LeakIndex, budget: _Budget, depth: int) -> _Hits:
    hits = _Hits()
    if not index.tags:
        return hits
    version = index.normalization
    raw = content.split("\n")
    hits |= _scan(enumerate(_canon(content, version).casefold().split("\n"), 1), index)
    variants = []
    if "\\" in content or '""' in content:
        marked = [("\\" in line or '""' in line) for line in raw]
        # lines with an escape, and the line after each (a quoted CSV field may continue there)
        variants.append([(n + 1, unescape(line)) for n, line in enumerate(raw) if marked[n] or (n and marked[n - 1])])
    if "&" in content and _HTML_REF.search(content):
        variants.append([(n + 1, " ".join(html.unescape(line).splitlines())) for n, line in enumerate(raw) if _HTML_REF.search(line)])
    for lines in variants:
        hits |= _scan(((n, _canon(line, version).casefold()) for n, line in lines), index)
    if depth < MAX_DEPTH:
        for line_no, payload in _base64_payloads(content):
            hits |= {(line_no, fp) for _, fp in _scan_bytes(payload, index, budget, depth + 1)}
    return hits


@dataclass(frozen=True)
class BlobScan:
    """What ``scan_blob`` found, and whether it read all of the file's payloads (the work limit)."""

    hits: list[Hit]
    complete: bool


def scan_bytes(data: bytes, index: LeakIndex) -> list[Hit]:
    """``scan`` for a file's bytes: UTF-16/32 text, gzip/zlib streams and base64 payloads decoded (module doc)."""
    return scan_blob(data, index).hits


def scan_blob(data: bytes, index: LeakIndex, limit: int = DERIVED_LIMIT) -> BlobScan:
    budget = _Budget(limit)
    return BlobScan(_scan_bytes(data, index, budget, 0, charged=True).sorted(), budget.complete)


def _scan_bytes(data: bytes, index: LeakIndex, budget: _Budget, depth: int, charged: bool = False) -> _Hits:
    """``charged``: the bytes were already paid for (the file itself, or inflated output)."""
    if data[:2] == b"\x1f\x8b" or _is_zlib(data[:2]):
        inflated = _inflate(data, budget)
        return _scan_bytes(inflated, index, budget, depth + 1, charged=True) if inflated and depth < MAX_DEPTH else _Hits()
    text = decode_text(data, strict=depth > 0)
    if text is None or (not charged and not budget.take(len(data))):
        return _Hits()
    return _scan_text(text, index, budget, depth)


def _is_zlib(head: bytes) -> bool:
    return len(head) == 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0


def _inflate(data: bytes, budget: _Budget) -> bytes:
    """A gzip (all members) or zlib stream, inflated up to what the budget allows."""
    out: list[bytes] = []
    while data and budget.left > 0:
        d = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or a zlib header
        try:
            chunk = d.decompress(data, budget.left)
        except zlib.error:
            break
        budget.take(len(chunk))
        out.append(chunk)
        if d.unconsumed_tail:
            budget.complete = False  # more output than the budget allows
            break
        if not d.eof or not d.unused_data.startswith(b"\x1f\x8b"):
            break
        data = d.unused_data
    return b"".join(out)


def decode_text(data: bytes, strict: bool = False) -> str | None:
    """The text of a file: by its byte-order mark (UTF-32, UTF-16, UTF-8), by the zero-byte pattern
    of Latin text in UTF-16/32, else UTF-8; None for binary data (a zero byte in the first 8 KiB
    that fits no wide encoding) or, when ``strict``, for bytes that are not valid text."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(codec, "replace")
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    head = data[:8192]
    if b"\0" in head:
        wide = _wide_codec(head)
        return data.decode(wide, "replace") if wide else None
    try:
        return data.decode("utf-8", "strict" if strict else "replace")
    except UnicodeDecodeError:
        return None


def _wide_codec(head: bytes) -> str | None:
    n = len(head) - len(head) % 4
    if n < 8:
        return None
    q = n // 4
    zeros = [head[i:n:4].count(0) for i in range(4)]
    many, few = 0.7 * q, 0.3 * q
    if zeros[0] < few and all(z > many for z in zeros[1:]):
        return "utf-32-le"
    if zeros[3] < few and all(z > many for z in zeros[:3]):
        return "utf-32-be"
    odd, even = zeros[1] + zeros[3], zeros[0] + zeros[2]
    if odd > 1.2 * q and even < 0.4 * q:
        return "utf-16-le"
    if even > 1.2 * q and odd < 0.4 * q:
        return "utf-16-be"
    return None


_B64_RUN = re.compile(rf"[A-Za-z0-9+/_-]{{{MIN_BASE64},}}")
# the base64 of any text of 12 bytes or more mixes upper- and lower-case letters; identifiers in
# snake_case or UPPER_CASE and hex digests do not, and are not decoded
_UPPER = re.compile("[A-Z]")
_LOWER = re.compile("[a-z]")
# a line that is one base64 run (a block wrapped over lines), allowing quotes and a comma around it
_B64_LINE = re.compile(r"^[ \t\"',]*([A-Za-z0-9+/_-]+={0,2})[ \t\"',]*\r?$", re.M)
_URLSAFE = str.maketrans("-_", "+/")


def _base64_payloads(content: str) -> Iterable[tuple[int, bytes]]:
    """(line number, decoded bytes) of every base64 run that decodes to something worth reading:
    runs inside a line, and blocks wrapped over consecutive lines of equal length."""
    starts = [0, *(m.end() for m in re.finditer("\n", content))]
    for m in _B64_RUN.finditer(content):
        if _UPPER.search(m.group()) and _LOWER.search(m.group()):
            payload = _b64decode(m.group())
            if payload is not None:
                yield bisect.bisect_right(starts, m.start()), payload
    block: list[str] = []
    first = last = 0
    wrapped = [(bisect.bisect_right(starts, w.start()), w.group(1)) for w in _B64_LINE.finditer(content)]
    for line, run in [*wrapped, (0, "")]:
        if line and block and line == last + 1 and len(block[-1]) == len(block[0]) and len(run) <= len(block[0]):
            block.append(run)
            last = line
            continue
        if len(block) > 1:
            payload = _b64decode("".join(block))
            if payload is not None:
                yield first, payload
        block, first, last = ([run], line, line) if len(run) >= MIN_BASE64 else ([], 0, 0)


def _b64decode(run: str) -> bytes | None:
    """The first alignment of ``run`` that decodes to gzip/zlib or to text (UTF-8, or with a BOM)."""
    body = run.rstrip("=").translate(_URLSAFE)
    for skip in range(4):
        part = body[skip:]
        if len(part) < MIN_BASE64:
            return None
        rest = len(part) % 4  # 1: a stray character; 2 or 3: padding left out
        part = part[:-1] if rest == 1 else part + "=" * (-len(part) % 4)
        try:
            raw = base64.b64decode(part)
        except (binascii.Error, ValueError):
            continue
        if raw[:2] == b"\x1f\x8b" or _is_zlib(raw[:2]) or decode_text(raw, strict=True) is not None:
            return raw
    return None


def _scan(lines: Iterable[tuple[int, str]], index: LeakIndex) -> set[tuple[int, str]]:
    """Lines already folded (steps 1-3 of the module doc), with their line numbers."""
    text, starts, line_nos = _normalized_content(lines)
    k = index.min_length
    tags = index.tags
    fps = index.fingerprints
    salt = index.salt
    base = _tagger(salt)
    free = index.free_length
    size = len(text)
    line_starts = set(starts)
    last = size - k
    hits: set[tuple[int, str]] = set()
    for m in _WORD_START.finditer(text):
        i = m.start()
        if i > last:
            break
        h = base.copy()
        h.update(text[i:i + k].encode("utf-8"))
        lengths = tags.get(h.digest())
        if lengths is None:
            continue
        for length in lengths:
            end = i + length
            if end > size:
                break
            if end < size and _ALNUM.match(text, end):
                continue  # the window ends inside a word
            if length < free and not (
                    (i in line_starts or text[i - 1] != " ")
                    and (end == size or text[end] != " " or end + 1 in line_starts)):
                continue  # a short row inside running text: not delimited
            fp = _fingerprint(salt, text[i:i + length])
            if fp in fps:
                hits.add((line_nos[bisect.bisect_right(starts, i) - 1], fp))
    return hits


def text_columns(rows: Sequence[Mapping[str, object]], exclude: Iterable[str] = ()) -> list[str]:
    """The free-text columns: those where at least half the non-empty string values contain a space.

    Ids, labels and slice values ("card_arrival", "enterprise") are excluded by this rule: they
    repeat across rows and appear in prompts and code, so fingerprinting them would flag
    innocent commits. Pass the id, label and slice columns in ``exclude`` as well.
    """
    tally = TextColumnTally(exclude)
    for row in rows:
        tally.add(row)
    return tally.columns()


class TextColumnTally:
    """`text_columns` one row at a time, for rows streamed from a file (scale, issue 15)."""

    def __init__(self, exclude: Iterable[str] = ()) -> None:
        self.skip = set(exclude)
        self.seen: dict[str, list[int]] = {}  # column -> [string values, values with whitespace]

    def add(self, row: Mapping[str, object]) -> None:
        for col, value in row.items():
            if col in self.skip or not isinstance(value, str) or not value.strip():
                continue
            tally = self.seen.setdefault(col, [0, 0])
            tally[0] += 1
            tally[1] += 1 if len(value.split()) > 1 else 0

    def columns(self) -> list[str]:
        return [col for col, (n, spaced) in self.seen.items() if 2 * spaced >= n]


def row_texts(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None,
              exclude: Iterable[str] = ()) -> list[str]:
    """The string values to fingerprint: ``columns`` of each row (``text_columns`` when None)."""
    cols = list(columns) if columns is not None else text_columns(rows, exclude)
    skip = set(exclude)
    out: list[str] = []
    for row in rows:
        for col in cols:
            if col in skip:
                continue
            value = row.get(col)
            if isinstance(value, str) and value.strip():
                out.append(value)
    return out
