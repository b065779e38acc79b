"""The generalization gate, pure logic: hardcode scan, reusable holdout, replication, saturation.

After each sprint of at most ``iterate.sprint`` attempts (DISCIPLINE rules 17-19), ``gitera gate``
asks three questions of the sprint and combines the answers (docs/gate.md explains each rule
and what to do after each outcome):

1. **Hardcode scan** (``scan_diff``): did an added line of the sprint's diff copy a row (its
   id, its full text, a long fragment of it, three rare words of a long row, a hash of it) or
   encode "if input X return Y" for one row?
2. **Replication** (``Thresholdout``, ``thresholdout_query``, ``replication``): does the gain
   measured on the climbing dev rows show up on the reserved gate rows, read only through the
   reusable holdout of Dwork et al. (Science 2015) so that repeated gates do not overfit them?
3. **Saturation** (``saturation``): has the loop stopped producing gains beyond the noise?

``gate_outcome`` turns the three into ``pass`` / ``saturated`` / ``fail``.

Nothing here does I/O, prints, or touches git; randomness comes only from the integer seed
held in the ``Thresholdout`` state (``numpy.random.default_rng([seed, query_index])``), so every
holdout answer can be replayed by ``gitera verify``.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from gitera.core.errors import ConfigError
from gitera.core.leak import canonical

# --------------------------------------------------------------------------------------------
# 1. Hardcode scan
# --------------------------------------------------------------------------------------------

HitKind = Literal["id", "text", "fragment", "row_label", "row_hash", "reads_eval_data"]  # the last: run-level gates (docs/run-level.md)
MAX_ROW_IDS = 5
EXCERPT_CHARS = 120
MIN_ID_CHARS = 4
MIN_NUMERIC_ID_CHARS = 6
NGRAM = 4  # the base word n-gram of the index
FRAGMENT_WORDS = 6
FRAGMENT_CHARS = 40
DISTINCTIVE_ROWS = 2  # a 4-gram (or fragment) counts as a row's own when it occurs in <= 2 rows
COMMON_WORD_SHARE = 0.02  # ... and a 4-gram needs a word found in at most 2% of rows (at least 3)
COMMON_WORD_MIN_ROWS = 3
LONG_ROW_WORDS = 12  # a row of at least 12 words: three uncommon consecutive words of it ...
RARE_WORD_CHARS = 4  # ... one of them a word of 4+ characters found in at most 2 rows, are its own
SHORT_FRAGMENT = 3
ROW_HASHES = ("md5", "sha1", "sha256")
MIN_HASH_HEX = 10  # a hex token of at least 10 digits that starts a row's digest (40 bits: no accident)
_HEX_TOKEN = re.compile(r"(?<![0-9a-z])[0-9a-f]{%d,128}(?![0-9a-z])" % MIN_HASH_HEX)

_WORD = re.compile(r"\w+")
_ALNUM_WORD = re.compile(r"[^\W_]+")
_ID_TOKEN = re.compile(r"[\w-]+")
_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _fold(text: str) -> str:
    # invisible characters removed: a zero-width space inside a copied word must not split it
    return canonical(text).casefold()


def _words(text: str) -> list[str]:
    """Casefolded word tokens; punctuation and whitespace are separators, ``_`` joins (identifiers)."""
    return _WORD.findall(_fold(text))


@dataclass(frozen=True)
class HardcodeHit:
    """One added line that copies a row or hardcodes a row's label.

    ``excerpt`` is the user's own added line (never the row), trimmed to 120 characters;
    ``row_ids`` names at most five matching rows, in input order.
    """

    file: str
    line_no: int
    kind: HitKind
    row_ids: tuple[str, ...]
    excerpt: str

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line_no, "kind": self.kind,
                "row_ids": list(self.row_ids), "excerpt": self.excerpt}


@dataclass(frozen=True)
class AddedLine:
    """An added (``+``) line of a unified diff: its file and its 1-based line number in the new file."""

    file: str
    line_no: int
    text: str


def _diff_path(header: str) -> str:
    path = header.split("\t", 1)[0].strip()
    if len(path) >= 2 and path[0] == '"' and path[-1] == '"':
        path = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape", "replace")
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def added_lines(diff_text: str) -> list[AddedLine]:
    """The added lines of a unified diff (``git diff -U0`` or with context), never the headers.

    Hunk headers give the new-file start line and count; inside a hunk the counts are tracked,
    so an added line whose content itself starts with ``++`` is not mistaken for a header.
    Malformed input never raises: lines outside a well-formed hunk are ignored.
    """
    out: list[AddedLine] = []
    file = ""
    old_left = new_left = 0
    new_no = 0
    for raw in diff_text.splitlines():
        if old_left > 0 or new_left > 0:
            tag = raw[:1]
            if tag == "+" and new_left > 0:
                out.append(AddedLine(file, new_no, raw[1:]))
                new_no += 1
                new_left -= 1
                continue
            if tag == "-" and old_left > 0:
                old_left -= 1
                continue
            if tag == " " and old_left > 0 and new_left > 0:
                old_left -= 1
                new_left -= 1
                new_no += 1
                continue
            if tag == "\\":  # "\ No newline at end of file"
                continue
            old_left = new_left = 0  # the hunk ended early (malformed): fall through to headers
        if raw.startswith("diff --git "):
            parts = raw[len("diff --git "):].rsplit(" b/", 1)
            file = parts[1] if len(parts) == 2 else ""
        elif raw.startswith("+++ "):
            path = _diff_path(raw[4:])
            file = "" if path == "/dev/null" else path
        elif raw.startswith("@@"):
            m = _HUNK.match(raw)
            if m:
                old_left = 1 if m.group(1) is None else int(m.group(1))
                new_left = 1 if m.group(3) is None else int(m.group(3))
                new_no = int(m.group(2))
    return out


@dataclass(frozen=True)
class _Unit:
    """A train row prepared for the hardcode scan: the row and its words."""
    row: int  # index into the rows
    words: tuple[str, ...]


@dataclass
class _RowIndex:
    """Word n-gram index over the rows' text columns, built once per scan."""

    ids: list[str] = field(default_factory=list)
    labels: list[tuple[tuple[str, ...], ...]] = field(default_factory=list)  # per row: label word forms
    id_lookup: dict[str, list[int]] = field(default_factory=dict)
    full: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    full_lengths: list[int] = field(default_factory=list)
    units: list[_Unit] = field(default_factory=list)
    grams: dict[tuple[str, ...], list[tuple[int, int]]] = field(default_factory=dict)  # -> (unit, pos)
    gram_rows: dict[tuple[str, ...], int] = field(default_factory=dict)  # distinct rows per gram
    distinctive: set[tuple[str, ...]] = field(default_factory=set)  # grams that identify <= 2 rows
    rare3: dict[tuple[str, ...], tuple[int, int]] = field(default_factory=dict)  # 3 uncommon words of a long row -> (row, rare words)
    digests: list[str] = field(default_factory=list)  # sorted hex digests of every row's text and id
    digest_rows: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, rows: Sequence[Mapping[str, object]], text_columns: Sequence[str], id_column: str,
              label_column: str | None, min_phrase_chars: int) -> _RowIndex:
        ix = cls()
        lengths: set[int] = set()
        gram_row_sets: dict[tuple[str, ...], set[int]] = {}
        word_rows: dict[str, set[int]] = {}
        for r, row in enumerate(rows):
            rid = row.get(id_column)
            rid_s = "" if rid is None else str(rid)
            ix.ids.append(rid_s)
            key = rid_s.strip().casefold()
            numeric = key.isdigit()
            if len(key) >= (MIN_NUMERIC_ID_CHARS if numeric else MIN_ID_CHARS) and _ID_TOKEN.fullmatch(key):
                ix.id_lookup.setdefault(key, []).append(r)
            label = row.get(label_column) if label_column else None
            forms: set[tuple[str, ...]] = set()
            if label is not None and str(label).strip():
                forms.add(tuple(_words(str(label))))
                forms.add(tuple(_ALNUM_WORD.findall(_fold(str(label)))))
                forms.discard(())
            ix.labels.append(tuple(sorted(forms)))
            for col in text_columns:
                value = row.get(col)
                if value is None:
                    continue
                words = tuple(_words(str(value)))
                if not words:
                    continue
                if len(" ".join(words)) >= min_phrase_chars:
                    ix.full.setdefault(words, []).append(r)
                    lengths.add(len(words))
                u = len(ix.units)
                ix.units.append(_Unit(r, words))
                for w in words:
                    word_rows.setdefault(w, set()).add(r)
                for p in range(len(words) - NGRAM + 1):
                    g = words[p:p + NGRAM]
                    ix.grams.setdefault(g, []).append((u, p))
                    gram_row_sets.setdefault(g, set()).add(r)
        ix.full_lengths = sorted(lengths)
        ix.gram_rows = {g: len(s) for g, s in gram_row_sets.items()}
        limit = max(COMMON_WORD_MIN_ROWS, COMMON_WORD_SHARE * len(rows))
        common = {w for w, s in word_rows.items() if len(s) > limit}
        ix.distinctive = {g for g, n in ix.gram_rows.items()
                          if n <= DISTINCTIVE_ROWS and any(w not in common for w in g)}
        rare = {w for w, s in word_rows.items() if len(s) <= DISTINCTIVE_ROWS and len(w) >= RARE_WORD_CHARS}
        ix.rare3 = _rare_trigrams(ix.units, common, rare)
        ix._index_digests(rows, text_columns, id_column)
        return ix

    def _index_digests(self, rows: Sequence[Mapping[str, object]], text_columns: Sequence[str], id_column: str) -> None:
        """md5 / sha1 / sha256 of each row's id and text (as is, stripped, casefolded, normalized):
        what a table keyed by row hashes would hold."""
        found: dict[str, list[int]] = {}
        for r, row in enumerate(rows):
            forms = {self.ids[r]} if self.ids[r] else set()
            for col in text_columns:
                value = row.get(col)
                if isinstance(value, str) and value.strip():
                    forms |= {value, value.strip(), value.strip().lower(), _fold(value.strip()), " ".join(_words(value))}
            for form in forms:
                data = form.encode("utf-8")
                for name in ROW_HASHES:
                    found.setdefault(hashlib.new(name, data).hexdigest(), []).append(r)
        self.digest_rows = found
        self.digests = sorted(found)

    def digest_hits(self, token: str) -> set[int]:
        """Rows whose digest starts with the hex ``token``."""
        rows: set[int] = set()
        i = bisect.bisect_left(self.digests, token)
        while i < len(self.digests) and self.digests[i].startswith(token):
            rows.update(self.digest_rows[self.digests[i]])
            i += 1
        return rows


