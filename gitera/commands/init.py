"""gitera init TAG: create autoexp/TAG with a frame template and program.md."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.core.errors import RefusedError, UsageError
from gitera.core.frame import valid_tag
from gitera.core.scaffold import FrameDraft, frame_yaml, program_md
from gitera.core.trailers import build_message
from gitera.domain.experiment import BRANCH_PREFIX, Experiment


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


def init(draft: FrameDraft, out: Output, harness: str | None = None, start: str | None = None) -> int:
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
    if exp.path("").exists():
        raise RefusedError(f"{exp.rel('')} already exists; remove it or choose another tag.")
    origin = start_point(repo, start, out)
    files: dict[str, bytes | None] = {
        exp.frame_rel: frame_yaml(draft).encode(),
        exp.rel("program.md"): program_md(tag).encode(),
    }
    if harness is not None:
        from gitera.domain.starter import starter_files

        files.update(starter_files(repo, harness))
    repo.switch_new_branch(exp.branch, origin)
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
