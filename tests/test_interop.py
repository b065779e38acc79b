"""Interop with autoresearch (issue 13): `gitera log --format results-tsv` writes its results.tsv, and
`gitera import` brings one onto an experiment branch as unscored history, never evidence."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gitera.core.errors import ConfigError
from gitera.core.resultstsv import TsvRow, format_results_tsv, parse_results_tsv, status_of
from tests.conftest import git, run_gitera
from tests.helpers import fix_holdout_seed, synthetic_project

HEADER = "commit\taccuracy\tmemory_gb\tstatus\tdescription"


def new_experiment_like(repo: Path, tag: str, source: str = "syn") -> None:
    """From main, a second experiment with the first one's frame, locked."""
    frame = git(repo, "show", f"autoexp/{source}:.gitera/{source}/frame.yaml")
    git(repo, "switch", "-q", "main")
    assert run_gitera(repo, "init", tag).code == 0
    (repo / f".gitera/{tag}/frame.yaml").write_text(frame)
    r = run_gitera(repo, "lock")
    assert r.code == 0, r.err


def test_results_tsv_round_trips_through_import_into_a_new_experiment_that_verifies(repo: Path) -> None:
    synthetic_project(repo, rows=300)
    fix_holdout_seed(repo)
    for text, hyp in (("accuracy: 0.7\n", "sharper\trules"), ("accuracy: 0.65\n", "looser rules"), ("crash\n", "a broken edit")):
        (repo / "policy_b.txt").write_text(text)
        assert run_gitera(repo, "iterate", "-m", hyp).code in (0, 5)
    exported = run_gitera(repo, "log", "--format", "results-tsv")
    assert exported.code == 0, exported.err
    lines = exported.out.splitlines()
    assert lines[0] == HEADER and len(lines) == 5
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[3] for r in rows] == ["keep", "keep", "discard", "crash"]
    assert rows[0][4] == "baseline" and rows[1][4] == "sharper rules"  # one line: the tab became a space
    assert all(len(r[0]) == 7 and r[2] == "0.0" for r in rows) and rows[3][1] == "0.000000"
    attempts = [json.loads(x) for x in run_gitera(repo, "log", "--format", "jsonl").out.splitlines()[1:]]
    assert [float(r[1]) for r in rows[1:3]] == [round(a["score"], 6) for a in attempts[:2]]
    results = repo.parent / "results.tsv"
    results.write_text(exported.out)

    new_experiment_like(repo, "syn2")
    r = run_gitera(repo, "import", str(results))
    assert r.code == 0, r.out + r.err
    assert "Imported 4 rows of results.tsv into syn2" in r.out and "2 keep, 1 discard, 1 crash; 4 of their commits are in this repository" in r.out
    record = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Import,valueonly)"))
    assert record["scored"] is False and record["evidence"] is False and record["rows"] == 4
    assert record["counts"] == {"keep": 2, "discard": 1, "crash": 1}
    # the round trip: the new experiment writes back exactly the file it imported
    assert run_gitera(repo, "log", "--format", "results-tsv").out == exported.out
    # marked as history everywhere gitera shows it, counted nowhere
    row = next(line for line in run_gitera(repo, "log").out.splitlines() if line.startswith("import "))
    assert row.split()[2] == "imported" and row.endswith("4 rows of results.tsv: unscored history, never evidence"), row
    status = json.loads(run_gitera(repo, "status", "--json").out)
    assert status["imported"]["rows"] == 4 and status["imported"]["evidence"] is False and "loop" not in status
    assert len(run_gitera(repo, "log", "--format", "jsonl").out.splitlines()) == 1  # the config line, no attempt
    r = run_gitera(repo, "verify")
    assert r.code == 0, r.out
    assert "ok   imported history is recorded as unscored, never evidence" in r.out
    assert "ok   imported history unchanged since its import" in r.out