def _rare_trigrams(units: Sequence[_Unit], common: set[str], rare: set[str]) -> dict[tuple[str, ...], tuple[int, int]]:
    """3-word runs of uncommon words, one of them rare, from rows of at least 12 words that
    occur in no other row -> that row."""
    owners: dict[tuple[str, ...], set[int]] = {}
    for u in units:
        if len(u.words) >= LONG_ROW_WORDS:
            for p in range(len(u.words) - SHORT_FRAGMENT + 1):
                g = u.words[p:p + SHORT_FRAGMENT]
                if not any(w in common for w in g) and any(w in rare for w in g):
                    owners.setdefault(g, set()).add(u.row)
    for u in units:  # the same run in any other row (short ones too) makes it no row's own
        for p in range(len(u.words) - SHORT_FRAGMENT + 1):
            g = u.words[p:p + SHORT_FRAGMENT]
            if g in owners:
                owners[g].add(u.row)
    return {g: (next(iter(s)), sum(w in rare for w in g)) for g, s in owners.items() if len(s) == 1}


def _excerpt(line: str) -> str:
    text = line.strip()
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + "…"


def _first_rows(rows: Iterable[int], ids: Sequence[str]) -> tuple[str, ...]:
    return tuple(ids[r] for r in sorted(set(rows))[:MAX_ROW_IDS])


