"""Where an experiment lives in the repo, which one a command means, and its lock."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo, blob_id
from gitera.core.errors import ConfigError, RefusedError, UsageError
from gitera.core.frame import Frame, parse_frame, valid_tag
from gitera.core.trailers import parse_trailers, records
from gitera.core.version import __version__

BRANCH_PREFIX = "autoexp/"
GITERA_DIR = ".gitera"
LOCK_VERSION = 1
VERDICT_FILE = "verdict.json"
_VERDICT_REF = re.compile(r"^refs/tags/gitera/([^/]+)/verdict$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Experiment:
    """One experiment (tag) in a repository: its branch, folder and files."""
    repo: Repo
    tag: str
    abandoned_branch: str | None = None  # an abandoned experiment is read on its renamed branch

    @property
    def branch(self) -> str:
        return self.abandoned_branch or BRANCH_PREFIX + self.tag

    def rel(self, name: str) -> str:
        return f"{GITERA_DIR}/{self.tag}/{name}"

    def path(self, name: str) -> Path:
        return self.repo.root / GITERA_DIR / self.tag / name

    @property
    def frame_rel(self) -> str:
        return self.rel("frame.yaml")

    @property
    def lock_rel(self) -> str:
        return self.rel("lock.json")

    @property
    def is_locked(self) -> bool:
        return self.path("lock.json").exists()

    @property
    def verdict_commit(self) -> str | None:
        """The commit of this experiment's verdict, when it really ran (see ``concluded``)."""
        return concluded(self.repo, [self.tag]).get(self.tag)

    @property
    def is_concluded(self) -> bool:
        """The verdict ran: its annotated tag names its commit. A verdict.json alone concludes
        nothing (anyone can write one), and deleting it reopens nothing."""
        return self.verdict_commit is not None

    def verdict_doc(self) -> dict[str, Any] | None:
        """verdict.json as the verdict committed it (None before the verdict)."""
        commit = self.verdict_commit
        raw = self.repo.show(commit, self.rel(VERDICT_FILE)) if commit else None
        return json.loads(raw) if raw else None

    def frame_bytes(self) -> bytes:
        try:
            return self.path("frame.yaml").read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"{self.frame_rel} does not exist; is branch {self.branch} checked out? "
                f"(`git switch {self.branch}`)"
            ) from None

    def load_frame(self) -> Frame:
        """The frame every command that decides reads (lock, split, pilot, run, iterate, gate,
        verdict, verify): parsed from frame.yaml, or from its JSON copy under .git/gitera/frames/
        when the COMMITTED lock.json vouches for that copy's sha256 (``parsed_sha256``, written by
        `gitera lock`), which saves the yaml import on every command. The copy is an ordinary file
        anyone can edit; the digest lives in a commit the hooks and `verify` guard."""
        raw = self.frame_bytes()
        data = self._vouched_copy(raw)
        if data is not None:
            return parse_frame(data, {}, self.frame_rel)
        frame, data = self._parse_yaml(raw)
        self._write_display_copy(raw, data)
        return frame

    def peek_frame(self) -> Frame:
        """The frame for display only (status, log), from the JSON copy whether or not the lock
        vouches for it (no git call, no yaml import). Nothing that decides may read it: use
        ``load_frame``."""
        raw = self.frame_bytes()
        try:
            return parse_frame(json.loads(self._display_copy(raw).read_text()), {}, self.frame_rel)
        except (OSError, ValueError, ConfigError):
            return self.load_frame()

    def parsed_digest(self) -> str | None:
        """sha256 of the parsed frame as canonical JSON (what the lock records), writing the copy;
        None when the frame holds values JSON cannot carry (YAML dates: parsed every time)."""
        raw = self.frame_bytes()
        _, data = self._parse_yaml(raw)
        text = _canonical(data)
        self._write_display_copy(raw, data)
        return sha256(text.encode()) if text is not None else None

    def _vouched_copy(self, raw: bytes) -> Any:
        committed = self.repo.show(f"refs/heads/{self.branch}", self.lock_rel)
        try:
            record = json.loads(committed)["frame"] if committed else None
            if not isinstance(record, dict) or record.get("sha256") != sha256(raw) or not record.get("parsed_sha256"):
                return None
            text = self._display_copy(raw).read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return json.loads(text) if sha256(text) == record["parsed_sha256"] else None

    def _display_copy(self, raw: bytes) -> Path:
        return self.repo.common_dir / "gitera" / "frames" / f"{sha256(raw)}.json"

    def _write_display_copy(self, raw: bytes, data: Any) -> None:
        cache = self._display_copy(raw)
        text = _canonical(data)
        if text is None:
            return  # only plain JSON values (YAML dates etc. are parsed each time)
        try:
            if not cache.exists() or cache.read_text() != text:  # a copy edited by hand is put right
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(text)
                os.replace(tmp, cache)
        except OSError:
            pass

    def _parse_yaml(self, raw: bytes) -> tuple[Frame, Any]:
        from gitera.adapters.yamlio import load_with_lines

        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self.frame_rel}: not UTF-8 (bad byte at offset {exc.start}); save it as UTF-8.") from None
        data, lines = load_with_lines(text, self.frame_rel)
        return parse_frame(data, lines, self.frame_rel), data

    def read_lock(self) -> dict[str, Any]:
        try:
            lock = json.loads(self.path("lock.json").read_text())
        except FileNotFoundError:
            raise RefusedError(f"experiment {self.tag} is not locked yet; fill {self.frame_rel} and run `gitera lock`.") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{self.lock_rel} is not valid JSON; restore it with `git checkout -- {self.lock_rel}`.") from None
        if not isinstance(lock, dict) or "files" not in lock:
            raise ConfigError(f"{self.lock_rel} is not a gitera lock; restore it with `git checkout -- {self.lock_rel}`.")
        return lock


