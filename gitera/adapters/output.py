"""The one place gitera writes to the terminal: text for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Output:
    """Where a command writes: text or --json, quiet or not, to stdout and stderr."""
    json_mode: bool = False
    quiet: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    def info(self, text: str) -> None:
        """Human progress and explanations; silent in --json and --quiet modes."""
        if not self.json_mode and not self.quiet:
            print(text, file=self.stdout, flush=True)

    def warn(self, text: str) -> None:
        print(f"gitera: warning: {text}", file=self.stderr, flush=True)

    def error(self, text: str) -> None:
        print(f"gitera: {text}", file=self.stderr, flush=True)

    def result(self, data: Mapping[str, Any] | list[Any], text: str | None = None) -> None:
        """The command's result: JSON in --json mode, else the text (if any)."""
        if self.json_mode:
            print(json.dumps(data, indent=2, sort_keys=True, default=str), file=self.stdout, flush=True)
        elif text is not None and not self.quiet:
            print(text, file=self.stdout, flush=True)

    @property
    def is_tty(self) -> bool:
        return bool(getattr(self.stderr, "isatty", lambda: False)())