def _occurrences(words: Sequence[str], form: tuple[str, ...]) -> list[int]:
    n = len(form)
    return [i for i in range(len(words) - n + 1) if tuple(words[i:i + n]) == form]


def _scan_line(line: str, ix: _RowIndex) -> dict[HitKind, set[int]]:
    found: dict[HitKind, set[int]] = {}
    folded = _fold(line)
    # (i) ids as whole tokens ("t00123", "r3f9a...", uuid-like with hyphens)
    tokens = set(_ID_TOKEN.findall(folded)) | set(_WORD.findall(folded))
    id_rows = {r for t in tokens for r in ix.id_lookup.get(t, ())}
    if id_rows:
        found["id"] = id_rows
    # (v) a table keyed by row hashes: a hex token that starts a digest of a row's text or id
    hash_rows = {r for t in _HEX_TOKEN.findall(folded) for r in ix.digest_hits(t)}
    if hash_rows:
        found["row_hash"] = hash_rows
    words = _WORD.findall(folded)
    n = len(words)
    # (ii) a row's full normalized text, at word boundaries
    text_rows: set[int] = set()
    for length in ix.full_lengths:
        if length > n:
            break
        for i in range(n - length + 1):
            hit = ix.full.get(tuple(words[i:i + length]))
            if hit:
                text_rows.update(hit)
    if text_rows:
        found["text"] = text_rows
    # (iii a) three uncommon consecutive words of a long row, found in no other row: all three rare
    # make a copy on their own; with one, they are that row's key when its label is on the line (iv)
    trigrams = [(i, ix.rare3[g]) for i in range(n - SHORT_FRAGMENT + 1) if (g := tuple(words[i:i + SHORT_FRAGMENT])) in ix.rare3]
    rare_rows = {row for _, (row, rare) in trigrams if rare == SHORT_FRAGMENT}
    keyed: list[tuple[int, int, set[int]]] = [(i, SHORT_FRAGMENT, {row}) for i, (row, _) in trigrams]
    if n < NGRAM:
        if rare_rows - text_rows:
            found["fragment"] = rare_rows - text_rows
        return _with_label_pairs(found, words, keyed, ix)
    # (iii) long verbatim fragments: maximal diagonal runs of shared 4-grams (line pos, unit pos)
    runs: list[tuple[int, int, int]] = []  # (unit, first line word, last line word inclusive)
    active: dict[tuple[int, int], int] = {}
    for i in range(n - NGRAM + 1):
        g = tuple(words[i:i + NGRAM])
        postings = ix.grams.get(g, ())
        nxt: dict[tuple[int, int], int] = {}
        for u, p in postings:
            key = (u, p - i)
            nxt[key] = active.get(key, i)
        for key, start in active.items():
            if key not in nxt:
                runs.append((key[0], start, i - 1 + NGRAM - 1))
        active = nxt
        if postings and g in ix.distinctive:
            keyed.append((i, NGRAM, {ix.units[u].row for u, _ in postings}))
    last = n - NGRAM
    for key, start in active.items():
        runs.append((key[0], start, last + NGRAM - 1))
    frag_rows = rare_rows
    for u, a, b in runs:
        span = words[a:b + 1]
        if len(span) < FRAGMENT_WORDS and len(" ".join(span)) < FRAGMENT_CHARS:
            continue
        covering = {ix.units[u2].row for u2, a2, b2 in runs if a2 <= a and b2 >= b}
        if len(covering) <= DISTINCTIVE_ROWS:
            frag_rows.update(covering)
    frag_rows -= text_rows
    if frag_rows:
        found["fragment"] = frag_rows
    return _with_label_pairs(found, words, keyed, ix)


