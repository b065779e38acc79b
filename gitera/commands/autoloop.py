"""gitera iterate --loop --propose CMD: an agent or script proposes, gitera decides, until a stop
(gitera.domain.session)."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.core.errors import Exit, RefusedError
from gitera.core.loopstate import ACTIVE
from gitera.domain.experiment import resolve
from gitera.domain.session import MAX_PROPOSAL_FAILURES, discard_edits, propose_change, stop_session


def autoloop(tag: str | None, propose: str, out: Output, use_cache: bool = True) -> int:
    from gitera.domain.loop import prepare, run_attempt

    repo = Repo.find()
    exp = resolve(repo, tag)
    failed: list[str] = []  # the last lines of the proposals that failed in a row
    attempts = 0
    with exclusive(repo.common_dir, "iterate --loop"):
        while True:
            frame, _, state = prepare(repo, exp, out, use_cache)
            if state.status != ACTIVE:
                out.info(f"loop finished after {attempts} attempt(s): {state.status} ({state.stop_reason or 'see `gitera status`'}).")
                return Exit.OK
            if len(failed) >= MAX_PROPOSAL_FAILURES:
                return stop_session(exp, state, propose, failed, out)
            ok, hypothesis = propose_change(repo, exp, frame, state, propose, out)
            if not ok:
                failed.append(hypothesis)
                out.warn(f"proposal failed: {hypothesis} — {len(failed)}/{MAX_PROPOSAL_FAILURES} in a row.")
                continue
            try:
                run_attempt(repo, exp, hypothesis, out, use_cache)
                failed = []
                attempts += 1
            except RefusedError as exc:
                if "unchanged from the current best" in exc.message or "files other than the target files" in exc.message:
                    failed.append(f"unusable: {exc.message}")
                    out.warn(f"proposal not usable: {exc.message} — {len(failed)}/{MAX_PROPOSAL_FAILURES} in a row.")
                    discard_edits(repo, frame)
                    continue
                if "the loop has stopped" in exc.message:
                    out.info(exc.message)
                    return Exit.OK
                raise


