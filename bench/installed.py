"""Benchmarks time gitera as a user runs it: with its bytecode cached, as an install leaves it.

A shell with PYTHONDONTWRITEBYTECODE set (some sandboxes and CI images set it) makes every
gitera process compile its ~70 modules again, about 50 ms that no installed copy pays.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path


def as_installed() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "gitera"), quiet=1)
