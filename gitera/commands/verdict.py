"""gitera verdict: the ONE opening of the sealed test set, the decision, and the conclusion
(gitera.domain.opening)."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.domain.experiment import resolve


def verdict(tag: str | None, keep_key: bool, private_key: str | None, out: Output) -> int:
    from gitera.domain.opening import conclude

    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "verdict"):
        return conclude(repo, exp, keep_key, private_key, out)
