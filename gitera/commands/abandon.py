"""gitera abandon -m REASON: record why, release nothing, free the tag (gitera.domain.abandon)."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.domain.abandon import abandon as abandon_experiment
from gitera.domain.experiment import resolve


def abandon(tag: str | None, reason: str, out: Output) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "abandon"):
        record = abandon_experiment(repo, exp, reason)
    kept = "".join(f"\n  kept (not released): {p}" for p in record["kept_keys"])
    out.result(
        record,
        f"Abandoned experiment {exp.tag}: {record['reason']}\n"
        f"Its history is kept on branch {record['branch']} (now checked out; push it for a reviewer); nothing was released"
        f"{' — the sealed test set stays sealed' if record['split'] else ''}.{kept}\n"
        f"The tag is free: `git switch main` (or the branch you started from), then `gitera init {exp.tag}`.",
    )
    return 0
