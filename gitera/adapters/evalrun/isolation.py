"""How every harness process is started: the ONE place for its argv, environment and lifetime (issue 12).

Every executor (command mode, python mode, a judge, and any future one) builds a harness
process from these three functions, so a harness runs the same way wherever it is launched:

- :func:`harness_env` — a scrubbed environment: ``ENV_ALWAYS`` (PATH without relative entries,
  HOME, locale, ...), the names the frame lists in ``eval.env``, and gitera's GITERA_* contract
  variables; never PYTHONPATH, PYTHONSTARTUP, LD_PRELOAD, BASH_ENV or any other GITERA_* variable
  (the test set's key travels as GITERA_SEAL_KEY). Python's user site is off (PYTHONNOUSERSITE).
- :func:`command_argv` / :func:`python_argv` — ``/bin/sh -c <command>``; for python mode the
  interpreter in isolated mode (``-I``: no PYTHON* variable, no user site, no script folder or
  current folder on sys.path; ``-B``: no bytecode written into the checkout).
- :func:`launch_harness` — the process in a new session (its own process group, so a timeout or
  Ctrl-C kills its children too), watched: if gitera dies, even by ``kill -9``, the watcher
  kills the group (and any process carrying this gitera's GITERA_WATCH mark) within a second.
  :func:`finish` is called once the process is reaped: what is left of its group is killed (a
  harness's processes live no longer than its invocation) and the watcher forgets it.

The watcher is one ``/bin/sh`` per gitera process, started at the first launch. It reads
``+<pgid>`` / ``-<pgid>`` lines on a pipe only gitera holds; when the pipe closes (gitera exited
or was killed) it sends SIGTERM to every group still registered, waits a second, and sends
SIGKILL to them and to every process whose environment holds the mark (Linux: /proc). A normal
exit has released every group, so the watcher then just exits.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from gitera.core.frame import ENV_ALWAYS, ENV_NEVER, env_matches

WATCH_VAR = "GITERA_WATCH"
_WATCHER = r"""
groups=" "
while IFS= read -r line; do
  case $line in
    +*) groups="$groups${line#+} " ;;
    -*) p=${line#-}; case $groups in *" $p "*) groups="${groups%% "$p" *} ${groups#* "$p" }" ;; esac ;;
  esac
done
[ "$groups" = " " ] && exit 0
for g in $groups; do kill -TERM -"$g" 2>/dev/null; done
sleep 1
for g in $groups; do kill -KILL -"$g" 2>/dev/null; done
for f in $(grep -lzsx "GITERA_WATCH=$1" /proc/[0-9]*/environ 2>/dev/null); do
  p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null
done
"""


def harness_env(source: Mapping[str, str], passthrough: Sequence[str], contract: Mapping[str, str]) -> dict[str, str]:
    """The environment a harness gets: the allowed part of ``source`` and gitera's ``contract`` variables."""
    allowed = (*ENV_ALWAYS, *passthrough)
    env = {k: v for k, v in source.items()
           if any(env_matches(k, e) for e in allowed) and not any(env_matches(k, n) for n in ENV_NEVER)}
    if "PATH" in env:  # a relative entry would resolve inside the checkout: a `python` planted there
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if os.path.isabs(p))
    return {**env, "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", **contract}


def command_argv(command: str) -> list[str]:
    return ["/bin/sh", "-c", command]


def python_argv(source: str, *args: str) -> list[str]:
    """gitera's own interpreter, isolated (-I) and writing no bytecode (-B), running ``source``."""
    return [sys.executable, "-I", "-B", "-c", source, *args]


def launch_harness(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: IO[Any] | int,
    stderr: IO[Any] | int,
    stdin: IO[Any] | int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start a harness (or any child that must die with gitera) in its own session, watched."""
    watcher = _Watcher.get()
    proc = subprocess.Popen(list(argv), cwd=cwd, env={**env, WATCH_VAR: watcher.token}, stdin=stdin, stdout=stdout,
                            stderr=stderr, start_new_session=True)
    watcher.send(f"+{proc.pid}")
    return proc


def finish(proc: subprocess.Popen[bytes]) -> None:
    """The process has been reaped: kill what is left of its group and let the watcher forget it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _Watcher.get().send(f"-{proc.pid}")


class _Watcher:
    """The per-process watcher (module state on purpose: one for the lifetime of this gitera process)."""

    _instance: _Watcher | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        read, self._write = os.pipe()  # both ends close-on-exec: no harness inherits the write end
        try:
            self._pid: int | None = os.posix_spawn(
                "/bin/sh", ["sh", "-c", _WATCHER, "gitera-watch", self.token], {"PATH": "/usr/bin:/bin"},
                file_actions=[(os.POSIX_SPAWN_DUP2, read, 0), (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                              (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)],
                setpgroup=0,  # not in gitera's group: a signal to gitera's terminal group leaves it to clean up
            )
        except OSError:  # no /bin/sh: harnesses still run in their own sessions, unwatched
            self._pid = None
        os.close(read)

    @classmethod
    def get(cls) -> _Watcher:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Watcher()
            return cls._instance

    def send(self, line: str) -> None:
        try:
            os.write(self._write, (line + "\n").encode())
        except OSError:  # the watcher is gone (killed by someone): nothing to tell it
            pass
