"""gitera gate: the generalization gate at the end of a sprint, on demand (gitera.domain.gating)."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.core.errors import RefusedError
from gitera.core.loopstate import ACTIVE, STOPPED
from gitera.domain.experiment import resolve


def gate_command(tag: str | None, out: Output, use_cache: bool = True) -> int:
    from gitera.domain.gating import run_gate
    from gitera.domain.loop import prepare
    from gitera.domain.loopstore import closed_reason, load_state, ungated_work

    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "gate"):
        before = load_state(exp)
        frame, lock, state = prepare(repo, exp, out, use_cache)
        resumed = before is not None and "gate" in before.pending
        if resumed:
            pass  # prepare() just ran the pending gate: report it below
        elif state.status == STOPPED and ungated_work(state):
            state = run_gate(exp, frame, lock, state, out, use_cache)  # a stop in mid-sprint: the kept work may still pass
        elif state.status != ACTIVE:
            raise RefusedError(closed_reason(state))
        elif state.in_sprint == 0:
            raise RefusedError(f"sprint {state.sprint} has no attempt yet, so there is nothing to gate; run `gitera iterate -m HYPOTHESIS` first.")
        else:
            state = run_gate(exp, frame, lock, state, out, use_cache)
    gate = state.history[-1]
    out.result({"tag": exp.tag, "gate": gate, "state": state.to_dict()},
               f"gate after sprint {gate['sprint']}: {gate['outcome'].upper()} — {'; '.join(gate['reasons'])}")
    return 0


