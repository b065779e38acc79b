"""A dead man's switch for secrets on disk: paths destroyed the moment a gitera process ends,
even when it is killed with SIGKILL (which runs no ``finally``).

``destroyed_on_exit(patterns)`` starts a small watcher in its own session (so a ``kill -9`` of
the command's process group does not reach it) that blocks reading a pipe only the command
holds. When the command closes it — on leaving the block, or by dying — the watcher removes
every path matching ``patterns``. The patterns must name paths this one process owns (a
random token in each name): the watcher takes no lock, so it never makes a newer gitera
command wait, and it never touches what such a command made.

A commit being published is covered too (``Switch.objects``, ``Switch.landing``, then
``Switch.landed`` once the branch moved): the loose objects it writes into the repository are
destroyed unless the branch was confirmed on it (or, unconfirmed, points at it), so
a kill between writing a verdict's objects and moving its branch leaves no dangling blob with
test results for `git cat-file --batch-all-objects` to find.

What it cannot stop: a process that kills the watcher first; the next gitera command's sweep
(gitera.adapters.repolock) is the second line, and docs/threat-model.md says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_WATCHER = r"""
import glob, os, shutil, signal, subprocess, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(s, signal.SIG_IGN)
data = b""
while True:
    chunk = sys.stdin.buffer.read(65536)
    if not chunk:
        break
    data += chunk
objects, landing, confirmed = [], None, False
for line in data.decode("utf-8", "replace").splitlines():
    kind, _, rest = line.partition("\t")
    if kind == "O":
        objects.append(rest)
    elif kind == "R":
        landing = rest.split("\t")
    elif kind == "L":
        confirmed = True
landed = confirmed
if not confirmed and landing is not None and len(landing) == 3:
    root, ref, commit = landing
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "--verify", "--quiet", ref], capture_output=True, text=True)
        landed = out.stdout.strip() == commit if out.returncode in (0, 1) else None
    except OSError:
        landed = None  # cannot tell: keep the objects rather than risk a branch pointing at a deleted commit
if landed is False:
    for path in objects:
        try:
            os.unlink(path)
        except OSError:
            pass
for pattern in sys.argv[1:]:
    for path in glob.glob(pattern):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
"""


@dataclass(frozen=True)
class Switch:
    """Tell the watcher about a commit being published (see the module's docstring)."""

    fd: int

    def objects(self, paths: Sequence[Path]) -> None:
        """Loose object files (written now) to destroy unless the branch lands on the commit."""
        self._send("".join(f"O\t{p}\n" for p in paths))

    def landing(self, root: Path, ref: str, commit: str) -> None:
        """The commit those objects belong to: kept if ``ref`` points at it when the process ends."""
        self._send(f"R\t{root}\t{ref}\t{commit}\n")

    def landed(self) -> None:
        """The branch moved onto the commit: keep its objects whatever the branch points at by the
        time the watcher looks (on a busy machine that can be after the user amended the commit,
        which reuses them)."""
        self._send("L\n")

    def _send(self, text: str) -> None:
        data = text.encode()
        while data:
            data = data[os.write(self.fd, data):]


@contextmanager
def destroyed_on_exit(patterns: Sequence[str]) -> Iterator[Switch]:
    """Inside the block, whatever matches ``patterns`` is destroyed once the block is left or the
    process dies, whichever comes first."""
    read_end, write_end = os.pipe()  # not inheritable: harness processes never hold the write end
    try:
        subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHER, *patterns], stdin=read_end,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.close(read_end)
    try:
        yield Switch(write_end)
    finally:
        os.close(write_end)
