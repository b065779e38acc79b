"""gitera iterate --loop [--propose CMD]: an agent or script proposes, gitera decides, until a stop
(gitera.domain.session). Without --propose it resumes the last session."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.domain.experiment import resolve
from gitera.domain.session import open_session, run_session


def autoloop(tag: str | None, propose: str | None, out: Output, use_cache: bool = True, *, resume: bool = False,
             max_hours: float | None = None, never_stop: bool = False) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "iterate --loop"):
        if repo.finish_interrupted_sync():
            out.info("Finished updating the work tree after an interrupted gitera command.")
        session = open_session(repo, exp, propose, max_hours, never_stop, out)
        return run_session(repo, exp, session, resume, out, use_cache)
