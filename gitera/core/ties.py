"""Exact decisions at ties: a statistic against its bound, with a relative tolerance (pure).

Floating-point arithmetic rounds. A one-row gain over n rows is 1/n and its paired standard
error is exactly 1/n too, yet the two computed numbers differ in their last bits, so a plain
``gain > threshold`` kept such a change for some n (10, 15, 20, 40) and dropped it for others;
an effect of exactly 0.05 averaged over 3 trials comes out as 0.049999…, below a 0.05
threshold. Two numbers within ``REL_TOL`` of the larger magnitude are therefore a **tie**, and
every rule says what a tie does (docs/statistics.md, "Ties"):

- the keep/discard ladder keeps a gain only when it is :func:`above` its threshold: a tie is
  not kept (a gain must exceed the noise, not equal it);
- ``clears_threshold`` asks :func:`at_least`: an effect equal to the threshold clears it.

Standard library only, so the verdict rules and the loop's decision import it without numpy.
"""

from __future__ import annotations

REL_TOL = 1e-9  # relative to the larger magnitude: far above rounding (~1e-16), far below any real effect


def tie(a: float, b: float) -> bool:
    """The same number up to rounding: equal, or within REL_TOL of the larger magnitude (NaN ties nothing)."""
    return a == b or abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def above(a: float, b: float) -> bool:
    """``a > b`` beyond a tie (False for NaN)."""
    return a > b and not tie(a, b)


def at_least(a: float, b: float) -> bool:
    """``a >= b``, a tie included (False for NaN)."""
    return a >= b or tie(a, b)
