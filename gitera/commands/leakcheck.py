"""Scanning staged content for sealed test rows (the gitera-test-leak hook).

Each unconcluded experiment's ``split/leak.json`` holds salted fingerprints of its
sealed rows (never the text). Staged blobs are read from the index, so what is
checked is exactly what would be committed. A hit names the file and line only.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from gitera.experiment import GITERA_DIR
from gitera.git import Repo

if TYPE_CHECKING:
    from gitera.leak import LeakIndex


def _indexes(repo: Repo) -> list[tuple[str, LeakIndex]]:
    from gitera.leak import LeakIndex

    base = repo.root / GITERA_DIR
    if not base.is_dir():
        return []
    found = []
    for path in sorted(base.glob("*/split/leak.json")):
        tag = path.parent.parent.name
        if (path.parent.parent / "verdict.json").exists():
            continue  # once concluded, the rows are public in the verdict commit anyway
        try:
            found.append((tag, LeakIndex.from_dict(json.loads(path.read_text()))))
        except (ValueError, OSError):
            continue  # a corrupt index is reported by `gitera verify`
    return found


def scan_staged(repo: Repo, files: list[str]) -> list[str]:
    indexes = _indexes(repo)
    if not indexes or not files:
        return []
    from gitera.leak import scan

    own = re.compile(rf"^{re.escape(GITERA_DIR)}/[^/]+/split/")
    candidates = [f for f in files if not own.match(f)]
    blobs = repo.ls_index(candidates)
    paths = [f for f in candidates if f in blobs]
    contents = repo.cat_blobs([blobs[p] for p in paths])
    problems = []
    for path, raw in zip(paths, contents):
        if raw is None or b"\0" in raw[:8192]:
            continue  # binary
        text = raw.decode("utf-8", errors="replace")
        for tag, index in indexes:
            for hit in scan(text, index):
                problems.append(
                    f"{path}:{hit.line_no} contains a row of experiment {tag}'s sealed test set; "
                    "remove it before committing (a test row seen is contaminated: reseal fresh data in a new experiment)."
                )
    return problems
