"""The scoring engine behind `gitera pilot` and `gitera run` (contract: docs/eval-contract.md).

Imports flow one way: model/parse (pure) -> procs/schedule -> command/pymode -> run.
"""

from __future__ import annotations

from gitera.adapters.evalrun.model import Budget, EvalRun, EvalSpec, RetryPolicy, RowId, RowResult, Status
from gitera.adapters.evalrun.pilot import PLACEHOLDERS, check_pilot, is_placeholder
from gitera.adapters.evalrun.run import run_eval

__all__ = [
    "PLACEHOLDERS",
    "Budget",
    "EvalRun",
    "EvalSpec",
    "RetryPolicy",
    "RowId",
    "RowResult",
    "Status",
    "check_pilot",
    "is_placeholder",
    "run_eval",
]
