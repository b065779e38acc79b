"""Shared helpers for the test harnesses (they run as real subprocesses)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def rows() -> list[dict]:
    with open(os.environ["GITERA_ROWS"], encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def count_call(n: int) -> None:
    """Append one line per invocation to $HARNESS_COUNTER (tests count eval calls with it)."""
    path = os.environ.get("HARNESS_COUNTER")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{n}\n")


def context() -> dict:
    return {
        "cwd": str(Path.cwd()),
        "tag": os.environ["GITERA_TAG"],
        "arm": os.environ["GITERA_ARM"],
        "params": json.loads(os.environ["GITERA_ARM_PARAMS"]),
        "split": os.environ["GITERA_SPLIT"],
        "trial": int(os.environ["GITERA_TRIAL"]),
    }