def _with_label_pairs(found: dict[HitKind, set[int]], words: Sequence[str], keyed: Sequence[tuple[int, int, set[int]]],
                      ix: _RowIndex) -> dict[HitKind, set[int]]:
    """(iv) "if input X return Y": a row's key words (a distinctive 4-gram, or 3 uncommon words of
    a long row) plus that row's label elsewhere on the line. ``keyed``: (line pos, span, rows)."""
    pair_rows: set[int] = set()
    label_pos: dict[tuple[str, ...], list[int]] = {}
    for i, span, rows_here in keyed:
        for r in rows_here:
            for form in ix.labels[r]:
                if form not in label_pos:
                    label_pos[form] = _occurrences(words, form)
                if any(j + len(form) <= i or j >= i + span for j in label_pos[form]):
                    pair_rows.add(r)
                    break
    if pair_rows:
        found["row_label"] = pair_rows
    return found


_KIND_ORDER: tuple[HitKind, ...] = ("id", "text", "fragment", "row_label", "row_hash")


def scan_diff(diff_text: str, rows: Sequence[Mapping[str, object]], *, text_columns: Sequence[str],
              id_column: str = "id", label_column: str | None, min_phrase_chars: int = 12) -> list[HardcodeHit]:
    """Hardcodes in the added lines of ``diff_text`` against ``rows`` (train + dev + gate).

    An added line is flagged, once per kind, when it holds:

    - ``id``: a row's id as a whole token (ids under 4 characters, and all-digit ids under 6
      digits, are ignored: they collide with ordinary numbers);
    - ``text``: a row's full text (casefolded, punctuation and whitespace collapsed) of at least
      ``min_phrase_chars`` characters, at word boundaries;
    - ``fragment``: a run of at least 6 consecutive words (or at least 40 characters, built from
      at least 4 words) copied from a row, where that run occurs in at most 2 rows (common
      phrasings such as "how long does it take for" are not a copy of any one row); not
      repeated when the same rows are already a ``text`` hit on the line;
    - ``row_label``: 4 consecutive words that occur in at most 2 rows and include a word that is
      not common (common: in more than 2% of the rows, at least 3), plus the label of such a
      row elsewhere on the line (as ``request_refund`` or ``request refund``): "if input X
      return Y". A general rule (``refund -> request_refund``, "a card that has not arrived
      -> card_arrival") is not a hit. Three consecutive words of a row of at least 12 words
      count as such a key too when they occur in no other row, none of them is common, and
      one is rare (4+ characters, in at most 2 rows);
    - ``fragment`` also: three such words that are all rare;
    - ``row_hash``: a hex token of at least 10 digits that starts the md5, sha1 or sha256 of a
      row's id or text (as is, stripped, lower-cased, folded, or its words joined by spaces):
      a table keyed by row hashes.

    Hits come in diff order, then by kind; each carries the file, the new-file line number, at
    most 5 row ids and the added line itself trimmed to 120 characters (never the row's text).
    """
    if min_phrase_chars < 1:
        raise ConfigError(f"min_phrase_chars must be at least 1, not {min_phrase_chars}.")
    lines = added_lines(diff_text)
    if not lines or not rows:
        return []
    ix = _RowIndex.build(rows, text_columns, id_column, label_column, min_phrase_chars)
    hits: list[HardcodeHit] = []
    for added in lines:
        found = _scan_line(added.text, ix)
        for kind in _KIND_ORDER:
            if kind in found:
                hits.append(HardcodeHit(added.file, added.line_no, kind, _first_rows(found[kind], ix.ids),
                                        _excerpt(added.text)))
    return hits


