"""An autoresearch history brought onto an experiment branch: unscored, marked so, never evidence.

`gitera import results.tsv` commits the file as it was given under `.gitera/<tag>/imported/` with
a `Gitera-Import` trailer (`"scored": false, "evidence": false`). Nothing gitera decides reads it:
not the loop's best, the budget, the gate, the verdict or the conclusion — they read Gitera-Result
records only. `gitera log` shows it, and `--format results-tsv` writes it back first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.history import Record, attempts
from gitera.core.errors import ConfigError
from gitera.core.resultstsv import ResultsTsv, TsvRow, format_results_tsv, parse_results_tsv, status_of
from gitera.core.trailers import build_message
from gitera.domain.experiment import Experiment

IMPORT_DIR = "imported"


def read_import(path: Path) -> tuple[bytes, ResultsTsv]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; give the results.tsv your autoresearch loop wrote.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give the results.tsv file.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (bad byte at offset {exc.start}); save it as UTF-8.") from None
    return raw, parse_results_tsv(text, str(path))


def import_history(repo: Repo, exp: Experiment, path: Path, primary: str | None) -> dict[str, Any]:
    """Commit the file and its Gitera-Import record; returns the record (and a warning, if any)."""
    raw, parsed = read_import(path)
    folder = exp.rel(IMPORT_DIR)
    n = 1 + len([p for p in repo.ls_tree(f"refs/heads/{exp.branch}", [folder]) if p.endswith(".tsv")])
    rel = f"{folder}/results-{n:03d}.tsv"
    found = repo.cat_objects([f"{r.commit}^{{commit}}" for r in parsed.rows])
    record: dict[str, Any] = {
        "source": path.name, "file": rel, "sha256": hashlib.sha256(raw).hexdigest(), "rows": len(parsed.rows),
        "metric": parsed.metric, "counts": parsed.counts(), "commits_found": sum(1 for f in found if f is not None),
        "scored": False, "evidence": False,
    }
    message = build_message(f"gitera import: {exp.tag} {len(parsed.rows)} rows of {path.name} (unscored history)",
                            [("Tag", exp.tag), ("Import", record)],
                            body="Imported as history only: gitera did not score these rows and no decision reads them.")
    commit = repo.commit_files(exp.branch, {rel: raw}, message)
    warning = (f"the file's metric column is {parsed.metric} but the frame's primary metric is {primary}"
               if primary is not None and primary != parsed.metric else None)
    return {**record, "commit": commit, "warning": warning}


def imported_rows(repo: Repo, exp: Experiment, records: Sequence[Record]) -> list[TsvRow]:
    """Every imported row, in the order they were imported (read from the import commits)."""
    rows: list[TsvRow] = []
    for r in records:
        if r.kind == "Import" and isinstance(r.data.get("file"), str):
            raw = repo.show(r.commit, r.data["file"])
            if raw is not None:
                rows += parse_results_tsv(raw.decode("utf-8", errors="replace"), r.data["file"]).rows
    return rows


def results_tsv(records: Sequence[Record], imported: Sequence[TsvRow], metric: str, arm: str | None) -> str:
    """autoresearch's results.tsv of the branch: the imported history first, then the iterated arm's
    run (`baseline`, as autoresearch's first row) and every attempt."""
    rows = list(imported)
    atts = attempts(list(records))
    arm = arm or (str(atts[0].data.get("arm")) if atts else None)
    first = next((i for i, r in enumerate(records) if r.kind == "Result" and r.data.get("kind") == "attempt"), len(records))
    run = next((r for r in reversed(records[:first]) if r.kind == "Result" and r.data.get("kind") == "run" and r.data.get("arm") == arm), None)
    for r, desc, status in ([(run, "baseline", "keep")] if run else []) + [(a, str(a.data.get("hypothesis") or ""), status_of(str(a.data.get("status"))))
                                                                          for a in atts]:
        rows.append(TsvRow(r.commit, _num(r.data.get("score")), _memory(r.data), status, desc))
    return format_results_tsv(metric, rows)


def _num(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return 0.0
    try:
        return float(value)
    except OverflowError:  # a hand-written trailer's 400-digit integer (issue 12)
        return 0.0


def _memory(data: dict[str, Any]) -> float:
    """memory_gb when the harness reports it (run-level experiments), else 0.0 as autoresearch writes for none."""
    value = data.get("memory_gb", (data.get("secondary") or {}).get("memory_gb") if isinstance(data.get("secondary"), dict) else None)
    return max(0.0, _num(value))
