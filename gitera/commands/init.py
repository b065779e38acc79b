"""gitera init TAG: create autoexp/TAG with a frame template and program.md."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive
from gitera.core.errors import RefusedError, UsageError
from gitera.core.frame import valid_tag
from gitera.core.scaffold import FrameDraft, frame_yaml, program_md
from gitera.core.trailers import build_message
from gitera.domain.experiment import ABANDONED_PREFIX, BRANCH_PREFIX, Experiment


def start_point(repo: Repo, start: str | None, out: Output) -> str:
    """Where the new experiment branch starts: ``start`` when given; otherwise HEAD, except on
    another experiment's branch, whose commits (its lock, its split) a new question must not
    inherit — then the default branch, with a warning (issue 14)."""
    if start is not None:
        if repo.rev(start) is None:
            raise UsageError(f"--from {start}: no such branch, tag or commit.")
        return start
    current = repo.current_branch() or ""
    if not current.startswith(BRANCH_PREFIX):
        return "HEAD"
    default = repo.default_branch()
    if default is None:
        raise UsageError(f"you are on experiment branch {current} and no default branch (main, master, origin/HEAD) exists; "
                         "say where the new experiment starts with --from REF (--from HEAD builds on this experiment).")
    out.warn(f"you are on experiment branch {current}: the new experiment starts from {default} instead, so it does not "
             f"carry {current[len(BRANCH_PREFIX):]}'s commits (pass --from HEAD to build on them).")
    return default


def init(draft: FrameDraft, out: Output, harness: str | None = None, agent: bool = False, start: str | None = None) -> int:
    repo = Repo.find()
    tag = draft.tag
    if not valid_tag(tag):
        raise UsageError(
            f"{tag!r} is not a valid experiment tag; use 1-63 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. prompt-v2)."
        )
    exp = Experiment(repo, tag)
    if not repo.check_ref_format(exp.branch):
        raise UsageError(f"{exp.branch!r} is not a valid git branch name; choose another tag.")
    if repo.head_commit() is None:
        raise RefusedError("the repository has no commit yet; make a first commit, then run `gitera init` again.")
    if repo.branch_exists(exp.branch):
        raise RefusedError(
            f"branch {exp.branch} already exists; pick a new tag, or `git switch {exp.branch}` to continue that experiment."
        )
    if repo.rev(f"refs/tags/gitera/{tag}/verdict") is not None:
        # the verdict's tag closes the experiment it names: a new one under the same tag would start closed
        raise RefusedError(f"an earlier experiment {tag} reached its verdict (tag gitera/{tag}/verdict); choose another tag.")
    if exp.path("").exists() and (repo.current_branch() or "").startswith(ABANDONED_PREFIX):
        raise RefusedError(f"you are on {repo.current_branch()}, the branch an abandoned experiment is kept on; switch to the branch "
                           f"you started from (e.g. `git switch main`) and run `gitera init {tag}` again.")
    origin = start_point(repo, start, out)
    if origin == "HEAD":
        files = _files(repo, exp, draft, harness, agent)
        repo.switch_new_branch(exp.branch, "HEAD")
    else:
        # switch first: the checks and AGENTS.md must be read from the tree the experiment starts from
        branch, head = repo.current_branch(), repo.head_commit() or "HEAD"
        repo.switch_new_branch(exp.branch, origin)
        try:
            files = _files(repo, exp, draft, harness, agent)
        except BaseException:  # back where the user was, with no new branch: nothing changed
            repo.undo_new_branch(exp.branch, branch, head)
            raise
    message = build_message(f"gitera init: {tag}", [("Tag", tag)], body=f"Frame template for experiment {tag}.")
    commit = repo.commit_files(exp.branch, files, message)
    paths = sorted(files)
    out.result(
        {"tag": tag, "branch": exp.branch, "commit": commit, "files": paths, "from": origin},
        f"Created branch {BRANCH_PREFIX}{tag} from {origin} (now checked out) with:\n"
        + "".join(f"  {p}\n" for p in paths)
        + f"Next: fill every TODO in {exp.frame_rel}, then run `gitera lock`.",
    )
    return 0


def _files(repo: Repo, exp: Experiment, draft: FrameDraft, harness: str | None, agent: bool) -> dict[str, bytes | None]:
    """What `gitera init` commits, read against the checked-out tree."""
    if exp.path("").exists():
        raise RefusedError(f"{exp.rel('')} already exists; remove it or choose another tag.")
    files: dict[str, bytes | None] = {
        exp.frame_rel: frame_yaml(draft).encode(),
        exp.rel("program.md"): program_md(exp.tag).encode(),
    }
    if harness is not None:
        from gitera.domain.starter import starter_files

        files.update(starter_files(repo, harness))
    if agent:  # program.md and the AGENTS.md section from the frame being drafted
        from gitera.domain.agentsetup import agent_files, brief_from_draft

        files.update(agent_files(repo, brief_from_draft(draft)))
    return files


# --- `gitera init --agent` on an existing experiment: the agent's files from its frame ---
def init_agent(tag: str | None, out: Output) -> int:
    from gitera.domain.agentsetup import agent_files, brief_from_frame
    from gitera.domain.experiment import require_on_branch, resolve
    from gitera.domain.scoring import require_open

    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "init --agent"):
        require_on_branch(exp)
        require_open(exp)
        files = agent_files(repo, brief_from_frame(exp.tag, exp.load_frame()))
        tip = repo.rev(f"refs/heads/{exp.branch}")
        assert tip is not None
        committed = dict(zip(files, repo.cat_blobs([f"{tip}:{p}" for p in files])))
        if all(committed[p] == c for p, c in files.items()):
            out.result({"tag": exp.tag, "commit": None, "files": sorted(files)}, "program.md and AGENTS.md already match the frame.")
            return 0
        message = build_message(f"gitera agent: {exp.tag} program.md and AGENTS.md from the frame", [("Tag", exp.tag)])
        commit = repo.commit_files(exp.branch, files, message)
    out.result({"tag": exp.tag, "commit": commit, "files": sorted(files)},
               f"Wrote {', '.join(sorted(files))} from the frame of {exp.tag} ({commit[:10]}): point your coding agent at "
               f".gitera/{exp.tag}/program.md.")
    return 0
