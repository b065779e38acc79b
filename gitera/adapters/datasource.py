"""Reading the rows an experiment is split from (CSV, TSV, JSONL, Parquet, Arrow), and writing JSONL.

Formats (chosen by the file's extension; Parquet and Arrow, including a Hugging Face
save-to-disk folder, are described in adapters/arrowdata.py):

- ``.csv`` / ``.tsv``: a header row, then one record per row (quoted fields may span lines).
  Every value is a string. Blank lines are skipped. A record with more or fewer fields than
  the header is refused.
- ``.jsonl`` / ``.ndjson``: one JSON object per line; values keep their JSON type (string,
  number, true/false, null, or nested). Blank lines are skipped. ``NaN``/``Infinity`` are
  refused (not JSON).

Encoding: UTF-8 only; a leading byte-order mark is ignored. Anything else is refused with the
line and byte offset of the first invalid byte.

Ids: with ``id_column`` the value of that column (a string or a whole number, never empty,
never repeated). Without it, each row's id is derived from its content: ``"r"`` + the first
12 hex digits of the SHA-256 of the row's canonical JSON (keys sorted, no spaces, UTF-8), so
the same row gets the same id in CSV or JSONL and in any file order; two identical rows then
have the same id and are refused like any duplicate id.

Every refusal is a :class:`gitera.core.errors.ConfigError` naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, overload

from gitera.core.errors import ConfigError
from gitera.core.results import UNICODE_BREAKS

Row = dict[str, object]

BOM = b"\xef\xbb\xbf"
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)  # stateless
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Table:
    """The rows of one data file, in file order, with their ids and first line numbers."""

    path: Path
    format: str  # "csv" | "tsv" | "jsonl"
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    ids: tuple[str, ...]
    lines: tuple[int, ...]
    id_column: str | None

    def __len__(self) -> int:
        return len(self.rows)

    def line_of(self, row_id: str) -> int:
        """The line a row starts on (``ValueError`` for an unknown id)."""
        return self.lines[self.ids.index(row_id)]


def derive_id(row: Mapping[str, object]) -> str:
    """``r`` + 12 hex digits of sha256 over the row's canonical JSON (see the module doc)."""
    blob = _CANONICAL.encode(row)
    return "r" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def is_missing(value: object) -> bool:
    """A required column has no value: absent, null, or an empty/blank string."""
    return value is None or (isinstance(value, str) and not value.strip())


def load_rows(path: Path, id_column: str | None, required_columns: Sequence[str]) -> Table:
    """Read every row of ``path``; refuse bad encoding, structure, ids and missing values."""
    scan = RowScan(Path(path), id_column, required_columns)
    rows: list[Row] = []
    lines: list[int] = []
    ids: list[str] = []
    for line, rid, row in scan:
        rows.append(row)
        lines.append(line)
        ids.append(rid)
    return Table(scan.path, scan.format, tuple(scan.columns), tuple(rows), tuple(ids), tuple(lines), id_column)