# --------------------------------------------------------------------------------------------
# 2. Reusable holdout (Thresholdout)
# --------------------------------------------------------------------------------------------

DEFAULT_THRESHOLD = 0.04
DEFAULT_SIGMA = 0.01
DEFAULT_BUDGET = 10


def _finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"thresholdout {name} must be a finite number, not {value!r}.")
    return v


def _draws(seed: int, query_index: int, sigma: float) -> tuple[float, float, float]:
    """(eta ~ Lap(4 sigma), xi ~ Lap(sigma), gamma ~ Lap(2 sigma)) from ``default_rng([seed, query_index])``."""
    rng = np.random.default_rng([seed, query_index])
    eta, xi, gamma = rng.laplace(0.0, 1.0, size=3)
    return float(eta) * 4 * sigma, float(xi) * sigma, float(gamma) * 2 * sigma


@dataclass(frozen=True)
class Thresholdout:
    """Immutable state of a reusable holdout (Dwork et al., "The reusable holdout", Science 2015).

    ``queries`` counts the queries asked so far; ``spent`` the overfitting events (holdout
    answers), so ``budget_left = budget - spent``; ``gamma_from`` is the query index whose
    random stream supplied the current threshold noise gamma (0: the initial draw). No float
    noise is stored: every draw is recomputed from ``default_rng([seed, index])``, so the JSON
    form is exact and a replay from the same seed and query sequence gives the same answers.
    The seed must stay secret from whoever chooses the queries (see docs/gate.md).
    """

    threshold: float = DEFAULT_THRESHOLD
    sigma: float = DEFAULT_SIGMA
    budget: int = DEFAULT_BUDGET
    seed: int = 0
    queries: int = 0
    spent: int = 0
    gamma_from: int = 0

    def __post_init__(self) -> None:
        _finite("threshold", self.threshold)
        _finite("sigma", self.sigma)
        if self.threshold < 0:
            raise ConfigError(f"thresholdout threshold must be >= 0, not {self.threshold}.")
        if self.sigma < 0:
            raise ConfigError(f"thresholdout sigma must be >= 0, not {self.sigma}.")
        for name in ("budget", "seed", "queries", "spent", "gamma_from"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"thresholdout {name} must be a non-negative integer, not {v!r}.")
        if self.spent > self.budget or self.gamma_from > self.queries:
            raise ConfigError("thresholdout state is inconsistent (spent > budget or gamma_from > queries).")

    @classmethod
    def create(cls, *, seed: int, threshold: float = DEFAULT_THRESHOLD, sigma: float = DEFAULT_SIGMA,
               budget: int = DEFAULT_BUDGET) -> Thresholdout:
        """A fresh holdout: no query asked, the whole budget left."""
        return cls(threshold=threshold, sigma=sigma, budget=budget, seed=seed)

    @property
    def budget_left(self) -> int:
        return self.budget - self.spent

    @property
    def exhausted(self) -> bool:
        return self.budget_left <= 0

    def noisy_threshold(self) -> float:
        """T-hat = T + gamma, gamma ~ Lap(2 sigma) drawn at the start or at the last overfitting event."""
        return self.threshold + _draws(self.seed, self.gamma_from, self.sigma)[2]

    def to_dict(self) -> dict[str, object]:
        return {"version": 1, "algorithm": "thresholdout", "threshold": self.threshold, "sigma": self.sigma,
                "budget": self.budget, "seed": self.seed, "queries": self.queries, "spent": self.spent,
                "gamma_from": self.gamma_from}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Thresholdout:
        """Inverse of ``to_dict``; ``ConfigError`` for a malformed or inconsistent state."""
        try:
            def integer(key: str, default: int | None = None) -> int:
                v = data.get(key, default)
                if isinstance(v, bool) or not isinstance(v, int):
                    raise TypeError(f"{key} must be an integer")
                return v

            def number(key: str) -> float:
                v = data[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise TypeError(f"{key} must be a number")
                return float(v)

            return cls(threshold=number("threshold"), sigma=number("sigma"), budget=integer("budget"),
                       seed=integer("seed"), queries=integer("queries", 0), spent=integer("spent", 0),
                       gamma_from=integer("gamma_from", 0))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"malformed thresholdout state: {exc}.") from None