def concluded(repo: Repo, tags: Collection[str]) -> dict[str, str]:
    """tag -> verdict commit, for the experiments among ``tags`` whose verdict really ran.

    That is: the annotated tag ``gitera/<tag>/verdict`` points at a commit whose trailers hold
    ``Gitera-Tag: <tag>`` and a ``Gitera-Verdict`` record, and whose tree holds
    ``.gitera/<tag>/verdict.json`` for the same experiment and seal. Two git calls at most, so
    the hooks can afford it on every commit.
    """
    if not tags:
        return {}
    refs = repo.git("for-each-ref", "--format=%(refname)%00%(objecttype)%00%(*objectname)%00%(*objecttype)", "refs/tags/gitera/")
    candidates: dict[str, str] = {}
    for line in refs.splitlines():
        ref, kind, target, target_kind = (line.split("\0") + ["", "", ""])[:4]
        m = _VERDICT_REF.match(ref)
        if m and m.group(1) in tags and kind == "tag" and target_kind == "commit":
            candidates[m.group(1)] = target
    if not candidates:
        return {}
    contents = repo.cat_blobs([spec for tag, c in candidates.items() for spec in (c, f"{c}:{GITERA_DIR}/{tag}/{VERDICT_FILE}")])
    return {tag: c for i, (tag, c) in enumerate(candidates.items()) if _is_verdict(tag, contents[2 * i], contents[2 * i + 1])}


def verdict_ran_untagged(repo: Repo, tag: str, rev: str) -> str | None:
    """The commit (reachable from ``rev``) where experiment ``tag``'s verdict ran, when its tag is
    not in this clone (never pushed, or not fetched); None otherwise, or for a hand-written
    verdict.json that no verdict commit made."""
    if concluded(repo, [tag]):
        return None
    ran = repo.git("log", "-1", "--format=%H", "--all-match", "--grep=^Gitera-Verdict: ", f"--grep=^Gitera-Tag: {tag.replace('.', '[.]')}$",
                   rev, "--", f"{GITERA_DIR}/{tag}/{VERDICT_FILE}", check=False).strip()
    return ran or None


def missing_tag_advice(tag: str, commit: str) -> str:
    """What to do when an experiment's verdict ran but its tag is not in this clone (issue 14): the
    guards hold until the tag is here, since only the tag proves the verdict ran."""
    return (f"experiment {tag}'s verdict ran in {commit[:10]} but its tag gitera/{tag}/verdict is not in this clone, so its "
            f"guards still hold: fetch the tag (`git fetch origin tag gitera/{tag}/verdict`, or `git fetch --tags`) and try "
            f"again; if the remote lacks it too, whoever ran the verdict pushes it (`git push origin gitera/{tag}/verdict`)")


