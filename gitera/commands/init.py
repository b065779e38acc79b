"""gitera init TAG: create autoexp/TAG with a frame template and program.md."""

from __future__ import annotations

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.core.errors import RefusedError, UsageError
from gitera.core.frame import valid_tag
from gitera.core.scaffold import FrameDraft, frame_yaml, program_md
from gitera.core.trailers import build_message
from gitera.domain.experiment import BRANCH_PREFIX, Experiment


def init(draft: FrameDraft, out: Output, harness: str | None = None) -> int:
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
    files: dict[str, bytes | None] = {
        exp.frame_rel: frame_yaml(draft).encode(),
        exp.rel("program.md"): program_md(tag).encode(),
    }
    if harness is not None:
        from gitera.domain.starter import starter_files

        files.update(starter_files(repo, harness))
    repo.switch_new_branch(exp.branch, "HEAD")
    message = build_message(f"gitera init: {tag}", [("Tag", tag)], body=f"Frame template for experiment {tag}.")
    commit = repo.commit_files(exp.branch, files, message)
    paths = sorted(files)
    out.result(
        {"tag": tag, "branch": exp.branch, "commit": commit, "files": paths},
        f"Created branch {BRANCH_PREFIX}{tag} (now checked out) with:\n"
        + "".join(f"  {p}\n" for p in paths)
        + f"Next: fill every TODO in {exp.frame_rel}, then run `gitera lock`.",
    )
    return 0
