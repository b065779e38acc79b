"""Leak guard: salted fingerprints of the sealed test rows, and a fast scan of staged content.

The index never holds row text, only keyed hashes, so it can be committed next to the seal and
read by the pre-commit hook without the key. Nothing in this module returns or prints a
row's text: a hit is a line number and a fingerprint.

Normalization (``normalize``), applied to test rows and, except the last step, to content:

1. Unicode NFKC (full-width and compatibility forms fold to their plain form);
2. ``str.casefold`` (case-insensitive, including ß → ss);
3. every run of whitespace (spaces, tabs, newlines, \\r) becomes one space;
4. (rows only) characters that are not letters or digits are stripped from both ends, so
   ``"How do I locate my card?"`` becomes ``how do i locate my card``.

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
numbers still match the content).

Not detected (documented limits): a row paraphrased, re-punctuated inside, HTML-escaped, or
split by other encodings (base64, URL-encoding); rows under ``min_length``.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_MIN_LENGTH = 12
DEFAULT_FREE_LENGTH = 24
FINGERPRINT_HEX = 16
TAG_BYTES = 4
_ALNUM = re.compile(r"[^\W_]")
_WORD_START = re.compile(r"(?<![^\W_])[^\W_]")


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalize(text: str) -> str:
    """NFKC, casefold, collapse whitespace, strip non-alphanumerics at both ends (module doc)."""
    t = _fold(text)
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
            "normalize": "nfkc-casefold-whitespace-strip-ends",
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
            if not isinstance(fps, list) or not isinstance(raw_tags, dict):
                raise TypeError("fingerprints must be a list and tags a mapping")
            tags = {bytes.fromhex(str(t)): tuple(int(x) for x in ls) for t, ls in raw_tags.items()}
            return cls(salt, min_length, frozenset(str(f) for f in fps), tags, skipped, free_length)
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


def scan(content: str, index: LeakIndex) -> list[Hit]:
    """Every place a sealed row occurs in ``content`` (see the module doc), sorted, without text.

    Content holding backslashes or doubled quotes is scanned a second time with those escapes
    resolved (``unescape``), so rows written as JSON/Python strings or quoted CSV are found.
    """
    if not index.tags:
        return []
    folded = unicodedata.normalize("NFKC", content).casefold().split("\n")
    hits = _scan(enumerate(folded, 1), index)
    if "\\" in content or '""' in content:
        marked = [("\\" in line or '""' in line) for line in folded]
        # lines with an escape, and the line after each (a quoted CSV field may continue there)
        escaped = [(n + 1, unescape(line)) for n, line in enumerate(folded) if marked[n] or (n and marked[n - 1])]
        hits |= _scan(escaped, index)
    return [Hit(line, fp) for line, fp in sorted(hits)]


def _scan(lines: Iterable[tuple[int, str]], index: LeakIndex) -> set[tuple[int, str]]:
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
