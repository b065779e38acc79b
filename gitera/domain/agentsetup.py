"""`gitera init --agent`: program.md and an AGENTS.md section telling a coding agent the loop,
generated from the frame (or, at `gitera init TAG --agent`, from the frame being drafted)."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.core.errors import RefusedError
from gitera.core.frame import Frame
from gitera.core.scaffold import AgentBrief, FrameDraft, agent_program, agents_section, merge_agents_md

AGENTS_MD = "AGENTS.md"


def brief_from_draft(d: FrameDraft) -> AgentBrief:
    eval_how = d.eval_command or (f"python: {d.eval_python}" if d.eval_python else "the frame's eval command")
    return AgentBrief(d.tag, d.question or "(see the frame)", tuple(d.target), tuple(d.locked), eval_how, d.metric, d.direction, d.trials)


def brief_from_frame(tag: str, f: Frame) -> AgentBrief:
    it = f.iterate
    eval_how = f.eval.command or f"python: {f.eval.python}"
    return AgentBrief(tag, f.question, it.target if it else (), f.locked, eval_how, f.metric.primary, f.metric.direction, f.metric.trials,
                      it.sprint if it else 3, it.budget.max_iterations if it else None,
                      it.max_runs if it and f.metric.level == "run" else None)


def agent_files(repo: Repo, brief: AgentBrief) -> dict[str, bytes | None]:
    """program.md and AGENTS.md (the user's own AGENTS.md kept, with this experiment's section set)."""
    if AGENTS_MD in brief.locked or AGENTS_MD in brief.targets:
        raise RefusedError(f"{AGENTS_MD} is a {'locked' if AGENTS_MD in brief.locked else 'target'} file of this experiment, "
                           "so gitera does not write its section there; give the agent .gitera/<tag>/program.md instead.")
    if any(path == AGENTS_MD for _, path in repo.status_porcelain()):
        raise RefusedError(f"{AGENTS_MD} has uncommitted changes; commit or stash them first (gitera adds a section to it "
                           "and must not sweep your edits into its commit).")
    path = repo.root / AGENTS_MD
    existing = path.read_text(encoding="utf-8") if path.exists() else None
    return {
        f".gitera/{brief.tag}/program.md": agent_program(brief).encode(),
        AGENTS_MD: merge_agents_md(existing, brief.tag, agents_section(brief)).encode(),
    }
