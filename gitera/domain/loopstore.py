"""The iterate loop's committed state (`runs/iterate.json`) and the target files of its points.

The loop state is an ordinary committed file; what the verdict takes from it is checked
against the trailers (see gitera.domain.opening). A point is a state of the target files
(their blob ids), scored by making a commit of the experiment branch's tip with them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gitera.adapters.git import Repo
from gitera.core.errors import ConfigError
from gitera.core.loopstate import KILLED, SATURATED, LoopState, Point
from gitera.domain.experiment import Experiment

STATE_FILE = "iterate.json"


def load_state(exp: Experiment) -> LoopState | None:
    path = exp.path(f"runs/{STATE_FILE}")
    if not path.exists():
        return None
    try:
        return LoopState.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{exp.rel('runs/' + STATE_FILE)} is corrupt; restore it with `git checkout -- {exp.rel('runs/' + STATE_FILE)}`.") from None


def state_bytes(state: LoopState) -> bytes:
    return (json.dumps(state.to_dict(), indent=1, sort_keys=True) + "\n").encode()


def target_files(repo: Repo, targets: Sequence[str], point: Point) -> dict[str, bytes | None]:
    """The target files' contents at a loop state (None where the file does not exist there)."""
    paths = [p for p in targets if p in point.blobs]
    contents = dict(zip(paths, repo.cat_blobs([point.blobs[p] for p in paths])))
    return {p: contents.get(p) for p in targets}


def point_commit(exp: Experiment, targets: Sequence[str], point: Point, subject: str) -> str:
    """The iterated arm's scoring tree with the target files at ``point``, on no branch: the lock
    commit's tree and the target files, nothing else of the branch (gitera.domain.scoring)."""
    from gitera.domain.scoring import candidate_commit

    return candidate_commit(exp, target_files(exp.repo, targets, point), subject)


def locked_iteration(state: LoopState) -> int:
    return state.gate_passed.iteration if state.gate_passed else 0


def ungated_work(state: LoopState) -> bool:
    """The sprint kept an attempt no gate has passed yet (so the verdict would not use it)."""
    return state.in_sprint > 0 and state.best is not None and state.best.iteration != locked_iteration(state)


def closed_reason(state: LoopState) -> str:
    locked = locked_iteration(state)
    if state.status == KILLED:
        return f"the generalization gate failed and the arm {state.arm} was killed (back at iteration {locked}); a new idea needs a new experiment."
    if state.status == SATURATED:
        return f"the gate found the arm {state.arm} saturated and locked iteration {locked} for the verdict; run `gitera verdict`."
    from gitera.core.loopstate import RESUMABLE_KINDS, kind_of

    if (state.stop_kind or kind_of(state.stop_reason)) in RESUMABLE_KINDS:  # a plateau or crash stop can be resumed
        return (f"the loop has stopped ({state.stop_reason}); the verdict will use iteration {locked}. Run `gitera verdict` when ready, "
                "or `gitera iterate --resume` to go on (the budget goes on as it was).")
    return f"the loop has stopped ({state.stop_reason}); the verdict will use iteration {locked}. Run `gitera verdict` when ready."
