"""The verdict's statistics in one call: per-row x trial scores in, a :class:`rules.Verdict` out.

This is the one module that joins :mod:`gitera.core.stats` (numpy, scipy) and the pure rules of
:mod:`gitera.core.rules` (standard library only): the rules stay importable without numpy, and
neither of the two imports the other's caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from gitera.core import stats
from gitera.core.errors import ConfigError
from gitera.core.rules import ArmInput, Threshold, Verdict, decide, severity_weights

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike


def analyze(
    baseline_scores: ArrayLike,
    arm_scores: Mapping[str, ArrayLike],
    slices: ArrayLike | Mapping[str, ArrayLike] | None = None,
    *,
    threshold: Threshold,
    seed: int = 0,
    clusters: ArrayLike | None = None,
    severity: ArrayLike | None = None,
    ci_method: str = "bootstrap",
    n_resamples: int = 2000,
    power: float = 0.8,
) -> Verdict:
    """Everything from per-row x trial score arrays in one call (lazy-imports gitera.stats).

    ``baseline_scores`` and each of ``arm_scores``: shape (rows, trials) (or (rows,)), the same
    rows in the same order. ``slices``: one label per row, or a mapping slice column -> one label
    per row (every column is analysed; slices are then named ``column=label``). ``clusters``: one
    cluster label per row (cluster-robust CI and test). ``severity``: one non-negative weight per
    row; the effect is then severity-weighted and the unweighted effect must clear the threshold
    too (slices stay unweighted: a loss floor is about rows, not weights).
    """
    base = stats.row_means(baseline_scores, name="baseline")
    arm_rows = {name: stats.row_means(s, name=name) for name, s in arm_scores.items()}
    for name, rows in arm_rows.items():
        if rows.shape[0] != base.shape[0]:
            raise ConfigError(
                f"arm {name} has {rows.shape[0]} rows but the baseline has {base.shape[0]}; "
                "score every arm on the same rows"
            )
    n = base.shape[0]
    # Labels are sorted once here, not once per arm (or per pass): at a million rows sorting
    # them was most of a binary verdict's time.
    groups = stats.groups(clusters, n, "clusters") if clusters is not None else None
    comparisons = stats.compare_arms(
        base, arm_rows, alpha=threshold.alpha, ci_method=ci_method, clusters=groups,
        n_resamples=n_resamples, seed=seed, weights=severity,
    )
    unweighted = (
        stats.compare_arms(
            base, arm_rows, alpha=threshold.alpha, ci_method=ci_method, clusters=groups,
            n_resamples=n_resamples, seed=seed,
        )
        if severity is not None
        else None
    )
    columns: dict[str | None, stats.Groups] = {}
    if isinstance(slices, Mapping):
        columns.update({column: stats.groups(labels, n, "slices") for column, labels in slices.items()})
    elif slices is not None:
        columns[None] = stats.groups(slices, n, "slices")
    inputs: list[ArmInput] = []
    for name, rows in arm_rows.items():
        c = comparisons[name]
        sl = tuple(
            replace(s, name=s.name if column is None else f"{column}={s.name}", column=column)
            for column, labels in columns.items()
            for s in stats.slice_noninferiority(
                rows - base, labels, floor=threshold.slice_loss_floor, alpha=threshold.alpha,
                direction=threshold.direction, power=power,
            )
        )
        u = unweighted[name] if unweighted is not None else None
        inputs.append(
            ArmInput(
                name=name, effect=c.effect, ci_low=c.ci_low, ci_high=c.ci_high, p_value=c.p_value,
                n=c.n, sd_diff=c.sd_diff, slices=sl,
                unweighted=(u.effect, u.ci_low, u.ci_high) if u is not None else None,
            )
        )
    v = decide(inputs, threshold, power=power)
    details = {
        "comparisons": {name: asdict(c) for name, c in comparisons.items()},
        **({"unweighted_comparisons": {name: asdict(c) for name, c in unweighted.items()}} if unweighted else {}),
        "noise_floor": asdict(stats.noise_floor(baseline_scores)) if stats.n_trials(baseline_scores) >= 2 else None,
    }
    return Verdict(v.decision, v.arm, v.slices, v.reasons, v.arms, v.threshold, v.rows_needed, details)


def analyze_rows(
    baseline_scores: ArrayLike,
    arm_scores: Mapping[str, ArrayLike],
    rows: Sequence[Mapping[str, Any]],
    *,
    threshold: Threshold,
    seed: int,
    slice_columns: Sequence[str] = (),
    cluster: str | None = None,
    severity: str | None = None,
) -> Verdict:
    """:func:`analyze` with the slices, clusters and severity weights read from the scored rows'
    columns, as the frame names them (the verdict, and ``gitera verify`` recomputing it)."""
    return analyze(
        baseline_scores, arm_scores,
        {c: [str(r.get(c)) for r in rows] for c in slice_columns} or None,
        threshold=threshold, seed=seed,
        clusters=[str(r.get(cluster)) for r in rows] if cluster else None,
        severity=severity_weights(rows, severity) if severity else None,
    )