def test_imported_history_is_never_evidence_and_tampering_with_it_is_caught(repo: Path) -> None:
    synthetic_project(repo, rows=150)
    fix_holdout_seed(repo)
    fake = repo.parent / "results.tsv"
    fake.write_text(f"{HEADER}\nabcdef1\t0.987654\t44.0\tkeep\tIMPORTED-MARKER a wonderful result\n"
                    f"abcdef2\t0.000000\t0.0\tcrash\tIMPORTED-MARKER a crash\n")
    assert run_gitera(repo, "import", str(fake)).code == 0
    assert run_gitera(repo, "run").code == 0
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.out + r.err
    verdict = json.loads((repo / ".gitera/syn/verdict.json").read_text())
    for path in [repo / ".gitera/syn/verdict.json", *Path(repo / str(verdict["conclusion"])).parent.glob("*")]:
        if path.suffix in (".json", ".md", ".svg"):
            text = path.read_text()
            assert "IMPORTED-MARKER" not in text and "0.987654" not in text and "0.9877" not in text, path
    assert run_gitera(repo, "verify").code == 0
    r = run_gitera(repo, "abandon", "-m", "too late")
    assert r.code == 3 and "reached its verdict" in r.err  # concluded, not abandoned

    # editing the imported history afterwards (hooks skipped) is caught
    (repo / ".gitera/syn/imported/results-001.tsv").write_text(fake.read_text().replace("0.987654", "0.999999"))
    git(repo, "commit", "-qa", "--no-verify", "-m", "a better past")
    r = run_gitera(repo, "verify")
    assert r.code == 1 and "FAIL imported history unchanged since its import: .gitera/syn/imported/results-001.tsv in" in r.out, r.out


def test_an_import_record_claiming_to_be_evidence_is_a_violation(repo: Path) -> None:
    synthetic_project(repo, rows=150)
    fake = repo.parent / "results.tsv"
    fake.write_text(f"{HEADER}\nabcdef1\t0.5\t1.0\tkeep\tbaseline\n")
    assert run_gitera(repo, "import", str(fake)).code == 0
    body = git(repo, "log", "-1", "--format=%B")
    forged = body.replace('"evidence":false', '"evidence":true')
    assert forged != body
    git(repo, "commit", "-q", "--amend", "--no-verify", "-m", forged)
    r = run_gitera(repo, "verify")
    assert r.code == 1 and "FAIL imported history is recorded as unscored, never evidence" in r.out, r.out


