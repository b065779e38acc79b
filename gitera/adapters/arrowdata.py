"""Parquet files and Arrow data (a Hugging Face `datasets` save-to-disk folder) read through pyarrow.

pyarrow is an optional extra (`pip install 'gitera[parquet]'`), imported only here, only when
such a source is read. Rows are streamed: a Parquet file one row group at a time, an Arrow file
one record batch at a time, turned into Python rows BATCH_ROWS at a time (docs/scale.md states
the memory bound).

Sources (chosen by adapters/datasource.py):

- ``*.parquet`` / ``*.pq``: one Parquet file.
- ``*.arrow``: one Arrow IPC file, stream or file format (what `datasets` writes is the stream
  format).
- a folder saved by ``datasets.Dataset.save_to_disk``: its ``state.json`` lists the
  ``data-NNNNN-of-NNNNN.arrow`` files in order; a folder with no ``state.json`` is read as its
  ``*.arrow`` files in name order. A ``DatasetDict`` folder (``dataset_dict.json``) is refused
  with the names of its splits: point data.source at one of them.

Values become what a JSON row can hold, as ``datasets`` gives them back: strings, numbers,
true/false, null, lists and mappings; a ``ClassLabel`` stays its integer, as in ``datasets``.
Dates and times become ISO 8601 text, durations seconds, decimals their exact text. NaN and
infinities are refused (JSON has no such number), and so is a binary column (a JSON row cannot
carry bytes): drop or convert it first.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gitera.core.errors import ConfigError

BATCH_ROWS = 1024  # rows turned into Python objects at a time
ARROW_SUFFIXES = (".arrow",)
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_arrow_source(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in (*ARROW_SUFFIXES, *PARQUET_SUFFIXES)


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError("reading Parquet or Arrow data needs pyarrow: pip install 'gitera[parquet]'.") from None
    return pyarrow


def arrow_files(path: Path) -> list[Path]:
    """The Arrow files of a `datasets` save-to-disk folder, in the order `datasets` reads them."""
    if (path / "dataset_dict.json").exists():
        try:
            splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits") or []
        except (OSError, ValueError, AttributeError):
            splits = []
        names = ", ".join(str(s) for s in splits) or "(none listed)"
        raise ConfigError(f"{path}: is a DatasetDict folder with splits {names}; point data.source at one split's folder, "
                          f"e.g. {path / str(splits[0]) if splits else path / 'train'}.")
    state = path / "state.json"
    if state.exists():
        try:
            listed = [str(f["filename"]) for f in json.loads(state.read_text(encoding="utf-8"))["_data_files"]]
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(f"{state}: is not a `datasets` state file (no _data_files list); save the dataset again with save_to_disk.") from None
        files = [path / name for name in listed]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"{path}: state.json lists {missing[0]}, which is not in the folder; copy the whole saved folder.")
        return files
    files = sorted(p for p in path.iterdir() if p.suffix == ".arrow" and p.is_file())
    if not files:
        raise ConfigError(f"{path}: is a folder without a Hugging Face state.json or any .arrow file; point data.source at a "
                          "Parquet file, an .arrow file or a folder saved by datasets' save_to_disk.")
    return files


def _batches(path: Path) -> tuple[str, list[str], Iterator[Any]]:
    """(format, column names, record batches) of a Parquet file, an Arrow file or a saved folder."""
    pa = _pyarrow()
    if path.is_dir():
        files = arrow_files(path)
        schema = _open_arrow(pa, files[0])[0]
        return "arrow", list(schema.names), (b for f in files for b in _open_arrow(pa, f)[1])
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            pf = pa.parquet.ParquetFile(str(path))
        except (OSError, pa.ArrowException) as exc:
            raise ConfigError(f"{path}: is not a readable Parquet file ({exc}); check data.source.") from None
        return "parquet", list(pf.schema_arrow.names), pf.iter_batches(batch_size=BATCH_ROWS)
    schema, batches = _open_arrow(pa, path)
    return "arrow", list(schema.names), batches


def _open_arrow(pa: Any, path: Path) -> tuple[Any, Iterator[Any]]:
    """An Arrow IPC file in either format, read batch by batch (not memory-mapped: the pages a
    mapping touches would stay in the process's resident memory)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic == b"ARROW1":
            reader = pa.ipc.open_file(pa.OSFile(str(path)))
            return reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
        stream = pa.ipc.open_stream(pa.OSFile(str(path)))
        return stream.schema, iter(stream)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such data file; check data.source in the frame or --data.") from None
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{path}: is not a readable Arrow file ({exc}); check data.source.") from None


def read(path: Path, required: Sequence[str]) -> tuple[str, list[str], Iterator[tuple[int, dict[str, object]]]]:
    """(format, columns, (row number from 1, row) for every row), refusing what a JSON row cannot hold."""
    fmt, columns, batches = _batches(path)
    missing = [c for c in required if c not in columns]
    if missing:
        raise ConfigError(f"{path}: has no column {missing[0]!r}, which the frame names; columns are {', '.join(columns)}.")

    def rows() -> Iterator[tuple[int, dict[str, object]]]:
        number = 0
        for batch in batches:
            for start in range(0, batch.num_rows, BATCH_ROWS):
                for raw in batch.slice(start, BATCH_ROWS).to_pylist():
                    number += 1
                    row = {str(k): _json_value(v, path, number, str(k)) for k, v in raw.items()}
                    for col in required:
                        value = row.get(col)
                        if value is None or (isinstance(value, str) and not value.strip()):
                            raise ConfigError(f"{path}: row {number} has no value in column {col!r}, which the frame requires; "
                                              "fill it in or drop the row.")
                    yield number, row

    return fmt, columns, rows()


def _json_value(value: Any, path: Path, row: int, column: str) -> object:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{path}: row {row}, column {column!r} is {value}, which JSON cannot hold; "
                              "replace it with null or a number.")
        return value
    if isinstance(value, dict):
        return {str(k): _json_value(v, path, row, column) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value):
            return {k: _json_value(v, path, row, column) for k, v in value}  # an Arrow map of text keys
        return [_json_value(v, path, row, column) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        raise ConfigError(f"{path}: row {row}, column {column!r} holds binary data, which a JSON row cannot carry; "
                          "drop the column or convert it to text before splitting.")
    raise ConfigError(f"{path}: row {row}, column {column!r} holds a {type(value).__name__}, which a JSON row cannot carry; "
                      "convert it to text or numbers first.")
