"""Scanning staged content for sealed test rows (the gitera-test-leak hook).

Each unconcluded experiment's ``split/leak.json`` holds salted fingerprints of its
sealed rows (never the text). The indexes are read from committed trees — HEAD and every
``autoexp/<tag>`` branch — so deleting or editing leak.json in the work tree switches
nothing off, and a commit on a branch without the experiment is guarded too. Staged blobs
are read from the index, so what is checked is exactly what would be committed; every staged
file is read as ``core.leak.scan_blob`` decodes it (UTF-16/32 text, gzip, base64 payloads),
with bounded work per file. A hit names the file and line only.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from gitera.adapters.git import Repo
from gitera.domain.experiment import BRANCH_PREFIX, GITERA_DIR, concluded, missing_tag_advice, verdict_ran_untagged

if TYPE_CHECKING:
    from gitera.core.leak import LeakIndex

LEAK_FILE = "split/leak.json"
_LEAK_RE = re.compile(rf"^{re.escape(GITERA_DIR)}/([^/]+)/{re.escape(LEAK_FILE)}$")
# gitera's own split files that hold no row text: the binary seal, the fingerprints, the manifest
_NOT_SCANNED = re.compile(rf"^{re.escape(GITERA_DIR)}/[^/]+/split/(test\.seal|gate\.seal|leak\.json|manifest\.json)$")
_EXPERIMENT_FILE = re.compile(rf"^{re.escape(GITERA_DIR)}/([^/]+)/")


def _committed_indexes(repo: Repo) -> dict[str, str]:
    """tag -> ``rev:path`` of its committed leak.json: in HEAD, else at its autoexp/ branch."""
    specs: dict[str, str] = {}
    if repo.head_commit() is not None:
        for path in repo.ls_tree("HEAD", [GITERA_DIR]):
            if m := _LEAK_RE.match(path):
                specs[m.group(1)] = f"HEAD:{path}"
    prefix = f"refs/heads/{BRANCH_PREFIX}"
    for ref in repo.git("for-each-ref", "--format=%(refname)", prefix).split():
        tag = ref[len(prefix):]
        specs.setdefault(tag, f"{ref}:{GITERA_DIR}/{tag}/{LEAK_FILE}")
    return specs


def _indexes(repo: Repo) -> list[tuple[str, LeakIndex]]:
    from gitera.core.leak import LeakIndex

    specs = _committed_indexes(repo)
    closed = concluded(repo, specs)  # once concluded, the rows are public in the verdict commit anyway
    tags = sorted(t for t in specs if t not in closed)
    found = []
    for tag, raw in zip(tags, repo.cat_blobs([specs[t] for t in tags])):
        if raw is None:
            continue  # that experiment has no split yet
        try:
            found.append((tag, LeakIndex.from_dict(json.loads(raw))))
        except ValueError:
            continue  # a corrupt index is reported by `gitera verify`
    return found


def _committed_lines(repo: Repo, paths: list[str]) -> dict[str, set[bytes]]:
    """For files in an experiment's folder: the lines its branch (or HEAD) already holds there.

    gitera writes those files itself, and a train or dev query may quote a long test query
    (docs/data-and-split.md), so a merge bringing the experiment's files in must not trip
    the hook on them; a line added by hand is scanned like any other.
    """
    specs = [(p, f"{rev}:{p}") for p in paths if (m := _EXPERIMENT_FILE.match(p))
             for rev in ("HEAD", f"refs/heads/{BRANCH_PREFIX}{m.group(1)}")]
    known: dict[str, set[bytes]] = {}
    for (path, _), raw in zip(specs, repo.cat_blobs([spec for _, spec in specs])):
        if raw is not None:
            known.setdefault(path, set()).update(raw.split(b"\n"))
    return known


def scan_staged(repo: Repo, files: list[str], warnings: list[str] | None = None) -> list[str]:
    """The refusals for the staged ``files``; a file whose payloads exceed the work limit is
    added to ``warnings`` (scanned up to the limit, not refused)."""
    candidates = [f for f in files if not _NOT_SCANNED.match(f)]
    if not candidates:
        return []
    indexes = _indexes(repo)
    if not indexes:
        return []
    from gitera.core.leak import DERIVED_LIMIT, scan_blob

    blobs = repo.ls_index(candidates)
    paths = [f for f in candidates if f in blobs]
    contents = repo.cat_blobs([blobs[p] for p in paths])
    known = _committed_lines(repo, paths)
    problems = []
    for path, raw in zip(paths, contents):
        if raw is None:
            continue
        lines = raw.split(b"\n")
        for tag, index in indexes:
            found = scan_blob(raw, index)
            if not found.complete and warnings is not None:
                warnings.append(f"{path}: only its first {DERIVED_LIMIT // (1024 * 1024)} MiB of compressed or encoded "
                                f"content was scanned for experiment {tag}'s sealed test rows; a row beyond that is not found.")
            for hit in found.hits:
                if hit.line_no <= len(lines) and lines[hit.line_no - 1] in known.get(path, ()):
                    continue
                problems.append(
                    f"{path}:{hit.line_no} contains a row of experiment {tag}'s sealed test set; "
                    "remove it before committing (a test row seen is contaminated: reseal fresh data in a new experiment)."
                )
    return _name_missing_tags(repo, problems, [tag for tag, _ in indexes])


def _name_missing_tags(repo: Repo, problems: list[str], tags: list[str]) -> list[str]:
    """A refusal over an experiment whose verdict ran but is untagged here says so (issue 14): its
    rows are public after the verdict, but only the tag proves the verdict ran."""
    hit = [t for t in tags if any(f"experiment {t}'s sealed test set" in p for p in problems)]
    notes = []
    for tag in hit:
        for rev in ("HEAD", f"refs/heads/{BRANCH_PREFIX}{tag}"):
            ran = verdict_ran_untagged(repo, tag, rev) if repo.rev(rev) else None
            if ran:
                notes.append(f"{missing_tag_advice(tag, ran)}.")
                break
    return [*problems, *notes]