MALFORMED = [
    ("", "is empty"),
    ("commit,val_bpb,memory_gb,status,description\na1b2c3d,0.99,44.0,keep,baseline\n", "this file is comma-separated, results.tsv is tab-separated"),
    ("commit\tval_bpb\tstatus\tdescription\n", "the header must be `commit<TAB><metric><TAB>memory_gb<TAB>status<TAB>description`"),
    ("commit\tval_bpb\tmemory_gb\tstatus\tdescription\n", "the header has no rows after it"),
    ("commit\tval_bpb\tmemory_gb\tstatus\tdescription\na1b2c3d\t0.99\t44.0\tkeep\tbase\tline\n", ":2: 6 tab-separated fields; a row has 5"),
    ("commit\tval_bpb\tmemory_gb\tstatus\tdescription\na1b2c3d\t0.99\t44.0\tkept\tbaseline\n", ":2: status 'kept' must be one of keep, discard, crash"),
    ("commit\tval_bpb\tmemory_gb\tstatus\tdescription\na1b2c3d\tfast\t44.0\tkeep\tbaseline\n", ":2: val_bpb 'fast' is not a number"),
    ("commit\tval_bpb\tmemory_gb\tstatus\tdescription\na1b2c3d\tnan\t44.0\tkeep\tbaseline\n", ":2: val_bpb 'nan' must be a finite number"),
    ("commit\tval_bpb\tmemory_gb\tstatus\tdescription\nd4e5f6g\t0.0\t0.0\tcrash\tOOM\n", ":2: commit 'd4e5f6g' is not a git commit id"),
    ("commit\tval_bpb\tmemory_gb\tstatus\tdescription\na1b2c3d\t0.99\t-1\tkeep\tbaseline\n", ":2: memory_gb '-1' must be a finite number ≥ 0"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_a_malformed_results_tsv_is_refused_with_its_line_and_nothing_is_committed(repo: Path, text: str, message: str) -> None:
    assert run_gitera(repo, "init", "exp").code == 0
    bad = repo.parent / "results.tsv"
    bad.write_text(text)
    before = git(repo, "rev-parse", "HEAD")
    r = run_gitera(repo, "import", str(bad))
    assert r.code == 2 and message in r.err and "Traceback" not in r.err, r.err
    assert r.err.startswith(f"gitera: error: {bad}")
    assert git(repo, "rev-parse", "HEAD") == before


def test_import_refuses_a_missing_or_binary_file(repo: Path) -> None:
    assert run_gitera(repo, "init", "exp").code == 0
    r = run_gitera(repo, "import", "nope.tsv")
    assert r.code == 2 and "nope.tsv does not exist" in r.err
    (repo.parent / "bin.tsv").write_bytes(b"commit\t\xff\n")
    r = run_gitera(repo, "import", str(repo.parent / "bin.tsv"))
    assert r.code == 2 and "not UTF-8 (bad byte at offset 7)" in r.err


# --- the parser, by property -------------------------------------------------------------------------

METRIC = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.\-]{0,20}\Z")
WORDS = st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=8), max_size=6)
ROW = st.builds(
    TsvRow,
    commit=st.from_regex(r"\A[0-9a-f]{7}\Z"),
    metric=st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: float(f"{x:.6f}")),
    memory_gb=st.floats(0, 1e4, allow_nan=False).map(lambda x: float(f"{x:.1f}")),
    status=st.sampled_from(["keep", "discard", "crash"]),
    description=WORDS.map(" ".join),
)


@given(METRIC, st.lists(ROW, min_size=1, max_size=20))
def test_format_then_parse_gives_the_same_rows(metric: str, rows: list[TsvRow]) -> None:
    text = format_results_tsv(metric, rows)
    parsed = parse_results_tsv(text, "results.tsv")
    assert parsed.metric == metric and list(parsed.rows) == rows
    assert format_results_tsv(parsed.metric, parsed.rows) == text
    crlf = parse_results_tsv("\ufeff" + text.replace("\n", "\r\n") + "\n\n", "results.tsv")  # Windows line ends, a BOM, blank lines
    assert crlf.rows == parsed.rows


@given(st.text(max_size=400))
def test_any_text_either_parses_or_is_refused_with_a_clear_error(text: str) -> None:
    try:
        parsed = parse_results_tsv(text, "results.tsv")
    except ConfigError as exc:
        assert exc.message.startswith("results.tsv") and exc.message.endswith(".")
        return
    assert parsed.rows and all(r.status in ("keep", "discard", "crash") and math.isfinite(r.metric) for r in parsed.rows)


@given(st.lists(ROW, min_size=1, max_size=5), st.integers(0, 4), st.sampled_from(["x", "", "\t", "1e999", "keep!"]))
def test_one_damaged_field_is_named_by_its_line(rows: list[TsvRow], column: int, junk: str) -> None:
    assume(not (column == 0 and junk == "1e999"))  # five hexadecimal digits: a valid short commit id
    lines = format_results_tsv("val_bpb", rows).splitlines()
    fields = lines[1].split("\t")
    fields[column] = junk
    lines[1] = "\t".join(fields)
    try:
        parse_results_tsv("\n".join(lines), "r.tsv")
    except ConfigError as exc:
        assert exc.message.startswith("r.tsv:2: ")
    else:
        assert column == 4  # only the description takes any text


def test_gitera_statuses_map_to_autoresearchs_three() -> None:
    assert [status_of(s) for s in ("keep", "discard", "guard_fail", "crash", "timeout")] == ["keep", "discard", "discard", "crash", "crash"]