def _is_verdict(tag: str, commit: bytes | None, verdict: bytes | None) -> bool:
    if commit is None or verdict is None:
        return False
    message = commit.partition(b"\n\n")[2].decode("utf-8", errors="replace")
    trailer = records(message, "Verdict")
    try:
        doc = json.loads(verdict)
    except ValueError:
        return False
    return (("Tag", tag) in parse_trailers(message) and len(trailer) == 1 and isinstance(doc, dict)
            and doc.get("tag") == tag and isinstance(doc.get("seal"), dict)
            and doc["seal"].get("seal_id") == trailer[0].get("seal_id"))


def _canonical(data: Any) -> str | None:
    """The parsed frame as canonical JSON text, or None when JSON would change it."""
    try:
        text = json.dumps(data, sort_keys=True)
        return text if json.loads(text) == data else None
    except (TypeError, ValueError):
        return None


def all_tags(repo: Repo) -> list[str]:
    base = repo.root / GITERA_DIR
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "frame.yaml").exists())


def resolve(repo: Repo, tag: str | None) -> Experiment:
    """The experiment a command means: --tag, else the checked-out autoexp/ branch, else the only one."""
    on_abandoned = abandoned_here(repo)  # an abandoned experiment's renamed branch is checked out
    if on_abandoned is not None and tag in (None, on_abandoned.tag):
        return on_abandoned
    if tag is not None:
        if not valid_tag(tag):
            raise UsageError(f"{tag!r} is not a valid experiment tag; use lower-case letters, digits, '.', '_' or '-'.")
        exp = Experiment(repo, tag)
        if not exp.path("frame.yaml").exists():
            if repo.branch_exists(exp.branch):
                raise UsageError(f"experiment {tag} lives on branch {exp.branch}; run `git switch {exp.branch}` first.")
            kept = abandoned_branches(repo, tag)
            if kept:
                raise UsageError(f"experiment {tag} was abandoned (its history is on {', '.join(kept)}: `git switch {kept[-1]}` "
                                 f"to read it); start a new one with `gitera init {tag}`.")
            raise UsageError(f"there is no experiment {tag}; start one with `gitera init {tag}`.")
        return exp
    branch = repo.current_branch() or ""
    if branch.startswith(BRANCH_PREFIX):
        return resolve(repo, branch[len(BRANCH_PREFIX):])
    tags = all_tags(repo)
    if len(tags) == 1:
        return Experiment(repo, tags[0])
    if not tags:
        raise UsageError("there is no experiment here; start one with `gitera init TAG`.")
    raise UsageError(f"several experiments exist ({', '.join(tags)}); say which with --tag TAG.")


@dataclass(frozen=True)
class CheckedOut:
    """The experiment a reading command (`verify`, `report`) checks, at the checked-out commit."""

    exp: Experiment
    commit: str
    where: str  # "branch autoexp/x", "branch main" or "a detached HEAD"
    note: str | None  # set when the experiment's own branch points elsewhere: said, never silent

    @property
    def heading(self) -> str:
        return f"experiment {self.exp.tag} at {self.where} ({self.commit[:10]})"


def _has_records(repo: Repo, tag: str, rev: str) -> bool:
    pattern = f"^Gitera-Tag: {tag.replace('.', '[.]')}$"
    return bool(repo.git("log", "-1", "--format=%H", f"--grep={pattern}", rev, check=False).strip())