class RowScan:
    """The rows of a data file, streamed: iterate for (line, id, row), in file order, as often as
    needed (each pass reads the file again). Ids are checked as in `load_rows`; `columns` is
    complete once a pass has ended (JSONL has no header). Parquet and Arrow sources
    (adapters/arrowdata.py) number rows, not lines, from 1."""

    def __init__(self, path: Path, id_column: str | None, required_columns: Sequence[str]) -> None:
        from gitera.adapters import arrowdata

        self.path = Path(path)
        self.id_column = id_column
        self.required = list(dict.fromkeys([*required_columns, *([id_column] if id_column else [])]))
        self.arrow = arrowdata.is_arrow_source(self.path)
        self.format = "" if self.arrow else _format_of(self.path)
        self.unit = "row" if self.arrow else "line"
        self.columns: list[str] = []

    def __iter__(self) -> Iterator[tuple[int, str, Row]]:
        first_line: dict[str, int] = {}
        id_column = self.id_column
        path = self.path
        for line, row in self._records():
            rid = derive_id(row) if id_column is None else _id_value(path, line, id_column, row[id_column], self.unit)
            earlier = first_line.get(rid)
            if earlier is not None:
                what = (f"column {id_column!r}" if id_column else
                        "derived id (the rows are identical; remove one or add an id column)")
                raise ConfigError(f"{path}: {self.unit} {line} repeats id {rid!r} of {self.unit} {earlier} ({what}); "
                                  "every row needs a unique id.")
            first_line[rid] = line
            yield line, rid, row
        if not first_line:
            raise ConfigError(f"{path}: the file has no data rows; point data.source at the real rows.")

    def _records(self) -> Iterator[tuple[int, Row]]:
        if self.arrow:
            from gitera.adapters import arrowdata

            self.format, columns, records = arrowdata.read(self.path, self.required)
            self.columns = columns
            yield from records
            return
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: no such data file; check data.source in the frame or --data.") from None
        except IsADirectoryError:
            raise ConfigError(f"{self.path}: is a folder; point data.source at a data file.") from None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot be read ({exc.strerror}); check the path and its permissions.") from None
        with fh:
            if self.format == "jsonl":
                names, records = _jsonl_records(self.path, fh, self.required)
            else:
                names, records = _csv_records(self.path, fh, CSV_SUFFIXES["." + self.format], self.required)
            yield from records
            self.columns = list(names)


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return suffix[1:]
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    raise ConfigError(f"{path}: unknown data format {suffix or '(no extension)'!r}; "
                      "use a .csv, .tsv, .jsonl, .parquet or .arrow file, or a folder saved by datasets' save_to_disk.")


def _id_value(path: Path, line: int, column: str, value: object, unit: str = "line") -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{path}: {unit} {line}, column {column!r}: an id must be a string or a whole number, "
                      f"not {type(value).__name__}; fix the id column.")


def _decoded_lines(path: Path, fh: IO[bytes]) -> Iterator[tuple[int, str]]:
    """(line number, text) for each physical line, decoding strictly as UTF-8."""
    offset = 0
    for number, raw in enumerate(fh, 1):
        start = 0
        if number == 1 and raw.startswith(BOM):
            start = len(BOM)
        try:
            text = raw[start:].decode("utf-8") if start else raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            at = offset + start + exc.start
            bad = raw[start + exc.start]
            raise ConfigError(f"{path}: line {number}, byte offset {at} (0x{bad:02x}) is not valid UTF-8; "
                              "re-save the file as UTF-8.") from None
        offset += len(raw)
        yield number, text


def _missing_value(path: Path, line: int, column: str) -> ConfigError:
    return ConfigError(f"{path}: line {line} has no value in column {column!r}, which the frame requires; "
                       "fill it in or drop the row.")


