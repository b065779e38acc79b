"""Every git call gitera makes goes through here (subprocess to the git binary).

Commits are written with plumbing (a temporary index, ``commit-tree`` and a
compare-and-swap ``update-ref``), so gitera never touches the user's staged or
unstaged work beyond the exact paths it commits.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitera.core.errors import GiteraError, RefusedError, UsageError

ZERO = "0" * 40
_FULL_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
FILE_MODE = "100644"
Entry = tuple[str, str]  # (mode, object id) of a tree entry, e.g. ("100755", "3b18e5...")


class GitFailed(GiteraError):
    pass


STALE_LOCK_S = 3.0  # git holds a ref or index lock for milliseconds; one this old was left by a killed git
_LOCK_FILE = re.compile(r"Unable to create '([^']+\.lock)': File exists")
_LOCK_ADVICE = "let it finish (or, if no git command is running, delete that file) and run the command again."


def clear_stale_lock(stderr: str, *, stale_after: float = STALE_LOCK_S) -> bool:
    """Remove the git lock file named in ``stderr`` if a killed git process left it; True to retry.

    A SIGKILLed ``git update-ref`` or ``update-index`` leaves ``<ref>.lock`` or ``index.lock``
    behind, and every later git write then fails. gitera's own repository lock keeps other
    gitera processes out, so the only live holder could be the user's own git command: the lock
    is removed only once it has existed, unchanged, for ``stale_after`` seconds (waiting up to
    that long), and True is returned as soon as it disappears by itself.
    """
    import time

    m = _LOCK_FILE.search(stderr)
    if m is None:
        return False
    lock = Path(m.group(1))
    try:
        first = lock.stat()
    except FileNotFoundError:
        return True
    while True:
        age = time.time() - first.st_mtime
        if age >= stale_after:
            break
        time.sleep(min(0.1, stale_after - age))
        try:
            now = lock.stat()
        except FileNotFoundError:
            return True
        if (now.st_ino, now.st_mtime_ns) != (first.st_ino, first.st_mtime_ns):
            return False  # rewritten: a live git process holds it
    lock.unlink(missing_ok=True)
    return True


def _run(
    args: Sequence[str],
    cwd: Path,
    *,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    full_env = None
    if env is not None:
        full_env = {**os.environ, **env}
    for attempt in (1, 2):
        try:
            proc = subprocess.run(
                ["git", *args], cwd=cwd, input=input, env=full_env, capture_output=True
            )
        except FileNotFoundError:
            raise GitFailed("git was not found; install git and make sure it is on PATH.") from None
        if proc.returncode == 0 or attempt == 2 or not clear_stale_lock(proc.stderr.decode(errors="replace")):
            break
    if check and proc.returncode != 0:
        text = proc.stderr.decode(errors="replace")
        lock = _LOCK_FILE.search(text)
        if lock:
            raise GitFailed(f"git {args[0]} failed: {lock.group(1)} exists and is in use by another git process; {_LOCK_ADVICE}")
        err = text.strip().splitlines()
        detail = err[-1] if err else f"exit code {proc.returncode}"
        raise GitFailed(f"git {args[0]} failed: {detail}")
    return proc


def git(args: Sequence[str], cwd: Path, **kw: object) -> str:
    return _run(args, cwd, **kw).stdout.decode()  # type: ignore[arg-type]


def _plain(path: str) -> bool:
    """A path spelled as git stores it (no "./", "//", trailing "/"): the same name in a tree object."""
    return all(part and part not in (".", "..") for part in path.split("/"))


class _Reader:
    """One ``git cat-file --batch-command`` kept open for a command's lookups of commits and objects.

    A gitera command asks for the experiment branch's tip and a few small objects many times
    (one iterate attempt: ~13 separate git processes, ~1.4 ms each). This process answers each
    over a pipe. It sees other writers: git reads a loose ref's file on every lookup (packed refs
    are re-validated by stat) and rescans the packs when an object is missing; the one thing it
    would cache is the index, so index specs (``:path``) never come here. Lookups are serialized
    (the eval engine's threads share a Repo); a forked child starts its own process. A git older
    than 2.36 (no ``--batch-command``) gets the one-shot calls, as before.
    """

    BATCH = 32  # more specs than this go to a one-shot process: a reply is read before the next is asked

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._unavailable = False

    def query(self, root: Path, specs: Sequence[str], *, contents: bool = True) -> list[tuple[bytes, bytes, bytes] | None] | None:
        """(object id, type, content) per spec (content b"" unless ``contents``), None per missing
        object; None overall when this reader cannot take them."""
        if self._unavailable or len(specs) > self.BATCH or any("\n" in s or s.startswith(":") for s in specs):
            return None
        with self._lock:
            for attempt in (1, 2):
                proc = self._start(root)
                try:
                    return [self._ask(proc, spec, contents) for spec in specs]
                except (OSError, ValueError):  # the process died (killed, or an old git refused the option): one fresh start
                    self._stop()
                except BaseException:  # Ctrl-C mid-reply: a half-read answer must never be taken for the next one
                    self._stop()
                    raise
            self._unavailable = True
        return None

    def _start(self, root: Path) -> subprocess.Popen[bytes]:
        if self._proc is None or self._pid != os.getpid() or self._proc.poll() is not None:
            self._proc = subprocess.Popen(["git", "cat-file", "--batch-command"], cwd=root, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self._pid = os.getpid()
        return self._proc

    @staticmethod
    def _ask(proc: subprocess.Popen[bytes], spec: str, contents: bool) -> tuple[bytes, bytes, bytes] | None:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"contents " if contents else b"info ")
        proc.stdin.write(spec.encode() + b"\n")
        proc.stdin.flush()
        header = proc.stdout.readline()
        if not header.endswith(b"\n"):
            raise ValueError("git cat-file ended")
        parts = header.split()
        # "<spec> missing" (or "ambiguous"): the spec itself may hold spaces ("HEAD:my file")
        if len(parts) != 3 or not parts[2].isdigit():
            return None
        if not contents:
            return parts[0], parts[1], b""
        size = int(parts[2])
        body = proc.stdout.read(size + 1)
        if len(body) != size + 1:
            raise ValueError("git cat-file ended")
        return parts[0], parts[1], body[:size]

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and self._pid == os.getpid():
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the OS closes the pipe and git exits on its own
            pass


def parse_tree(data: bytes) -> dict[bytes, tuple[bytes, bytes]]:
    """A raw tree object's entries: name -> (mode, 20-byte object id)."""
    entries: dict[bytes, tuple[bytes, bytes]] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        entries[data[space + 1 : nul]] = (data[pos:space], data[nul + 1 : nul + 21])
        pos = nul + 21
    return entries


def tree_bytes(entries: Mapping[bytes, tuple[bytes, bytes]]) -> bytes:
    """A raw tree object's body, in git's order: by name, a folder's name as if it ended in "/"."""
    order = sorted(entries, key=lambda name: name + b"/" if entries[name][0] == b"40000" else name)
    return b"".join(entries[n][0] + b" " + n + b"\0" + entries[n][1] for n in order)


def blob_id(content: bytes) -> str:
    """The id git gives a blob with this content (sha1 object format)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def blob_id_for(content: bytes, hex_length: int) -> str:
    """The blob id in a repository whose ids are ``hex_length`` long (40: sha1, 64: sha256)."""
    return blob_id(content) if hex_length == 40 else hashlib.sha256(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class Repo:
    """A git repository as gitera sees it: its work tree, its git folder and its common folder (worktrees share it)."""
    root: Path  # the work tree's top level
    git_dir: Path
    common_dir: Path
    # what a command asks more than once and no gitera step changes (HEAD's branch): one git call
    _memo: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)
    _reader: _Reader = field(default_factory=_Reader, compare=False, repr=False)
    _listings: dict[str, dict[str, Entry]] = field(default_factory=dict, compare=False, repr=False)  # commit id -> its files

    @staticmethod
    def find(start: Path | None = None) -> Repo:
        cwd = start or Path.cwd()
        proc = _run(
            ["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"],
            cwd,
            check=False,
        )
        if proc.returncode != 0:
            raise UsageError(
                f"{cwd} is not inside a git repository; run `git init` first or cd into one."
            )
        top, gdir, common = proc.stdout.decode().splitlines()[:3]
        common_path = Path(common)
        if not common_path.is_absolute():
            common_path = (cwd / common_path).resolve()
        return Repo(Path(top), Path(gdir), common_path)

    # --- reading -------------------------------------------------------------
    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        return _run(args, self.root, input=input, check=check).stdout.decode()

    def rev(self, ref: str) -> str | None:
        found = self._reader.query(self.root, [ref + "^{commit}"], contents=False)
        if found is not None:
            return found[0][0].decode() if found[0] is not None else None
        proc = _run(["rev-parse", "--verify", "--quiet", ref + "^{commit}"], self.root, check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().strip() or None

    def head_commit(self) -> str | None:
        return self.rev("HEAD")

    def current_branch(self) -> str | None:
        if "branch" not in self._memo:
            proc = _run(["symbolic-ref", "--quiet", "--short", "HEAD"], self.root, check=False)
            self._memo["branch"] = (proc.stdout.decode().strip() or None) if proc.returncode == 0 else None
        return self._memo["branch"]

    def branch_exists(self, branch: str) -> bool:
        return self.rev(f"refs/heads/{branch}") is not None

    def check_ref_format(self, branch: str) -> bool:
        return _run(["check-ref-format", "--branch", branch], self.root, check=False).returncode == 0

    def show(self, rev: str, path: str) -> bytes | None:
        """Content of ``path`` at ``rev`` (``""`` for the index), or None if absent."""
        if "\n" in path:  # not expressible on cat-file's line protocol
            proc = _run(["cat-file", "blob", f"{rev}:{path}"], self.root, check=False)
            return proc.stdout if proc.returncode == 0 else None
        obj = self.cat_objects([f"{rev}:{path}"])[0]
        return obj[1] if obj is not None and obj[0] == b"blob" else None

    def cat_blobs(self, specs: Sequence[str]) -> list[bytes | None]:
        """Contents of several ``rev:path`` or blob ids in one git call."""
        return [obj[1] if obj else None for obj in self.cat_objects(specs)]

    def cat_objects(self, specs: Sequence[str]) -> list[tuple[bytes, bytes] | None]:
        """(type, content) of several ``rev:path`` or object ids in one git call; None if missing."""
        if not specs:
            return []
        found = self._reader.query(self.root, specs)
        if found is not None:
            return [None if f is None else (f[1], f[2]) for f in found]
        out = _run(["cat-file", "--batch"], self.root, input="".join(s + "\n" for s in specs).encode()).stdout
        results: list[tuple[bytes, bytes] | None] = []
        pos = 0
        for _ in specs:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].split()
            pos = nl + 1
            # "<spec> missing" (or "ambiguous"): the spec itself may hold spaces ("HEAD:my file")
            if len(header) != 3 or not header[2].isdigit():
                results.append(None)
                continue
            size = int(header[2])
            results.append((header[1], out[pos : pos + size]))
            pos += size + 1
        return results

    def ls_tree(self, rev: str, paths: Sequence[str] = (), recursive: bool = True) -> dict[str, str]:
        """path -> blob id at ``rev`` for the given paths (all paths when empty)."""
        named = self._named_entries(rev, paths) if recursive else None  # files named exactly: the reader answers
        if named is not None:
            return {path: oid for path, (_, oid) in named.items()}
        args = ["ls-tree", "-z", "--full-tree"]
        if recursive:
            args.append("-r")
        out = self.git(*args, rev, "--", *paths)
        result: dict[str, str] = {}
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            result[path] = meta.split()[2]
        return result

    def loose_path(self, oid: str) -> Path:
        """Where git keeps object ``oid`` as a loose file."""
        return self.common_dir / "objects" / oid[:2] / oid[2:]

    def present(self, oids: Sequence[str]) -> set[str]:
        """The ids among ``oids`` the object store already holds (loose or packed)."""
        if not oids:
            return set()
        out = _run(["cat-file", "--batch-check=%(objectname)"], self.root, input="".join(o + "\n" for o in oids).encode()).stdout.decode()
        return {line for line in out.splitlines() if line and not line.endswith(" missing")}

    def _named_entries(self, rev: str, paths: Sequence[str]) -> dict[str, Entry] | None:
        """path -> (mode, object id) at ``rev`` of files named exactly (absent ones left out, as
        ls-tree does), read from their folders' tree objects through the reader; None when a path
        is a folder or not plainly spelled, or ``rev`` does not resolve (the caller asks ``ls-tree``,
        which lists a folder and reports a bad revision)."""
        if not paths or not all(map(_plain, paths)):
            return None
        parts = [path.split("/") for path in paths]
        folders = sorted({"/".join(p[:-1]) for p in parts} | {""})
        found = self._reader.query(self.root, [f"{rev}:{folder}" if folder else f"{rev}^{{tree}}" for folder in folders])
        if found is None or found[0] is None or found[0][1] != b"tree" or len(found[0][0]) != 40:  # parse_tree reads sha1 trees
            return None
        trees = {folder: parse_tree(f[2]) for folder, f in zip(folders, found) if f is not None and f[1] == b"tree"}
        result: dict[str, Entry] = {}
        for path, p in zip(paths, parts):
            entry = trees.get("/".join(p[:-1]), {}).get(p[-1].encode())
            if entry is None:
                continue  # absent (or under a file, not a folder): ls-tree lists nothing for it
            if entry[0] == b"40000":
                return None
            result[path] = (entry[0].decode(), entry[1].hex())
        return result

    def ls_modes(self, rev: str, paths: Sequence[str]) -> dict[str, str]:
        """path -> git file mode at ``rev`` ("100644", "100755", "120000" symlink, "160000" submodule)."""
        named = self._named_entries(rev, paths)
        if named is not None:
            return {path: mode for path, (mode, _) in named.items()}
        out = self.git("ls-tree", "-r", "-z", "--full-tree", rev, "--", *paths)
        return {entry.split("\t", 1)[1]: entry.split(" ", 1)[0] for entry in out.split("\0") if entry}

    def ls_index(self, paths: Sequence[str]) -> dict[str, str]:
        """path -> staged blob id for the given paths (absent paths are missing)."""
        return {path: blob for path, (_, blob) in self.ls_index_entries(paths).items()}

    def ls_index_entries(self, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """path -> (staged mode, staged blob id) for the given paths (absent paths are missing)."""
        out = self.git("ls-files", "-s", "-z", "--", *paths)
        result: dict[str, tuple[str, str]] = {}
        for entry in out.split("\0"):
            if entry:
                meta, path = entry.split("\t", 1)
                fields = meta.split()
                result[path] = (fields[0], fields[1])
        return result

    def tracked(self, paths: Sequence[str]) -> set[str]:
        out = self.git("ls-files", "-z", "--", *paths)
        return {p for p in out.split("\0") if p}

    def status_porcelain(self) -> list[tuple[str, str]]:
        """(XY code, path) for every changed or untracked path, like `git status`."""
        out = self.git("status", "--porcelain=v1", "-z", "--untracked-files=all")
        items: list[tuple[str, str]] = []
        parts = out.split("\0")
        i = 0
        while i < len(parts):
            entry = parts[i]
            i += 1
            if not entry:
                continue
            code, path = entry[:2], entry[3:]
            if code[0] in "RC":
                i += 1  # the rename source follows
            items.append((code, path))
        return items

    def staged_changes(self) -> list[tuple[str, str, str | None]]:
        """(status letter, path, renamed-to) for the staged changes against HEAD."""
        base = "HEAD" if self.head_commit() else "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        out = self.git("diff", "--cached", "--name-status", "-M", "-z", base)
        parts = [p for p in out.split("\0")]
        changes: list[tuple[str, str, str | None]] = []
        i = 0
        while i < len(parts) and parts[i]:
            status = parts[i]
            if status[0] in "RC":
                changes.append((status[0], parts[i + 1], parts[i + 2]))
                i += 3
            else:
                changes.append((status[0], parts[i + 1], None))
                i += 2
        return changes

    # --- writing ------------------------------------------------------------
    def switch_new_branch(self, branch: str, start: str) -> None:
        # `git switch -c` keeps uncommitted work as it is: nothing is lost. --no-track: a branch
        # started from origin/main must not push to main.
        proc = _run(["switch", "--quiet", "--no-track", "-c", branch, start], self.root, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise RefusedError(f"could not create branch {branch} from {start} ({err[0] if err else 'git switch failed'}); "
                               "commit or stash your uncommitted changes and run the command again — nothing was changed.")
        self._memo.pop("branch", None)

    def undo_new_branch(self, branch: str, back: str | None, head: str) -> None:
        """Return to ``back`` (or the detached ``head``) and delete ``branch``, just made and still without commits."""
        self.git("switch", "--quiet", *([back] if back else ["--detach", head]))
        self.git("branch", "--quiet", "-D", branch)
        self._memo.pop("branch", None)

    def remote_url(self) -> str | None:
        """The URL of the remote this work is published to: the checked-out branch's remote, else
        origin, else the only remote; None without one."""
        remotes = self.git("remote").split()
        branch = self.current_branch()
        upstream = _run(["config", "--get", f"branch.{branch}.remote"], self.root, check=False).stdout.decode().strip() if branch else ""
        name = upstream if upstream in remotes else "origin" if "origin" in remotes else remotes[0] if len(remotes) == 1 else None
        if name is None:
            return None
        return _run(["config", "--get", f"remote.{name}.url"], self.root, check=False).stdout.decode().strip() or None

    def default_branch(self) -> str | None:
        """The branch new work starts from: origin's HEAD, else init.defaultBranch, main or master
        (a local branch when one exists, else the remote-tracking one); None when none exists."""
        names: list[str] = []
        remote = _run(["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"], self.root, check=False)
        if remote.returncode == 0 and remote.stdout.strip():
            names.append(remote.stdout.decode().strip().removeprefix("origin/"))
        configured = _run(["config", "--get", "init.defaultBranch"], self.root, check=False).stdout.decode().strip()
        names += [n for n in (configured, "main", "master") if n]
        for name in dict.fromkeys(names):
            for ref in (f"refs/heads/{name}", f"refs/remotes/origin/{name}"):
                if self.rev(ref) is not None:
                    return name if ref.startswith("refs/heads/") else f"origin/{name}"
        return None

    def rename_branch(self, old: str, new: str) -> None:
        """`git branch -m`: the branch keeps its commits and reflog under the new name; HEAD follows it
        when it was checked out, and the work tree is not touched. Refuses to overwrite ``new``."""
        self.git("branch", "-m", old, new)
        self._memo.pop("branch", None)

    def write_blobs(self, contents: Sequence[bytes], object_format_len: int) -> list[str]:
        """Store blobs and return their ids. SHA-1 repositories get loose objects written directly
        (zlib of "blob <size>\\0" + content, git's own format): one file each instead of one git
        process each. Other object formats go through `git hash-object`."""
        ids = []
        for content in contents:
            if object_format_len != 40:
                ids.append(_run(["hash-object", "-w", "--stdin"], self.root, input=content).stdout.decode().strip())
                continue
            ids.append(self._write_loose(b"blob", content))
        return ids

    def _write_loose(self, kind: bytes, body: bytes) -> str:
        """Store one object (SHA-1 repositories) as git does: zlib of "<kind> <size>\\0" + body."""
        import zlib

        data = b"%s %d\0" % (kind, len(body)) + body
        sha = hashlib.sha1(data).hexdigest()
        target = self.common_dir / "objects" / sha[:2] / sha[2:]
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="tmp_obj_")
            with os.fdopen(fd, "wb") as fh:
                fh.write(zlib.compress(data))
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        return sha

    def _index_info(self, files: Mapping[str, Entry | None], env: Mapping[str, str] | None = None) -> None:
        """Set ((mode, object id)) or remove (None) index entries in one `git update-index --index-info` call."""
        zero = "0" * 40
        lines = "".join(f"{e[0]} {e[1]}\t{path}\n" if e else f"0 {zero}\t{path}\n" for path, e in files.items())
        if lines:
            _run(["update-index", "--index-info"], self.root, input=lines.encode(), env=env)

    def make_commit(self, parent: str, files: Mapping[str, bytes | Path | None], message: str) -> str:
        """A commit of ``parent``'s tree with ``files`` set (None deletes), on no branch. A ``Path``
        value is the content of that file, which git reads itself (a large file never sits in memory)."""
        names = [p for p, c in files.items() if isinstance(c, bytes)]
        blobs = dict(zip(names, self.write_blobs([c for c in files.values() if isinstance(c, bytes)], len(parent))))
        for name, content in files.items():  # a streamed split's files
            if isinstance(content, Path):
                blobs[name] = _run(["hash-object", "-w", "--no-filters", "--", str(content)], self.root).stdout.decode().strip()
        return self.compose(parent, {p: (FILE_MODE, blobs[p]) if p in blobs else None for p in files}, message)

    def compose(self, parent: str, entries: Mapping[str, Entry | None], message: str) -> str:
        """A commit of ``parent``'s tree with ``entries`` set to (mode, object id) (None deletes), on no branch:
        objects already in the repository (a locked file's blob, with its mode) are reused as they are."""
        tree = ((self._tree_of(parent) if not entries else None) or (self._tree_written(parent, entries) if len(parent) == 40 else None)
                or self._tree_via_index(parent, entries))
        return _run(["commit-tree", tree, "-p", parent, "-F", "-"], self.root, input=message.encode()).stdout.decode().strip()

    def tree_entries(self, rev: str, paths: Sequence[str] = ()) -> dict[str, Entry]:
        """path -> (mode, object id) of every file (or of ``paths``) at ``rev``, recursively."""
        named = self._named_entries(rev, paths)
        if named is not None:
            return named
        whole = not paths and _FULL_ID.fullmatch(rev) is not None  # an object id's tree never changes: listed once per command
        if whole and rev in self._listings:
            return dict(self._listings[rev])
        out = self.git("ls-tree", "-r", "-z", "--full-tree", rev, "--", *paths)
        result: dict[str, Entry] = {}
        for entry in out.split("\0"):
            if entry:
                meta, path = entry.split("\t", 1)
                mode, _, oid = meta.split()
                result[path] = (mode, oid)
        if whole:
            self._listings[rev] = dict(result)
        return result

    def remember(self, key: str, compute: Callable[[], str]) -> str:
        """``compute()`` once per Repo object (one command): for what no step of the command changes."""
        if self._memo.get(key) is None:
            self._memo[key] = compute()
        value = self._memo[key]
        assert value is not None
        return value

    def _tree_of(self, commit: str) -> str | None:
        """The tree id of ``commit`` (None when the reader cannot say)."""
        found = self._reader.query(self.root, [f"{commit}^{{tree}}"], contents=False)
        return found[0][0].decode() if found and found[0] is not None else None

    def _tree_via_index(self, parent: str, changes: Mapping[str, Entry | None]) -> str:
        """The tree of ``parent`` with ``changes`` (blob id, or None to delete), through a private index."""
        with tempfile.TemporaryDirectory(prefix="gitera-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            _run(["read-tree", parent], self.root, env=env)
            self._index_info(changes, env=env)
            return _run(["write-tree"], self.root, env=env).stdout.decode().strip()

    def _tree_written(self, parent: str, changes: Mapping[str, Entry | None]) -> str | None:
        """The same tree as ``_tree_via_index``, built here: one `cat-file --batch` for the trees
        on the changed paths, new trees written as loose objects (SHA-1 repositories). Three git
        processes fewer per commit; None (use the index) for anything unusual — a path where a
        folder is a file, a line break in a name."""
        if not changes or any("\n" in p or p.startswith("/") or "//" in p for p in changes):
            return None
        folders = sorted({p.rsplit("/", i)[0] for p in changes for i in range(1, p.count("/") + 1)} | {""}, key=lambda d: -d.count("/") - (d != ""))
        if any(p in folders for p in changes):
            return None  # a file and a folder of the same name in one change
        found = self.cat_objects([f"{parent}^{{tree}}" if d == "" else f"{parent}:{d}" for d in folders])
        trees: dict[str, dict[bytes, tuple[bytes, bytes]]] = {}
        for folder, obj in zip(folders, found):
            if obj is not None and obj[0] != b"tree":
                return None
            trees[folder] = parse_tree(obj[1]) if obj else {}
        for path, entry in changes.items():
            folder, _, name = path.rpartition("/")
            if entry is None:
                trees[folder].pop(name.encode(), None)
            else:
                old = trees[folder].get(name.encode())
                if old is not None and old[0] == b"40000":
                    return None  # a folder would become a file
                trees[folder][name.encode()] = (entry[0].encode(), bytes.fromhex(entry[1]))
        tree_id = ""
        for folder in folders:  # deepest first: each writes its entry into its parent
            entries = trees[folder]
            tree_id = self._write_loose(b"tree", tree_bytes(entries)) if entries or folder == "" else ""
            if folder:
                up, _, name = folder.rpartition("/")
                if tree_id:
                    trees[up][name.encode()] = (b"40000", bytes.fromhex(tree_id))
                else:
                    trees[up].pop(name.encode(), None)  # git keeps no empty folder
        return tree_id

    def commit_files(
        self,
        branch: str,
        files: Mapping[str, bytes | Path | None],
        message: str,
        *,
        sync_worktree: bool = True,
        before_update: Callable[[str], None] | None = None,
    ) -> str:
        """Make one commit on ``branch`` that sets ``files`` (None deletes) on top of its tip.

        Uses a private index, so the user's staged work is not swept in; the branch
        moves compare-and-swap, so a concurrent update is refused rather than lost.
        When the branch is checked out, the work tree and index entries of exactly
        these paths are brought in line with the new commit.
        """
        ref = f"refs/heads/{branch}"
        old = self.rev(ref)
        if old is None:
            raise UsageError(f"branch {branch} does not exist; run `gitera init` first.")
        new = self.make_commit(old, files, message)
        if before_update is not None:  # the commit and its objects exist; the branch has not moved yet
            before_update(new)
        sync = sync_worktree and self.current_branch() == branch
        if sync:  # a kill between the ref move and the sync is finished by finish_interrupted_sync
            self._write_journal({"ref": ref, "commit": new, "paths": list(files)})
        proc = _run(["update-ref", "-m", "gitera: " + message.splitlines()[0][:60], ref, new, old], self.root, check=False)
        if proc.returncode != 0:
            self._journal_path().unlink(missing_ok=True)
            lock = _LOCK_FILE.search(proc.stderr.decode(errors="replace"))
            if lock:
                raise RefusedError(f"branch {branch} is locked by another git process ({lock.group(1)} exists); nothing was changed — {_LOCK_ADVICE}")
            raise RefusedError(
                f"branch {branch} moved while gitera was writing (another process?); "
                "nothing was changed — run the command again."
            )
        if sync:
            self._sync_paths(files)
            self._journal_path().unlink(missing_ok=True)
        return new

    def _journal_path(self) -> Path:
        return self.git_dir / "gitera-sync.json"

    def _write_journal(self, data: Mapping[str, object]) -> None:
        import json

        path = self._journal_path()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    def finish_interrupted_sync(self) -> list[str]:
        """Bring the work tree and index in line with a gitera commit whose sync was killed.

        Only the paths that commit wrote are touched, and only when the branch is still
        checked out at that commit; returns the paths brought up to date.
        """
        import json

        path = self._journal_path()
        try:
            journal = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            return []
        ref, commit, paths = journal.get("ref", ""), journal.get("commit"), list(journal.get("paths") or [])
        branch = ref.removeprefix("refs/heads/")
        done: list[str] = []
        if commit and self.rev(ref) == commit and self.current_branch() == branch and paths:
            contents = self.cat_blobs([f"{commit}:{p}" for p in paths])
            for p in paths:
                (self.root / p).with_name(Path(p).name + ".gitera-tmp").unlink(missing_ok=True)
            self._sync_paths(dict(zip(paths, contents)))
            done = paths
        path.unlink(missing_ok=True)
        return done

    def _sync_paths(self, files: Mapping[str, bytes | Path | None]) -> None:
        ids: dict[str, str | None] = {}
        for path, content in files.items():
            target = self.root / path
            if isinstance(content, Path):  # copied, never read into memory
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".gitera-tmp")
                shutil.copyfile(content, tmp)
                os.replace(tmp, target)
                ids[path] = file_blob_id(content)
                continue
            ids[path] = blob_id(content) if content is not None else None
            if content is None:
                if target.exists():
                    target.unlink()
                continue
            if not target.exists() or target.read_bytes() != content:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".gitera-tmp")
                tmp.write_bytes(content)
                os.replace(tmp, target)
        self._index_info({p: ((FILE_MODE, i) if i is not None else None) for p, i in ids.items()})


# --- the scored commit as a tar for a Dask worker -------------------------


def file_blob_id(path: Path) -> str:
    """`blob_id` of a file's content, read in chunks."""
    digest = hashlib.sha1()
    digest.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_tar(repo: Repo, commit: str, skip: Callable[[str], bool] | None = None) -> bytes:
    """A tar of ``commit``'s tree, byte for byte: what `git archive` makes, without its
    export-ignore / export-subst rewriting (a worker must see exactly the committed files).
    Paths for which ``skip`` is true are left out; submodules are empty folders, as in `git archive`."""
    import io
    import tarfile

    listing = _run(["ls-tree", "-r", "-z", "--full-tree", commit], repo.root).stdout.decode("utf-8", "surrogateescape")
    entries = []
    for item in listing.split("\0"):
        if not item:
            continue
        meta, path = item.split("\t", 1)
        mode, kind, oid = meta.split()
        if skip is not None and skip(path):
            continue
        entries.append((mode, kind, oid, path))
    blobs = repo.cat_blobs([oid for _, kind, oid, _ in entries if kind == "blob"])
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        contents = iter(blobs)
        for mode, kind, _oid, path in entries:
            info = tarfile.TarInfo(path)
            info.mtime = 0
            if kind != "blob":  # a submodule (gitlink)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            data = next(contents) or b""
            if mode == "120000":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, data.decode("utf-8", "surrogateescape"), 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755 if mode == "100755" else 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