@dataclass(frozen=True)
class ThresholdoutAnswer:
    """One recorded query. ``value`` is None when refused (budget exhausted).

    The record holds no raw holdout value and no noise, so logging it in a trailer leaks only
    what the answer itself reveals; ``gitera verify`` recomputes it from the seed and the
    per-row scores.
    """

    query_index: int
    value: float | None
    used_holdout: bool
    exhausted: bool
    budget_left: int
    gamma_from: int

    def to_dict(self) -> dict[str, object]:
        return {"query": self.query_index, "value": self.value, "holdout_used": self.used_holdout,
                "exhausted": self.exhausted, "budget_left": self.budget_left, "gamma_from": self.gamma_from}


def thresholdout_query(state: Thresholdout, train_value: float, holdout_value: float,
                       rng: np.random.Generator | None = None) -> tuple[ThresholdoutAnswer, Thresholdout]:
    """Answer one query (a mean on the climbing rows, and the same mean on the gate rows).

    Query ``k = state.queries + 1``. If the budget is spent the answer is refused
    (``exhausted=True``, ``value=None``). Otherwise draw eta ~ Lap(4 sigma), xi ~ Lap(sigma) and a
    fresh gamma ~ Lap(2 sigma); if ``|holdout - train| > T + gamma_current + eta`` answer
    ``holdout + xi``, spend one unit of budget and make the fresh gamma current; else answer
    ``train``. Draws come from ``default_rng([seed, k])`` unless ``rng`` is given (simulations
    only: an external generator makes the answer impossible to replay, so gitera never passes one).
    """
    train = float(train_value)
    hold = float(holdout_value)
    if not (math.isfinite(train) and math.isfinite(hold)):
        raise ValueError(f"thresholdout values must be finite, got train={train_value!r}, holdout={holdout_value!r}")
    k = state.queries + 1
    if state.exhausted:
        new = replace(state, queries=k)
        return ThresholdoutAnswer(k, None, False, True, 0, state.gamma_from), new
    if rng is None:
        eta, xi, gamma_new = _draws(state.seed, k, state.sigma)
    else:
        e, x, g = rng.laplace(0.0, 1.0, size=3)
        eta, xi, gamma_new = float(e) * 4 * state.sigma, float(x) * state.sigma, float(g) * 2 * state.sigma
    del gamma_new  # recomputed from (seed, k) whenever it is needed
    if abs(hold - train) > state.noisy_threshold() + eta:
        new = replace(state, queries=k, spent=state.spent + 1, gamma_from=k)
        return ThresholdoutAnswer(k, hold + xi, True, False, new.budget_left, k), new
    new = replace(state, queries=k)
    return ThresholdoutAnswer(k, train, False, False, new.budget_left, state.gamma_from), new


def thresholdout_replay(state: Thresholdout, pairs: Iterable[tuple[float, float]]
                        ) -> tuple[list[ThresholdoutAnswer], Thresholdout]:
    """Re-ask a recorded sequence of (train, holdout) queries; for ``gitera verify``."""
    answers: list[ThresholdoutAnswer] = []
    for train, hold in pairs:
        answer, state = thresholdout_query(state, train, hold)
        answers.append(answer)
    return answers, state


# --------------------------------------------------------------------------------------------
# 3. Replication
# --------------------------------------------------------------------------------------------

REPLICATION_SHRINK = 0.5  # the gate must keep at least half the dev gain ...
REPLICATION_Z = 2.0  # ... up to 2 standard errors of the gate gain
#: the reason's words when the reusable holdout answered from the climbing rows (no second number to show)
AGREED = "gate agreed with dev within the holdout's tolerance: reported the dev gain"