def checked_out(repo: Repo, tag: str | None) -> CheckedOut:
    """The experiment at the checked-out commit (issue 14): ``tag``, else the autoexp/ branch's, else on
    a detached HEAD (CI) the experiment of HEAD's latest gitera commit, else the only one here.
    ``--tag`` never switches to another branch: a HEAD without that experiment's history is refused."""
    head = repo.head_commit()
    if head is None:
        raise UsageError("no commit is checked out; check out the experiment's branch (`git switch autoexp/TAG`).")
    branch = repo.current_branch()
    where = f"branch {branch}" if branch else "a detached HEAD"
    if tag is None and branch and branch.startswith(BRANCH_PREFIX):
        tag = branch[len(BRANCH_PREFIX):]
    elif tag is None and branch is None:
        latest = repo.git("log", "-1", "--format=%(trailers:key=Gitera-Tag,valueonly)", "--grep=^Gitera-Tag: ", "HEAD").split()
        tag = latest[0] if latest else None
    if tag is None:
        return checked_out(repo, resolve(repo, None).tag)
    if not valid_tag(tag):
        raise UsageError(f"{tag!r} is not a valid experiment tag; use lower-case letters, digits, '.', '_' or '-'.")
    exp = Experiment(repo, tag)
    own = repo.rev(f"refs/heads/{exp.branch}")
    if not _has_records(repo, tag, head):
        hint = (f"`git switch {exp.branch}` first" if own else f"there is no experiment {tag} in this history")
        raise UsageError(f"the checked-out commit ({where}, {head[:10]}) holds no commit of experiment {tag}; {hint} — "
                         "this command checks what is checked out, never another branch.")
    note = None
    if own is not None and own != head:
        note = f"branch {exp.branch} points at {own[:10]}, not at the checked-out commit: this checks the checked-out one"
    return CheckedOut(exp, head, where, note)


# --- the lock ------------------------------------------------------------------


def _file_record(path: str, content: bytes) -> dict[str, str]:
    return {"path": path, "sha256": sha256(content), "blob": blob_id(content)}


def build_lock(exp: Experiment, frame: Frame, now: datetime | None = None) -> dict[str, Any]:
    """The lock record; refuses when a locked file is missing or untracked, or no data source is named."""
    repo = exp.repo
    if frame.data.source is None and frame.metric.level == "row":  # a run-level frame seals files instead (docs/run-level.md)
        _refuse_no_source(exp)
    tracked = repo.tracked(list(frame.locked)) if frame.locked else set()
    files = []
    for rel in frame.locked:
        target = repo.root / rel
        if not target.is_file():
            raise RefusedError(f"locked file {rel} does not exist; create and commit it, or remove it from `locked` in {exp.frame_rel}.")
        if rel not in tracked:
            raise RefusedError(f"locked file {rel} is not tracked by git; `git add {rel}` and commit it, then run `gitera lock` again.")
        files.append(_file_record(rel, target.read_bytes()))
    modes = repo.ls_modes("HEAD", [f["path"] for f in files]) if files else {}
    for f in files:  # the blob id does not change with the mode (an executable bit, a symlink): record it too
        if f["path"] in modes:
            f["mode"] = modes[f["path"]]
    frame_record: dict[str, str] = _file_record(exp.frame_rel, exp.frame_bytes())
    parsed = exp.parsed_digest()
    if parsed is not None:  # lets later commands trust the parsed copy without the yaml import
        frame_record["parsed_sha256"] = parsed
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": LOCK_VERSION,
        "tag": exp.tag,
        "tool_version": __version__,
        "locked_at": stamp,
        "frame": frame_record,
        "files": files,
        "refs": refuse_links_out(exp, pin_refs(exp, frame)),
    }


def refuse_links_out(exp: Experiment, refs: dict[str, str]) -> dict[str, str]:
    """Refuse to lock a tree (HEAD, or an arm's pinned ref) holding a symbolic link that leads out
    of it: the harness would read, through it, a file git does not hold (issue 12). The checkouts
    refuse it too, but only when an arm is first scored; here nothing gets locked. Returns ``refs``."""
    from gitera.core.links import links_out

    repo = exp.repo
    for name, commit in (("HEAD", repo.rev("HEAD")), *((f"arm {arm}'s ref", c) for arm, c in refs.items())):
        if commit is None:
            continue
        linked = {p: oid for p, (mode, oid) in repo.tree_entries(commit).items() if mode == "120000"}
        if not linked:
            continue
        texts = repo.cat_blobs(list(linked.values()))
        links = {p: (t or b"").decode("utf-8", "surrogateescape") for p, t in zip(linked, texts)}
        out = links_out(links)
        if out:
            raise RefusedError(
                f"{name} ({commit[:10]}) holds the symbolic link {out[0]!r} -> {links[out[0]]!r}, which leads out of the tree: the "
                "harness would read a file git does not hold, which can change after the lock. Commit the file itself instead of a "
                "link (a path outside the repository reaches the harness through a variable listed in eval.env), then run "
                "`gitera lock` again — nothing was locked.")
    return refs