def _csv_records(path: Path, fh: IO[bytes], delimiter: str,
                 required: Sequence[str]) -> tuple[Iterable[str], Iterator[tuple[int, Row]]]:
    numbered = _decoded_lines(path, fh)
    current = [0]

    def text_lines() -> Iterator[str]:
        for number, text in numbered:
            current[0] = number
            if "\r" in text and not text.endswith("\r\n") or text.count("\r") > 1:
                yield from _LONE_CR.split(text)  # what newline="" does: a lone \r ends a line for csv
            else:
                yield text

    reader = csv.reader(text_lines(), delimiter=delimiter, strict=True)

    def next_record() -> list[str] | None:
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise ConfigError(f"{path}: line {current[0]} is not valid CSV ({exc}); fix the quoting.") from None

    header: list[str] | None = None
    while header is None:
        record = next_record()
        if record is None:
            raise ConfigError(f"{path}: the file is empty; it needs a header row and data rows.")
        if record:
            header = [h.strip() for h in record]
    header_line = current[0]
    seen: set[str] = set()
    for i, name in enumerate(header, 1):
        if not name:
            raise ConfigError(f"{path}: line {header_line}, column {i} of the header has no name; "
                              "name every column (or remove the trailing delimiter).")
        if name in seen:
            raise ConfigError(f"{path}: line {header_line}: column {name!r} appears twice in the header; "
                              "give each column a unique name.")
        seen.add(name)
    for col in required:
        if col not in seen:
            raise ConfigError(f"{path}: line {header_line}: the header has no column {col!r}, which the frame "
                              f"names; columns are {', '.join(header)}.")
    required_idx = [(header.index(col), col) for col in required]
    width = len(header)

    def records() -> Iterator[tuple[int, Row]]:
        end = header_line
        while True:
            record = next_record()
            if record is None:
                return
            start, end = end + 1, current[0]
            if not record:
                continue
            if len(record) != width:
                raise ConfigError(f"{path}: line {start} has {len(record)} fields but the header has {width}; "
                                  "quote values that contain the delimiter.")
            for idx, col in required_idx:
                if not record[idx].strip():
                    raise _missing_value(path, start, col)
            yield start, dict(zip(header, record))

    return header, records()


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _jsonl_records(path: Path, fh: IO[bytes],
                   required: Sequence[str]) -> tuple[Iterable[str], Iterator[tuple[int, Row]]]:
    columns: dict[str, None] = {}  # filled while the records are read (JSONL has no header)
    decoder = json.JSONDecoder(parse_constant=_reject_constant)

    def records() -> Iterator[tuple[int, Row]]:
        for number, text in _decoded_lines(path, fh):
            if not text.strip():
                continue
            try:
                obj = decoder.decode(text.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: line {number}, character {exc.pos + 1} is not valid JSON ({exc.msg}); "
                                  "write one JSON object per line.") from None
            except (ValueError, RecursionError) as exc:
                raise ConfigError(f"{path}: line {number} is not valid JSON ({exc}); "
                                  "write one JSON object per line.") from None
            if not isinstance(obj, dict):
                raise ConfigError(f"{path}: line {number} is a JSON {type(obj).__name__}, not an object; "
                                  "write one JSON object per line.")
            for key in obj:
                if key not in columns:
                    columns[key] = None
            for col in required:
                if is_missing(obj.get(col)):
                    if col not in columns:
                        raise ConfigError(f"{path}: line {number} has no field {col!r}, which the frame names; "
                                          f"fields are {', '.join(columns)}.")
                    raise _missing_value(path, number, col)
            yield number, obj

    return columns, records()


def write_jsonl(rows: Iterable[Mapping[str, object]], path: Path) -> int:
    """Write one compact JSON object per line, atomically (temp file + rename); return the count."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            for row in rows:
                line = _COMPACT.encode(row)
                for ch in UNICODE_BREAKS:  # readers that split at them (str.splitlines) would break the row
                    if ch in line:
                        line = line.replace(ch, f"\\u{ord(ch):04x}")
                out.write(line)
                out.write("\n")
                count += 1
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count


def write_parts(records: Iterable[tuple[str, Mapping[str, object]]], paths: Mapping[str, Path]) -> dict[str, int]:
    """Stream (part, row) pairs into one JSONL file per part (the format of `write_jsonl`); rows per part.
    A split of a million rows never holds them."""
    handles = {part: open(path, "w", encoding="utf-8", newline="\n") for part, path in paths.items()}
    counts = dict.fromkeys(paths, 0)
    try:
        for part, row in records:
            handles[part].write(_COMPACT.encode(row))
            handles[part].write("\n")
            counts[part] += 1
    finally:
        for fh in handles.values():
            fh.close()
    return counts


def read_jsonl(path: Path) -> Iterator[dict[str, object]]:
    """The rows of a JSONL file gitera wrote (`write_jsonl`, `write_parts`), one at a time."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


class Columns(Sequence[Mapping[str, object]]):
    """A few columns of every row, compactly (a tuple of interned values per row): what the split's
    stratification and audit read, without the rows' text. Each item is a read-only row view."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.positions = {n: i for i, n in enumerate(self.names)}
        self.values: list[tuple[object, ...]] = []
        self._interned: dict[object, object] = {}

    def append(self, row: Mapping[str, object]) -> None:
        keep = self._interned.setdefault
        self.values.append(tuple(keep(v, v) if isinstance(v, (str, int, float)) else v for v in (row.get(n) for n in self.names)))

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, i: int) -> Mapping[str, object]: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Mapping[str, object]]: ...

    def __getitem__(self, i: int | slice) -> Mapping[str, object] | Sequence[Mapping[str, object]]:
        if isinstance(i, slice):
            return [_RowView(self.positions, v) for v in self.values[i]]
        return _RowView(self.positions, self.values[i])


class _RowView(Mapping[str, object]):
    __slots__ = ("_index", "_values")

    def __init__(self, index: Mapping[str, int], values: tuple[object, ...]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: str) -> object:
        return self._values[self._index[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)