@dataclass(frozen=True)
class Replication:
    """Did the sprint's dev gain show up on the gate rows? (all gains oriented "higher is better")."""

    passed: bool
    gate_gain: float
    required: float
    dev_gain: float
    informative: bool  # False when the gate is too small to tell half the gain from none
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "gate_gain": self.gate_gain, "required": self.required,
                "dev_gain": self.dev_gain, "informative": self.informative, "reason": self.reason}


def replication(dev_gain: float, gate_answer: float, gate_baseline: float, noise_floor: float,
                se_gate: float, *, holdout_used: bool = True) -> Replication:
    """The replication rule (docs/gate.md).

    ``gate_gain = gate_answer - gate_baseline``. When the sprint claims a gain
    (``dev_gain > 2 x noise_floor``) it passes when
    ``gate_gain >= max(0, dev_gain / 2 - 2 x se_gate)``: the gate rows are consistent (within 2
    standard errors) with at least half of the dev gain, and never show a loss. A sprint that
    claims no gain passes unless the gate shows a loss beyond 2 standard errors
    (``gate_gain < -2 x se_gate``). ``informative`` is False when ``dev_gain / 2 <= 2 x se_gate``:
    then only the sign is checked, and the reason says the gate has too few rows.

    ``holdout_used=False``: the reusable holdout answered with the dev gain itself (the gate rows
    agreed with dev within its tolerance), so the reason never prints the same number twice as if
    it were two measurements; it says the dev gain was reported (issue 14).
    """
    for name, v in (("dev_gain", dev_gain), ("gate_answer", gate_answer), ("gate_baseline", gate_baseline),
                    ("noise_floor", noise_floor), ("se_gate", se_gate)):
        if not math.isfinite(float(v)):
            raise ValueError(f"replication: {name} must be finite, got {v!r}")
    if noise_floor < 0 or se_gate < 0:
        raise ValueError("replication: noise_floor and se_gate must be >= 0")
    gate_gain = float(gate_answer) - float(gate_baseline)
    tol = REPLICATION_Z * se_gate
    if dev_gain <= 2 * noise_floor:
        required = -tol
        passed = gate_gain >= required
        if not holdout_used:
            reason = f"no dev gain beyond 2x the noise floor ({dev_gain:+.4f}); {AGREED}"
        else:
            reason = (f"no dev gain beyond 2x the noise floor ({dev_gain:+.4f}); gate gain {gate_gain:+.4f} "
                      + ("shows no loss beyond 2 SE" if passed else f"is a loss beyond 2 SE ({required:+.4f})"))
        return Replication(passed, gate_gain, required, float(dev_gain), True, reason)
    target = REPLICATION_SHRINK * dev_gain - tol
    informative = target > 0
    required = max(0.0, target)
    passed = gate_gain >= required
    if passed:
        reason = (f"{AGREED} {gate_gain:+.4f} >= required {required:+.4f}" if not holdout_used
                  else f"gate gain {gate_gain:+.4f} >= required {required:+.4f} (dev gain {dev_gain:+.4f})")
        if not informative:
            reason += "; the gate has too few rows to tell half the gain from none, only the sign was checked"
    else:
        reason = (f"dev gain {dev_gain:+.4f} did not replicate on the gate rows: gate gain {gate_gain:+.4f} "
                  f"< required {required:+.4f}")
    return Replication(passed, gate_gain, required, float(dev_gain), informative, reason)


# --------------------------------------------------------------------------------------------
# 4. Saturation
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Saturation:
    """Whether the iterated arm has stopped improving: the answer, why, the attempts looked at and the best one."""
    saturated: bool
    reason: str
    attempts: int = 0
    best: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {"saturated": self.saturated, "reason": self.reason, "attempts": self.attempts, "best": self.best}


