"""gitera iterate -m HYPOTHESIS: one disciplined attempt on the iterated arm (gitera.domain.loop)."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.core.errors import UsageError
from gitera.domain.experiment import resolve


def iterate(tag: str | None, hypothesis: str, out: Output, use_cache: bool = True, resume: bool = False) -> int:
    from gitera.domain.loop import resume_loop, run_attempt

    repo = Repo.find()
    exp = resolve(repo, tag)
    if not hypothesis.strip() and not resume:
        raise UsageError('state the one change this attempt tests: gitera iterate -m "HYPOTHESIS".')
    with exclusive(repo.common_dir, "iterate"):
        if repo.finish_interrupted_sync():
            out.info("Finished updating the work tree after an interrupted gitera command.")
        if resume:  # a loop stopped by its plateau or by crashes goes on; a budget stop stays final
            state = resume_loop(repo, exp, out, use_cache)
            if not hypothesis.strip():
                out.result({"tag": exp.tag, "state": state.to_dict()},
                           f"the loop of {exp.tag} is {state.status} at iteration {state.iteration}; "
                           'edit the target files and run `gitera iterate -m "HYPOTHESIS"`.')
                return 0
        return run_attempt(repo, exp, " ".join(hypothesis.split()), out, use_cache)
