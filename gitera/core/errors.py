"""The one error type users see, and the documented exit codes.

Every refusal or failure a user can cause is raised as a ``GiteraError``; the CLI
boundary (``gitera.cli``) prints its one-sentence message and exits with its code.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """Exit codes, documented in docs/commands.md (keep both in step)."""

    OK = 0
    FAILED = 1  # a check ran and found problems (verify, hooks) or an unexpected bug
    USAGE = 2  # bad command line, bad or missing config (frame, data file)
    REFUSED = 3  # a discipline rule refused the action (lock, seal opened, budget, dirty tree)
    SEAL = 4  # seal integrity or key custody: tampered, wrong key, missing key
    EVAL = 5  # the eval harness failed in a way that stops the command
    BUSY = 6  # another gitera process holds the repository lock
    INTERRUPTED = 130


class GiteraError(Exception):
    """A user-facing error: one sentence saying what happened and what to do."""

    exit_code: Exit = Exit.FAILED

    def __init__(self, message: str, exit_code: Exit | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(GiteraError):
    exit_code = Exit.USAGE


class ConfigError(GiteraError):
    """A bad frame, data file or option value; the message names file:line:field."""

    exit_code = Exit.USAGE


class RefusedError(GiteraError):
    """A discipline rule refused the action."""

    exit_code = Exit.REFUSED


class SealError(GiteraError):
    exit_code = Exit.SEAL


class EvalError(GiteraError):
    exit_code = Exit.EVAL


class BusyError(GiteraError):
    exit_code = Exit.BUSY
