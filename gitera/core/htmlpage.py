"""The pure pieces of the output browser's page (`gitera view`): the per-row table as compact
columns, inline SVG made safe to sit beside other SVGs, and the data embedded in the HTML.

The page is one self-contained file: the template (gitera/templates/view.html: CSS and
JavaScript inline) with the experiment's data as one JSON document in a
``<script type="application/json">`` element. No network, no server needed.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitera.core import rowview

DATA_MARK = "/*GITERA_DATA*/"
TITLE_MARK = "<!--GITERA_TITLE-->"
SCORE_DIGITS = 6


@dataclass
class Strings:
    """Each distinct text once: outputs repeat across arms and attempts, so the rows refer to an index."""

    values: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def add(self, text: Any) -> int:
        if text is None:
            return -1
        s = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, sort_keys=True)
        found = self.index.get(s)
        if found is None:
            found = self.index[s] = len(self.values)
            self.values.append(s)
        return found


@dataclass(frozen=True)
class SubjectRows:
    """One arm's or attempt's per-row records on a split, as the table lists it."""

    key: str  # "arm:v1", "#3", "test:v1"
    label: str
    kind: str  # "arm", "attempt" or "test"
    records: Sequence[Mapping[str, Any]]
    note: str = ""


def _column(values: Sequence[Any], empty: Any) -> list[Any] | None:
    """A column of the table, or None when every value is ``empty`` (nothing to ship)."""
    return None if all(v == empty for v in values) else list(values)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, SCORE_DIGITS)


def split_table(ids: Sequence[str], rows: Sequence[Mapping[str, Any]], *, inputs: Sequence[str], reference: str | None,
                slices: Sequence[str], subjects: Sequence[SubjectRows], direction: str, strings: Strings) -> dict[str, Any]:
    """One split's rows (input, reference, slices) and each subject's score, output, error and
    whether it got the row wrong, as columns aligned with ``ids`` (texts as indexes into ``strings``)."""
    by_id = {str(r.get("id")): r for r in rows}
    binary = rowview.is_binary(r for s in subjects for r in s.records)
    table: dict[str, Any] = {
        "ids": list(ids), "inputs": list(inputs), "reference": reference, "slices": list(slices), "binary": binary,
        "input": {c: [strings.add(by_id.get(i, {}).get(c)) for i in ids] for c in inputs},
        "ref": [strings.add(by_id.get(i, {}).get(reference)) for i in ids] if reference else None,
        "slice": {c: [strings.add(by_id.get(i, {}).get(c)) for i in ids] for c in slices},
        "subjects": [],
    }
    for s in subjects:
        sides = rowview.sides(s.records, binary, direction)
        got = [sides.get(i) for i in ids]
        table["subjects"].append({
            "key": s.key, "label": s.label, "kind": s.kind, "note": s.note,
            "score": [_round(g.score) if g else None for g in got],
            "wrong": [None if g is None or g.wrong is None else int(g.wrong) for g in got],
            "failed": [g.failed if g else 1 for g in got],  # a row with no record at all was not scored
            "output": _column([strings.add(g.output) if g else -1 for g in got], -1),
            "finding": _column([strings.add(g.finding) if g else -1 for g in got], -1),
            "error": _column([strings.add(g.error if g.failed else None) if g else strings.add("no result for this row") for g in got], -1),
        })
    return table


_ID_RE = re.compile(r'\bid="([^"]+)"')
_REF_RE = re.compile(r'(url\(#|href="#)([^")]+)')


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG file's text made fit to inline in a page beside other SVGs: no XML prolog, and every
    id (and every reference to one) prefixed, so two charts' clip paths cannot clash."""
    start = svg.find("<svg")
    body = svg[start:] if start >= 0 else svg
    body = _ID_RE.sub(lambda m: f'id="{prefix}-{m.group(1)}"', body)
    return _REF_RE.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", body)


def embed_json(data: Any) -> str:
    """JSON that cannot end the <script> element holding it: every '<' is written as \\u003c
    (JSON has '<' only inside strings, where the escape means the same character)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def fill(template: str, title: str, data: Any) -> str:
    """The page: the template with its title and data in place."""
    if DATA_MARK not in template or TITLE_MARK not in template:
        raise ValueError("the page template lacks its data or title mark")
    return template.replace(TITLE_MARK, html.escape(title)).replace(DATA_MARK, embed_json(data))
