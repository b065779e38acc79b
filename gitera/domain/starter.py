"""Starter eval harnesses written by `gitera init --harness command|python`."""

from __future__ import annotations

from importlib import resources

from gitera.adapters.git import Repo
from gitera.core.errors import RefusedError

HARNESS_PATH = "eval/harness.py"
COMMAND = "python eval/harness.py"
PYTHON_TARGET = "eval.harness:score"


def starter_files(repo: Repo, kind: str) -> dict[str, bytes | None]:
    if (repo.root / HARNESS_PATH).exists():
        raise RefusedError(f"{HARNESS_PATH} already exists; move it away or run init without --harness.")
    source = resources.files("gitera") / "templates" / f"harness_{kind}.py"
    return {HARNESS_PATH: source.read_bytes()}
