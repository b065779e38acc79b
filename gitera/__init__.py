"""gitera: a git-native experiment tracker whose discipline is enforced by code.

Library use (read-only)::

    import gitera
    exp = gitera.open_experiment("path/to/repo", tag="prompt-v2")
    exp.frame.question, exp.attempts(), exp.results(exp.attempts()[-1])
"""

from __future__ import annotations

from typing import Any

from gitera.core.version import __version__

__all__ = ["ExperimentView", "__version__", "open_experiment"]


def __getattr__(name: str) -> Any:
    # imported on first use, so `gitera --help` and the hooks stay light
    if name in ("open_experiment", "ExperimentView"):
        from gitera import api

        return getattr(api, name)
    raise AttributeError(f"module 'gitera' has no attribute {name!r}")