def pin_refs(exp: Experiment, frame: Frame) -> dict[str, str]:
    """arm -> the commit its `ref` names now: the arm is scored at that commit for good (issue 12),
    wherever the ref moves later."""
    pinned = {}
    for arm in frame.arms.values():
        if arm.ref is not None:
            commit = exp.repo.rev(arm.ref)
            if commit is None:
                raise RefusedError(f"arm {arm.name}'s ref {arm.ref!r} is not a commit in this repository; create it, or fix "
                                   f"`arms.{arm.name}.ref` in {exp.frame_rel}, then run `gitera lock` again.")
            pinned[arm.name] = commit
    return pinned


def _refuse_no_source(exp: Experiment) -> None:
    """`data.source: null` (the template's default) cannot be pre-registered: the split would read
    whatever file someone names later (issue 14)."""
    from gitera.adapters.yamlio import load_with_lines

    try:
        _, lines = load_with_lines(exp.frame_bytes().decode("utf-8", errors="replace"), exp.frame_rel)
    except ConfigError:
        lines = {}
    line = lines.get(("data", "source")) or lines.get(("data",)) or 1
    raise ConfigError(
        f"{exp.frame_rel}:{line}: data.source: is empty (null); name the file of production rows the split reads "
        "(CSV, TSV or JSONL, e.g. data/tickets.csv — it may stay out of git), then run `gitera lock` again."
    )


def locked_records(lock: dict[str, Any]) -> list[dict[str, str]]:
    """Every file the lock protects: the frame first, then the locked files."""
    return [lock["frame"], *lock["files"]]


def frame_hash(lock: dict[str, Any]) -> str:
    return str(lock["frame"]["sha256"])


def changed_locked_files(exp: Experiment, lock: dict[str, Any]) -> list[str]:
    """Locked paths whose working-tree content differs from the lock (or that are gone)."""
    changed = []
    records = locked_records(lock)
    for rec in records:
        target = exp.repo.root / rec["path"]
        try:
            content = target.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            changed.append(f"{rec['path']} (deleted)")
            continue
        if sha256(content) != rec["sha256"]:
            changed.append(rec["path"])
    # the committed state too: evals score the branch's commits, so a change committed with
    # --no-verify and then restored on disk must not pass
    tip = exp.repo.rev(f"refs/heads/{exp.branch}")
    if tip is not None and not changed:
        blobs = exp.repo.ls_tree(tip, [str(rec["path"]) for rec in records])
        moded = [str(rec["path"]) for rec in records if rec.get("mode")]
        modes = exp.repo.ls_modes(tip, moded) if moded else {}
        for rec in records:
            committed = blobs.get(str(rec["path"]))
            if committed is None:
                changed.append(f"{rec['path']} (deleted in the commit {exp.branch} points at)")
            elif committed != rec["blob"]:
                changed.append(f"{rec['path']} (changed in the commit {exp.branch} points at)")
            elif rec.get("mode") and modes.get(str(rec["path"])) != rec["mode"]:
                changed.append(f"{rec['path']} (mode {modes.get(str(rec['path']))}, locked as {rec['mode']}, in the commit {exp.branch} points at)")
    return changed


@dataclass(frozen=True)
class LockedChange:
    """One locked file that differs from its lock, and where: ``worktree`` (an unstaged edit),
    ``staged`` (in the index) or ``committed`` (in the commit the branch points at)."""

    path: str
    where: str
    deleted: bool


def locked_changes(exp: Experiment, lock: dict[str, Any]) -> list[LockedChange]:
    """Where each changed locked file differs, deepest first (a committed change also shows in
    the index and the work tree; restoring it needs the lock commit, not the index)."""
    repo = exp.repo
    records = locked_records(lock)
    paths = [str(rec["path"]) for rec in records]
    tip = repo.rev(f"refs/heads/{exp.branch}")
    committed = repo.ls_tree(tip, paths) if tip is not None else {}
    staged = repo.ls_index(paths)
    changes = []
    for rec in records:
        path, blob = str(rec["path"]), str(rec["blob"])
        target = repo.root / path
        on_disk = target.read_bytes() if target.is_file() else None
        if tip is not None and committed.get(path) != blob:
            changes.append(LockedChange(path, "committed", path not in committed))
        elif staged.get(path) != blob:
            changes.append(LockedChange(path, "staged", path not in staged))
        elif on_disk is None or sha256(on_disk) != rec["sha256"]:
            changes.append(LockedChange(path, "worktree", on_disk is None))
    return changes