def saturation(scores: Sequence[float | None], statuses: Sequence[str], noise_floor: float, window: int = 6,
               *, sprint: int = 3, higher_is_better: bool = True, stale_window: int | None = None) -> Saturation:
    """Has the loop stopped finding gains? (docs/gate.md)

    ``scores``/``statuses`` are the history in order (``baseline`` entries set the starting
    best, ``keep`` entries move it; ``discard``/``crash``/... do not). Saturated when

    - plateau: the last ``window`` attempts (non-baseline entries) contain no ``keep`` whose gain
      over the best before it exceeds ``2 x noise_floor``; or
    - stale best: the running best has not improved at all over the last two sprints
      (``2 x sprint`` attempts).

    Fewer attempts than the shorter of the two windows: never saturated. ``stale_window`` replaces
    2 x sprint for the stale-best check (a frame's longer `iterate.plateau`).
    """
    if len(scores) != len(statuses):
        raise ValueError("saturation: scores and statuses must have the same length")
    if window < 1 or sprint < 1:
        raise ConfigError(f"saturation window and sprint size must be at least 1 (got {window}, {sprint}).")
    sign = 1.0 if higher_is_better else -1.0
    best: float | None = None
    gains: list[float | None] = []  # per attempt: improvement of the best (None: not a keep)
    for score, status in zip(scores, statuses):
        s = None if score is None or not math.isfinite(float(score)) else sign * float(score)
        if status == "baseline":
            if s is not None and (best is None or s > best):
                best = s
            continue
        if status == "keep" and s is not None:
            gain = s - best if best is not None else math.inf
            gains.append(gain)
            if best is None or s > best:
                best = s
        else:
            gains.append(None)
    n = len(gains)
    best_out = None if best is None else sign * best
    reasons: list[str] = []
    if n >= window:
        recent = gains[-window:]
        if not any(g is not None and g > 2 * noise_floor for g in recent):
            reasons.append(f"plateau: no kept gain beyond 2x the noise floor ({2 * noise_floor:.4f}) "
                           f"in the last {window} attempts")
    stale = stale_window or 2 * sprint
    if n >= stale:
        if not any(g is not None and g > 0 for g in gains[-stale:]):
            reasons.append(f"stale: the best score has not improved in the last two sprints ({stale} attempts)" if stale == 2 * sprint
                           else f"stale: the best score has not improved in the last {stale} attempts (the frame's plateau)")
    if reasons:
        return Saturation(True, "; ".join(reasons), n, best_out)
    if n < min(window, stale):
        return Saturation(False, f"only {n} attempts so far", n, best_out)
    return Saturation(False, "recent attempts still produce gains beyond the noise", n, best_out)


# --------------------------------------------------------------------------------------------
# 5. Outcome
# --------------------------------------------------------------------------------------------

Outcome = Literal["pass", "saturated", "fail"]


@dataclass(frozen=True)
class GateOutcome:
    """A gate's outcome (pass, fail, ...), its reasons and the hardcode scan's hits."""
    outcome: Outcome
    reasons: tuple[str, ...]
    hardcode_hits: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome, "reasons": list(self.reasons), "hardcode_hits": self.hardcode_hits}


def outcome_of(hardcode_hits: int, replication_passed: bool | None, saturated: bool, exhausted: bool) -> str:
    """The rule alone, fail > saturated > pass; ``gitera verify`` re-applies it to a recorded gate."""
    if hardcode_hits > 0 or replication_passed is False:
        return "fail"
    if saturated or exhausted:
        return "saturated"
    return "pass"


def gate_outcome(hits: Sequence[HardcodeHit], replication: Replication | None, saturation: Saturation,
                 thresholdout_exhausted: bool) -> GateOutcome:
    """Combine the checks: fail > saturated > pass (docs/gate.md, "Outcomes").

    - any hardcode hit: ``fail`` (remove it or the arm is killed);
    - replication failed: ``fail`` (``None`` means it was not measured, e.g. no gate rows: the
      outcome can still pass, and its reason says so);
    - saturated, or the holdout budget exhausted: ``saturated`` (lock the latest gate-passed
      iteration for the verdict; fresh gate data is needed to iterate further);
    - otherwise ``pass``.
    """
    kind = outcome_of(len(hits), None if replication is None else replication.passed, saturation.saturated, thresholdout_exhausted)
    fail: list[str] = []
    if hits:
        kinds = sorted({h.kind for h in hits})
        where = ", ".join(f"{h.file}:{h.line_no}" for h in hits[:3]) + (" …" if len(hits) > 3 else "")
        fail.append(f"{len(hits)} hardcode hit(s) ({', '.join(kinds)}) at {where}: remove it or the arm is killed")
    if replication is not None and not replication.passed:
        fail.append(f"replication failed: {replication.reason}")
    if kind == "fail":
        return GateOutcome("fail", tuple(fail), len(hits))
    sat: list[str] = []
    if saturation.saturated:
        sat.append(f"saturated: {saturation.reason}")
    if thresholdout_exhausted:
        sat.append("the reusable holdout's budget is exhausted: the gate rows need fresh data")
    if kind == "saturated":
        return GateOutcome("saturated", tuple(sat), 0)
    if replication is None:
        ok = "no hardcode; not saturated; replication NOT measured (no gate rows)"
    else:
        ok = f"no hardcode; gain replicated on the gate rows ({replication.reason}); not saturated"
    return GateOutcome("pass", (ok,), 0)
