"""Data people keep: Parquet files and Hugging Face save-to-disk folders, read through pyarrow and
streamed by `gitera split` (issue 15). The folders are written by the real `datasets` library."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.adapters import datasource  # noqa: E402
from gitera.core.errors import ConfigError, Exit  # noqa: E402
from tests.conftest import git, run_gitera  # noqa: E402
from tests.helpers import banking_project, read_gate_rows, read_test_rows  # noqa: E402


def _quiet() -> None:
    datasets.disable_progress_bars()


def hf_save(rows: dict[str, list[Any]], path: Path, features: Any = None, shards: int = 1) -> None:
    _quiet()
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(path), num_shards=shards)


def test_a_hugging_face_folder_reads_as_datasets_reads_it(tmp_path: Path) -> None:
    n = 2500
    features = datasets.Features({
        "text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"]), "score": datasets.Value("float64"),
        "tags": datasets.Sequence(datasets.Value("string")), "meta": {"source": datasets.Value("string"), "turns": datasets.Value("int32")},
        "at": datasets.Value("timestamp[s]"), "note": datasets.Value("string"),
    })
    rows = {
        "text": [f"message {i} about card {i % 7}" for i in range(n)], "label": [i % 2 for i in range(n)],
        "score": [i / 8 for i in range(n)], "tags": [[f"t{i % 3}"] * (i % 3) for i in range(n)],
        "meta": [{"source": "chat" if i % 2 else "mail", "turns": i % 5} for i in range(n)],
        "at": [dt.datetime(2026, 1, 1) + dt.timedelta(minutes=i) for i in range(n)], "note": [None if i % 4 else "vip" for i in range(n)],
    }
    folder = tmp_path / "saved"
    hf_save(rows, folder, features, shards=3)  # three arrow files, listed in state.json
    assert len(list(folder.glob("data-*.arrow"))) == 3
    table = datasource.load_rows(folder, None, ["text", "label"])
    expected = [{**r, "at": r["at"].isoformat()} for r in datasets.load_from_disk(str(folder))]
    assert [dict(r) for r in table.rows] == expected  # what `datasets` gives back, in its order (ClassLabel: the integer)
    assert table.format == "arrow" and table.columns == tuple(features)
    assert table.ids == tuple(datasource.derive_id(r) for r in expected)


def test_a_dataset_dict_folder_is_refused_with_its_splits(tmp_path: Path) -> None:
    _quiet()
    ds = datasets.Dataset.from_dict({"text": ["a b", "c d"]})
    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ConfigError, match=r"is a DatasetDict folder with splits train, validation; point data.source at one split's folder"):
        datasource.load_rows(tmp_path / "dd", None, [])
    assert len(datasource.load_rows(tmp_path / "dd" / "validation", None, [])) == 2


def test_parquet_row_groups_stream_in_order_with_types_kept(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    table = pa.table({"row_id": list(range(5000)), "text": [f"row {i}" for i in range(5000)], "amount": [i * 0.25 for i in range(5000)],
                      "ok": [i % 3 == 0 for i in range(5000)], "day": [dt.date(2026, 1, 1 + i % 28) for i in range(5000)]})
    pq.write_table(table, path, row_group_size=700)
    assert pq.ParquetFile(path).num_row_groups == 8
    got = datasource.load_rows(path, "row_id", ["text"])
    assert got.format == "parquet" and got.ids == tuple(str(i) for i in range(5000)) and got.lines == tuple(range(1, 5001))
    assert got.rows[701] == {"row_id": 701, "text": "row 701", "amount": 175.25, "ok": False, "day": "2026-01-02"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.fixed_dictionaries({
    "text": st.one_of(st.none(), st.text(max_size=30)), "n": st.one_of(st.none(), st.integers(-2**40, 2**40)),
    "x": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)), "flag": st.booleans(),
    "items": st.lists(st.integers(0, 9), max_size=3),
}), min_size=1, max_size=40), st.integers(1, 9))
def test_parquet_round_trip_equals_what_pyarrow_wrote(tmp_path: Path, rows: list[dict[str, Any]], group: int) -> None:
    path = tmp_path / "prop.parquet"
    rows = [{"row_id": i, **r} for i, r in enumerate(rows)]
    schema = pa.schema([("row_id", pa.int64()), ("text", pa.string()), ("n", pa.int64()), ("x", pa.float64()), ("flag", pa.bool_()), ("items", pa.list_(pa.int64()))])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=group)
    scanned = list(datasource.RowScan(path, "row_id", []))
    assert [r for _, _, r in scanned] == rows
    assert [(line, rid) for line, rid, _ in scanned] == [(i + 1, str(i)) for i in range(len(rows))]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_parquet_or_arrow_give_one_clear_error(tmp_path: Path, blob: bytes) -> None:
    for name in ("junk.parquet", "junk.arrow"):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ConfigError, match=r"is not a readable (Parquet|Arrow) file"):
            datasource.load_rows(tmp_path / name, None, [])


@pytest.mark.parametrize(("column", "values", "needle"), [
    ("blob", [b"\x00\x01", b"x"], "row 1, column 'blob' holds binary data, which a JSON row cannot carry"),
    ("x", [1.0, math.nan], "row 2, column 'x' is nan, which JSON cannot hold"),
    ("text", ["a b", None], "row 2 has no value in column 'text', which the frame requires"),
])
def test_values_a_json_row_cannot_hold_are_refused_by_row_and_column(tmp_path: Path, column: str, values: list[Any], needle: str) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], column: values} if column != "text" else {"id": ["a", "b"], "text": values}), path)
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        datasource.load_rows(path, "id", ["text"] if column == "text" else [])


def _banking_as(repo: Path, fmt: str) -> str:
    """The bundled banking rows (all text) written as `fmt`; the path to give `gitera split --data`."""
    with (repo / "data/tickets.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = {c: [r[c] for r in rows] for c in rows[0]}
    if fmt == "parquet":
        pq.write_table(pa.table(columns), repo / "data/tickets.parquet", row_group_size=300)
        return "data/tickets.parquet"
    hf_save(columns, repo / "data/tickets-hf", shards=2)
    return "data/tickets-hf"


def test_the_same_rows_split_the_same_from_csv_parquet_and_a_hugging_face_folder(tmp_path: Path) -> None:
    splits = {}
    for fmt in ("csv", "parquet", "hf"):
        root = tmp_path / fmt
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        banking_project(root)
        args = ["split"] if fmt == "csv" else ["split", "--data", _banking_as(root, fmt)]
        r = run_gitera(root, *args)
        assert r.code == 0, r.err
        part_files = {p: (root / f".gitera/banking/split/{p}.jsonl").read_bytes() for p in ("train", "dev")}
        manifest = json.loads((root / ".gitera/banking/split/manifest.json").read_text())
        splits[fmt] = (part_files, read_gate_rows(root), read_test_rows(root), manifest["split"], manifest["audit"], manifest["leak"]["columns"],
                       {k: manifest["pins"][k] for k in ("train", "dev")}, manifest["source"]["format"])
    assert splits["parquet"][:7] == splits["csv"][:7] == splits["hf"][:7]  # gate and test pins are salted by their random keys
    assert [s[7] for s in splits.values()] == ["csv", "parquet", "arrow"]


def _peak_rss_of_split(root: Path, rows: int, text_bytes: int) -> float:
    """Peak RSS (MiB) of `gitera split` in its own process, for `rows` rows of `text_bytes` of text each."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "harness.py").write_text("print('SCORE: 1')\n")
    (root / "data").mkdir()
    filler = "lorem ipsum dolor sit amet " * (text_bytes // 27 + 1)
    pq.write_table(pa.table({"row_id": [f"r{i:06d}" for i in range(rows)], "text": [f"{i} {filler[:text_bytes]}" for i in range(rows)],
                             "tier": [("a", "b", "c")[i % 3] for i in range(rows)]}), root / "data/rows.parquet", row_group_size=1000)
    (root / ".gitignore").write_text("data/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "data")
    assert run_gitera(root, "init", "mem").code == 0
    (root / ".gitera/mem/frame.yaml").write_text(
        "question: Does b beat a?\nhypothesis: b is better.\nbaseline: {arm: a, ref: 'harness.py:1'}\n"
        "arms: {a: {change: current}, b: {change: better}}\n"
        "data: {source: data/rows.parquet, id: row_id, slices: [tier], stratify: [tier], seed: 1}\n"
        "metric: {primary: {name: accuracy, direction: higher}, trials: 3}\n"
        "threshold: {effect: 0.05, slice_loss_floor: 0.02}\neval: {command: python harness.py}\nlocked: [harness.py]\n")
    assert run_gitera(root, "lock").code == 0
    code = ("import resource, subprocess, sys\n"
            "subprocess.run([sys.executable, '-m', 'gitera', 'split', '--accept-underpowered'], check=True, stdout=subprocess.DEVNULL)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


def test_the_split_holds_no_more_rows_of_text_as_the_file_grows(tmp_path: Path) -> None:
    """5,000 and then 20,000 rows of 2,000 bytes of text each: holding the rows would take well over
    the 30 MB of extra text; the streamed split holds one batch of rows and, per row, only its id and
    the stratification columns (a few hundred bytes), so its peak grows by a fraction of that."""
    small = _peak_rss_of_split(tmp_path / "small", 5_000, 2_000)
    large = _peak_rss_of_split(tmp_path / "large", 20_000, 2_000)
    assert large - small < 15, (small, large)


def test_split_refuses_bad_arrow_data_in_one_sentence(repo: Path) -> None:
    banking_project(repo)
    (repo / "data/empty-folder").mkdir()
    r = run_gitera(repo, "split", "--data", "data/empty-folder")
    assert r.code == Exit.USAGE and "Traceback" not in r.err
    assert "is a folder without a Hugging Face state.json or any .arrow file" in r.err
    pq.write_table(pa.table({"row_id": ["1", "2"], "text": ["a", "b"]}), repo / "data/narrow.parquet")
    r = run_gitera(repo, "split", "--data", "data/narrow.parquet")
    assert r.code == Exit.USAGE and "has no column" in r.err and "columns are row_id, text" in r.err
    assert git(repo, "log", "-1", "--format=%s").startswith("gitera lock")  # nothing committed
