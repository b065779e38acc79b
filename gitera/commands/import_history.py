"""gitera import results.tsv: an autoresearch history onto the experiment branch, as unscored
history (gitera.domain.imported)."""

from __future__ import annotations

from pathlib import Path

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.core.errors import GiteraError
from gitera.domain.experiment import require_on_branch, resolve
from gitera.domain.imported import import_history
from gitera.domain.scoring import require_open


def import_results(tag: str | None, path: Path, out: Output) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    primary = None
    try:
        primary = exp.peek_frame().metric.primary
    except GiteraError:
        pass  # a frame still being filled: nothing to compare the metric with
    with exclusive(repo.common_dir, "import"):
        require_on_branch(exp)
        require_open(exp)
        record = import_history(repo, exp, path, primary)
    if record["warning"]:
        out.warn(record["warning"])
    c = record["counts"]
    out.result(record, f"Imported {record['rows']} rows of {path.name} into {exp.tag} ({record['commit'][:10]}): {c['keep']} keep, "
                       f"{c['discard']} discard, {c['crash']} crash; {record['commits_found']} of their commits are in this repository.\n"
                       f"Kept as unscored history in {record['file']}: shown by `gitera log`, never evidence for a decision.")
    return 0