def restore_commands(exp: Experiment, changes: Collection[LockedChange]) -> list[str]:
    """The git commands that put each changed locked file back to its locked content."""
    by_where: dict[str, list[str]] = {}
    for c in changes:
        by_where.setdefault(c.where, []).append(c.path)
    commands = []
    if "worktree" in by_where:
        commands.append(f"git restore -- {' '.join(by_where['worktree'])}")
    if "staged" in by_where:
        commands.append(f"git restore --staged --worktree -- {' '.join(by_where['staged'])}")
    if "committed" in by_where:
        lock_commit = exp.repo.git("log", "-1", "--format=%h", f"refs/heads/{exp.branch}", "--", exp.lock_rel).strip() or exp.branch
        files = " ".join(by_where["committed"])
        commands.append(f"git restore --source={lock_commit} --staged --worktree -- {files} && "
                        f"git commit -m 'restore locked files' -- {files}")
    return commands


def require_intact(exp: Experiment) -> dict[str, Any]:
    """Every command on a locked experiment calls this first; it names each changed file."""
    lock = exp.read_lock()
    changed = changed_locked_files(exp, lock)
    if changed:
        commands = restore_commands(exp, locked_changes(exp, lock))
        raise RefusedError(
            f"locked files of experiment {exp.tag} changed since the lock: {', '.join(changed)}; "
            f"restore them ({'; '.join(f'`{c}`' for c in commands) or '`git restore -- <file>`'}) — "
            "a new question needs a new experiment (`gitera init NEW_TAG`)."
        )
    return lock


def require_on_branch(exp: Experiment) -> None:
    current = exp.repo.current_branch()
    if current != exp.branch:
        raise RefusedError(
            f"experiment {exp.tag} is changed only on its branch; run `git switch {exp.branch}` first "
            f"(you are on {current or 'a detached HEAD'})."
        )
    require_not_abandoned(exp)
    # a killed gitera commit may have moved the branch without updating these paths: finish it
    exp.repo.finish_interrupted_sync()


# --- abandoned experiments (gitera abandon; docs/commands.md, "Abandoning an experiment") ---
ABANDONED_PREFIX = "autoexp-abandoned/"
ABANDON_FILE = "abandoned.json"


def abandon_record(exp: Experiment) -> dict[str, Any] | None:
    """The abandonment committed at the tip of the experiment's branch (None: not abandoned)."""
    raw = exp.repo.show(f"refs/heads/{exp.branch}", exp.rel(ABANDON_FILE))
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    return record if isinstance(record, dict) else {"reason": "unreadable abandoned.json", "branch": exp.branch}


def require_not_abandoned(exp: Experiment) -> None:
    record = abandon_record(exp)
    if record is not None:
        raise RefusedError(
            f"experiment {exp.tag} was abandoned ({record.get('at', '?')}: {record.get('reason')}); its history stays on branch "
            f"{record.get('branch') or exp.branch} and nothing more can happen to it — to start again, switch to the branch you "
            f"began from (e.g. `git switch main`) and run `gitera init {exp.tag}`."
        )


def abandoned_here(repo: Repo) -> Experiment | None:
    """The abandoned experiment whose renamed branch is checked out, if it is one."""
    branch = repo.current_branch() or ""
    if not branch.startswith(ABANDONED_PREFIX):
        return None
    for tag in all_tags(repo):
        exp = Experiment(repo, tag, branch)
        if exp.path(ABANDON_FILE).exists():
            return exp
    return None


def abandoned_branches(repo: Repo, tag: str) -> list[str]:
    """The branches that keep abandoned experiments of this tag, oldest name first."""
    names = repo.git("for-each-ref", "--format=%(refname:short)", f"refs/heads/{ABANDONED_PREFIX}").split()
    return sorted(n for n in names if n.startswith(f"{ABANDONED_PREFIX}{tag}-") and n[len(ABANDONED_PREFIX) + len(tag) + 1:][:1].isdigit())
