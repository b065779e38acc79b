"""The pure parts of ``gitera split``: stratified assignment, caps, the audit and the sizing check.

Nothing here touches git, files or the terminal; ``gitera.commands`` calls these functions and
writes what they return. The algorithm is documented in docs/data-and-split.md; in short:

1. **Caps** (optional, default off) drop rows beyond ``cap_per_value`` per value of ``cap_by``,
   then shrink the most frequent value to at most ``cap_dominant_fraction`` of the rows. Capped
   rows are listed in the result, never silently dropped.
2. **Strata**: the joint value of the ``stratify`` columns. Within a stratum rows are ordered by
   id, so the split does not depend on the file's row order, only on the ids and the seed.
3. **Ratio mode** (the default): each stratum of ``n`` rows gets ``floor(ratio * n)`` rows per
   part; the ``n - sum(floors)`` leftover rows go one each to the parts with the largest
   remainder plus the running deficit of that part over the strata already done (so the
   totals stay close to the ratios too). Every part stays within one row of ``ratio * n``.
   A stratum with at least 3 rows that would get no test row gives one to test, taken from
   a part that had received a leftover row (there always is one), so the one-row bound
   still holds. Strata of 1 or 2 rows follow the rounding (usually dev/train); a slice value
   or label left without any test row that way is refused (``check_test_coverage``, rule 9).
4. **Gate**: within each stratum, ``gate_fraction`` of its dev rows (same rounding) become the
   ``gate`` split reserved for the generalization gate; ``dev`` then means dev minus gate.
5. **k-fold mode**: under 50 rows (after caps) the test rows are set aside as in 3., and
   every other row is ``dev`` with a fold id 0..k-1, dealt round-robin over the strata in a
   seeded order (fold sizes and per-stratum fold counts differ by at most one);
   ``k = min(5, non-test rows)``; no separate gate (the held-out fold plays that part).
6. **Column mode**: ``split_column`` assigns train/dev/test per row; only the gate is drawn.

Randomness comes only from ``numpy.random.default_rng(seed)``; the same rows, ids and seed give
the same result on every machine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitera.core.errors import ConfigError, RefusedError

if TYPE_CHECKING:
    import numpy as np

SPLITS = ("train", "dev", "gate", "test")
PARTS = ("train", "dev", "test")
KFOLD_BELOW = 50
MAX_FOLDS = 5
MIN_TEST_STRATUM = 3
MISMATCH_PP = 5.0
MISMATCH_P = 0.01
CAPPED = "capped"


def value_key(value: object) -> str:
    """The text a value is grouped by: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Capped:
    """A row the caps left out, and why."""

    id: str
    value: str
    reason: str


@dataclass(frozen=True)
class SplitResult:
    """Where every input row went, in input order (``None`` = capped out)."""

    ids: tuple[str, ...]
    labels: tuple[str | None, ...]
    folds: tuple[int | None, ...]
    mode: str  # "ratio" | "kfold" | "column"
    k: int
    seed: int
    ratios: tuple[float, float, float]
    gate_fraction: float
    strata: int
    capped: tuple[Capped, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def assignment(self) -> dict[str, str]:
        """id -> split for every row that was not capped."""
        return {i: lab for i, lab in zip(self.ids, self.labels) if lab is not None}

    def ids_in(self, split: str) -> tuple[str, ...]:
        """The ids of one split (``train``, ``dev``, ``gate``, ``test``), in input order."""
        return tuple(i for i, lab in zip(self.ids, self.labels) if lab == split)

    def fold_of(self) -> dict[str, int]:
        """id -> fold (k-fold mode only; empty otherwise)."""
        return {i: f for i, f in zip(self.ids, self.folds) if f is not None}

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in SPLITS}
        for lab in self.labels:
            if lab is not None:
                out[lab] += 1
        return out

    def to_dict(self) -> dict[str, object]:
        """The summary recorded in manifest.json (the per-row assignment lives in the split files)."""
        d: dict[str, object] = {
            "mode": self.mode,
            "seed": self.seed,
            "ratios": dict(zip(PARTS, self.ratios)),
            "gate_fraction": self.gate_fraction,
            "strata": self.strata,
            "counts": self.counts(),
            "capped": [{"id": c.id, "value": c.value, "reason": c.reason} for c in self.capped],
            "notes": list(self.notes),
        }
        if self.mode == "kfold":
            d["k"] = self.k
            d["folds"] = self.fold_of()
        return d


# --------------------------------------------------------------------------- split


def split_rows(
    rows: Sequence[Mapping[str, object]],
    *,
    ids: Sequence[str],
    stratify: Sequence[str],
    ratios: tuple[float, float, float] = (0.3, 0.5, 0.2),
    gate_fraction: float = 0.2,
    seed: int,
    split_column: str | None = None,
    cap_by: str | None = None,
    cap_per_value: int | None = None,
    cap_dominant_fraction: float | None = None,
    slice_columns: Sequence[str] = (),
    label_column: str | None = None,
    out_of_scope: Mapping[str, Collection[str]] | None = None,
    lines: Sequence[int] | None = None,
    source: str = "the data",
) -> SplitResult:
    """Assign every row to train / dev / gate / test (see the module doc for the algorithm).

    ``lines`` (the rows' line numbers) and ``source`` (the file name) only improve messages.
    Raises ConfigError for a bad ``split_column`` value or option, RefusedError when the test
    set is empty or a slice value (of ``slice_columns``) or a label (of ``label_column``, the
    failure strata) has no test row and is not listed in ``out_of_scope`` (rule 9).
    """
    import numpy as np

    if len(ids) != len(rows):
        raise ValueError("ids and rows differ in length")
    if lines is not None and len(lines) != len(rows):
        raise ValueError("lines and rows differ in length")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique (load_rows refuses duplicates)")
    _check_options(ratios, gate_fraction, seed, cap_by, cap_per_value, cap_dominant_fraction)
    rng = np.random.default_rng(seed)
    notes: list[str] = []

    order_by_id = sorted(range(len(rows)), key=ids.__getitem__)
    capped: list[Capped] = []
    kept = order_by_id
    if cap_by is not None and (cap_per_value is not None or cap_dominant_fraction is not None):
        kept, capped = _apply_caps(rows, ids, order_by_id, cap_by, cap_per_value, cap_dominant_fraction, rng)
        if cap_per_value == 1:
            notes.append(f"a cap of 1 row per {cap_by} is almost always wrong: it hides how often common "
                         "cases occur in production; about 3 rows per value is the usual advice.")
        if capped:
            notes.append(f"{len(capped)} rows left out by the caps on {cap_by} (listed in the manifest).")

    strata: dict[tuple[str, ...], list[int]] = {}
    for i in kept:  # ordered by id
        strata.setdefault(tuple(value_key(rows[i].get(c)) for c in stratify), []).append(i)
    keys = sorted(strata)
    labels: list[str | None] = [None] * len(rows)
    folds: list[int | None] = [None] * len(rows)
    mode = "ratio"
    k = 0

    if split_column is not None:
        mode = "column"
        for i in kept:
            raw = rows[i].get(split_column)
            lab = value_key(raw).strip().lower()
            if lab not in PARTS:
                where = f"line {lines[i]}" if lines is not None else f"row {ids[i]!r}"
                raise ConfigError(f"{source}: {where}, column {split_column!r} is {value_key(raw)!r}; "
                                  "the split column may only hold train, dev or test.")
            labels[i] = lab
        shuffled = {key: [strata[key][j] for j in rng.permutation(len(strata[key])).tolist()] for key in keys}
    else:
        deficit = [0.0, 0.0, 0.0]
        shuffled = {}
        for s in rng.permutation(len(keys)).tolist():
            members = strata[keys[s]]
            n = len(members)
            counts = _apportion(n, ratios, deficit)
            if n >= MIN_TEST_STRATUM and counts[2] == 0:
                floors = [math.floor(r * n + 1e-9) for r in ratios]
                donor = 1 if counts[1] > floors[1] else 0
                counts[donor] -= 1
                counts[2] += 1
                deficit[donor] += 1
                deficit[2] -= 1
            perm = [members[j] for j in rng.permutation(n).tolist()]
            shuffled[keys[s]] = perm
            bounds = (counts[0], counts[0] + counts[1])
            for pos, i in enumerate(perm):
                labels[i] = "train" if pos < bounds[0] else "dev" if pos < bounds[1] else "test"
        if len(kept) < KFOLD_BELOW:
            mode = "kfold"
            for i in kept:
                if labels[i] == "train":
                    labels[i] = "dev"
            non_test = [i for key in keys for i in shuffled[key] if labels[i] == "dev"]
            if len(non_test) < 2:
                raise RefusedError(f"{source}: only {len(kept)} rows, too few for even 2 folds next to the test "
                                   "set; collect more real rows.")
            k = min(MAX_FOLDS, len(non_test))
            start = int(rng.integers(k))
            for pos, i in enumerate(non_test):
                folds[i] = (start + pos) % k
            notes.append(f"{len(kept)} rows (under {KFOLD_BELOW}): stratified {k}-fold on the non-test rows "
                         "instead of train/dev/gate.")

    if mode != "kfold":
        gate_deficit = [0.0, 0.0]
        for s in rng.permutation(len(keys)).tolist():
            dev_members = [i for i in shuffled[keys[s]] if labels[i] == "dev"]
            g = _apportion(len(dev_members), (gate_fraction, 1.0 - gate_fraction), gate_deficit)[0]
            for i in dev_members[:g]:
                labels[i] = "gate"

    small = sum(1 for key in keys if len(strata[key]) < MIN_TEST_STRATUM)
    if small and mode != "column":
        notes.append(f"{small} of {len(keys)} strata have fewer than {MIN_TEST_STRATUM} rows and may have no test row.")
    result = SplitResult(
        ids=tuple(ids), labels=tuple(labels), folds=tuple(folds), mode=mode, k=k, seed=seed,
        ratios=(float(ratios[0]), float(ratios[1]), float(ratios[2])),
        gate_fraction=float(gate_fraction), strata=len(keys), capped=tuple(capped), notes=tuple(notes),
    )
    check_test_coverage(rows, result.labels, slice_columns, out_of_scope or {}, source, label_column, stratify)
    return result


def check_test_coverage(rows: Sequence[Mapping[str, object]], labels: Sequence[str | None],
                        slice_columns: Sequence[str], out_of_scope: Mapping[str, Collection[str]],
                        source: str = "the data", label_column: str | None = None, stratify: Sequence[str] = ()) -> None:
    """Refuse an empty test set, and any slice value or label without a test row unless it is out of scope.

    Strata of 1 or 2 rows follow the rounding and usually get no test row, so a rare label or
    slice value is refused here rather than left out of the verdict with only a note (rule 9).
    A column the split does not stratify on reaches test by chance only (a label of 20 rows
    misses a 20 % test set in about 1 seed of 90), so the refusal then says to stratify on it.
    """
    if not any(lab == "test" for lab in labels):
        raise RefusedError(f"{source}: the test set would be empty; add rows or raise the test ratio.")
    kinds = {col: "slice" for col in slice_columns}
    if label_column is not None:
        kinds.setdefault(label_column, "label")
    for col, kind in kinds.items():
        total: dict[str, int] = {}
        in_test: set[str] = set()
        for row, lab in zip(rows, labels):
            if lab is None:
                continue
            v = value_key(row.get(col))
            total[v] = total.get(v, 0) + 1
            if lab == "test":
                in_test.add(v)
        allowed = {str(v) for v in (out_of_scope.get(col) or ())}
        missing = [v for v in sorted(total) if v not in in_test and v not in allowed]
        if missing:
            v = missing[0]
            more = f" (and {len(missing) - 1} more: {', '.join(missing[1:4])})" if len(missing) > 1 else ""
            fix = "add real rows for it" if col in stratify else f"add {col} to data.stratify so the split gives each value a test row"
            raise RefusedError(
                f"{source}: {kind} {col}={v!r} has {total[v]} row{'' if total[v] == 1 else 's'} but none in the test set{more}; {fix}, "
                f"or list it under data.out_of_scope.{col} in the frame to accept that the verdict says nothing about it.")


def _check_options(ratios: Sequence[float], gate_fraction: float, seed: int, cap_by: str | None,
                   cap_per_value: int | None, cap_dominant_fraction: float | None) -> None:
    if len(ratios) != 3 or any(not (0 < r < 1) for r in ratios) or abs(sum(ratios) - 1.0) > 1e-9:
        raise ConfigError(f"split ratios {list(ratios)} must be three numbers between 0 and 1 summing to 1 "
                          "(train, dev, test); fix data.split in the frame.")
    if not 0 <= gate_fraction < 1:
        raise ConfigError(f"gate_fraction {gate_fraction} must be at least 0 and below 1; fix data.gate_fraction.")
    if seed < 0:
        raise ValueError("the split seed must be a whole number >= 0")
    if cap_per_value is not None and cap_per_value < 1:
        raise ConfigError(f"caps.per_value {cap_per_value} must be at least 1; fix data.caps in the frame.")
    if cap_dominant_fraction is not None and not 0 < cap_dominant_fraction <= 1:
        raise ConfigError(f"caps.dominant_fraction {cap_dominant_fraction} must be above 0 and at most 1; "
                          "fix data.caps in the frame.")
    if cap_by is None and (cap_per_value is not None or cap_dominant_fraction is not None):
        raise ConfigError("caps need a column: set data.caps.by in the frame.")


def _apportion(n: int, ratios: Sequence[float], deficit: list[float]) -> list[int]:
    """Split ``n`` by ``ratios``: floors, then the leftovers to the largest remainder + running deficit.

    Each part gets ``floor(r * n)`` or one more; ``deficit`` (quota minus rows given, summed
    over earlier calls) is updated in place so the totals track the ratios as well.
    """
    quotas = [r * n for r in ratios]
    counts = [math.floor(q + 1e-9) for q in quotas]
    left = n - sum(counts)
    if left > 0:
        # only parts with a fractional remainder can take a leftover row (an exact quota stays exact)
        open_parts = [p for p in range(len(ratios)) if quotas[p] - counts[p] > 1e-9]
        if len(open_parts) < left:  # only by floating-point accident
            open_parts = list(range(len(ratios)))
        priority = sorted(open_parts, key=lambda p: (-(quotas[p] - counts[p] + deficit[p]), p))
        for p in priority[:left]:
            counts[p] += 1
    for p in range(len(ratios)):
        deficit[p] += quotas[p] - counts[p]
    return counts


def _apply_caps(rows: Sequence[Mapping[str, object]], ids: Sequence[str], order: list[int], cap_by: str,
                per_value: int | None, dominant: float | None,
                rng: np.random.Generator) -> tuple[list[int], list[Capped]]:
    groups: dict[str, list[int]] = {}
    for i in order:
        groups.setdefault(value_key(rows[i].get(cap_by)), []).append(i)
    dropped: dict[int, Capped] = {}

    def drop(value: str, members: list[int], keep: int, reason: str) -> list[int]:
        perm = [members[j] for j in rng.permutation(len(members)).tolist()]
        for i in perm[keep:]:
            dropped[i] = Capped(ids[i], value, reason)
        return sorted(perm[:keep], key=ids.__getitem__)

    if per_value is not None:
        for value in sorted(groups):
            if len(groups[value]) > per_value:
                groups[value] = drop(value, groups[value], per_value,
                                     f"more than {per_value} rows with {cap_by}={value}")
    if dominant is not None and dominant < 1 and groups:
        total = sum(len(m) for m in groups.values())
        top = min(groups, key=lambda v: (-len(groups[v]), v))
        d = len(groups[top])
        if d > dominant * total:
            keep = max(1, math.floor(dominant * (total - d) / (1.0 - dominant) + 1e-9))
            if keep < d:
                groups[top] = drop(top, groups[top], keep,
                                   f"{cap_by}={top} above {dominant:.0%} of the rows")
    kept = [i for i in order if i not in dropped]
    return kept, [dropped[i] for i in order if i in dropped]


# --------------------------------------------------------------------------- audit


@dataclass(frozen=True)
class ProductionCheck:
    """One column's shares in one split compared with production's shares."""

    split: str
    n: int
    diffs_pp: Mapping[str, float]  # value -> (split share - production share) in percentage points
    max_abs_diff_pp: float
    p_value: float | None  # chi-square goodness of fit; None with fewer than 2 production values
    mismatch: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"split": self.split, "n": self.n, "diffs_pp": dict(self.diffs_pp),
                "max_abs_diff_pp": self.max_abs_diff_pp, "p_value": self.p_value,
                "mismatch": self.mismatch, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class ColumnAudit:
    """Counts per value of one slice or class column, per split."""

    column: str
    kind: str  # "slice" | "class" | "slice+class" | "production"
    splits: tuple[str, ...]
    totals: Mapping[str, int]
    counts: Mapping[str, Mapping[str, int]]  # value -> split -> count
    production: Mapping[str, int] | None = None
    checks: tuple[ProductionCheck, ...] = ()

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self.counts)

    def count(self, value: str, split: str) -> int:
        return self.counts.get(value, {}).get(split, 0)

    def share(self, value: str, split: str) -> float:
        total = self.totals.get(split, 0)
        return self.count(value, split) / total if total else 0.0

    def production_share(self, value: str) -> float | None:
        if not self.production:
            return None
        total = sum(self.production.values())
        return self.production.get(value, 0) / total if total else None

    def to_dict(self) -> dict[str, object]:
        return {
            "column": self.column, "kind": self.kind, "totals": dict(self.totals),
            "values": {v: {s: {"count": self.count(v, s), "share": round(self.share(v, s), 6)}
                           for s in self.splits} for v in self.counts},
            "production": dict(self.production) if self.production is not None else None,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class Audit:
    """The distribution audit: counts and shares per slice and class value, per split."""

    splits: tuple[str, ...]
    totals: Mapping[str, int]
    columns: tuple[ColumnAudit, ...]

    @property
    def mismatch(self) -> bool:
        return any(c.mismatch for col in self.columns for c in col.checks)

    def column(self, name: str) -> ColumnAudit:
        for col in self.columns:
            if col.column == name:
                return col
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        return {"splits": list(self.splits), "totals": dict(self.totals), "mismatch": self.mismatch,
                "mismatch_rule": {"abs_share_diff_pp_above": MISMATCH_PP, "chi_square_p_below": MISMATCH_P},
                "columns": [c.to_dict() for c in self.columns]}

    def format_table(self) -> str:
        """A plain-text table per column: count and share per split, production share and difference."""
        out: list[str] = []
        head = "  ".join(f"{s:>12}" for s in self.splits)
        for col in self.columns:
            width = max([len("value"), len("total"), *(len(v) for v in col.values)])
            width = min(width, 40)
            prod = col.production is not None
            out.append(f"{col.kind} {col.column} ({len(col.values)} values)")
            out.append(f"  {'value':<{width}}  {head}" + (f"  {'production':>10}  {'diff':>8}" if prod else ""))
            for v in sorted(col.values, key=lambda v: (-col.count(v, self.splits[0]), v)):
                cells = "  ".join(f"{col.count(v, s):>5} {100 * col.share(v, s):5.1f}%" for s in self.splits)
                line = f"  {v[:width]:<{width}}  {cells}"
                if prod:
                    ps = col.production_share(v)
                    diff = col.checks[0].diffs_pp.get(v) if col.checks else None
                    line += f"  {'-' if ps is None else f'{100 * ps:.1f}%':>10}"
                    line += f"  {'' if diff is None else f'{diff:+.1f} pp':>8}"
                out.append(line)
            if prod:
                missing = sorted(set(col.production or {}) - set(col.values))
                for v in missing:
                    ps = col.production_share(v) or 0.0
                    blank = "  ".join(f"{0:>5} {0:5.1f}%" for _ in self.splits)
                    out.append(f"  {v[:width]:<{width}}  {blank}  {f'{100 * ps:.1f}%':>10}  "
                               f"{f'{-100 * ps:+.1f} pp':>8}")
            totals = "  ".join(f"{col.totals.get(s, 0):>12}" for s in self.splits)
            out.append(f"  {'total':<{width}}  {totals}")
            for c in col.checks:
                p = "n/a" if c.p_value is None else f"{c.p_value:.3g}"
                verdict = "MISMATCH: " + "; ".join(c.reasons) if c.mismatch else "ok"
                out.append(f"  production vs {c.split} ({c.n} rows): max |diff| {c.max_abs_diff_pp:.1f} pp, "
                           f"chi-square p = {p} -> {verdict}")
            out.append("")
        if not self.columns:
            out.append("(no slice or class columns to audit)")
        return "\n".join(out).rstrip() + "\n"


def audit(rows: Sequence[Mapping[str, object]], assignment: Sequence[str | None], slice_columns: Sequence[str],
          class_column: str | None, production_counts: Mapping[str, Mapping[str, int]] | None = None) -> Audit:
    """Count every slice/class value per split; compare with production counts when given.

    ``assignment[i]`` is the split of ``rows[i]`` (``SplitResult.labels``; ``None`` = capped).
    Splits reported: ``source`` (every row given), ``capped`` (only when some are), ``train``,
    ``dev``, ``gate``, ``test``. Production comparison, per column in ``production_counts``, for
    the rows kept (``split`` = ``kept``) and for ``test``: a MISMATCH when any value's share
    differs from production's by more than 5 percentage points, or a chi-square goodness-of-fit
    test of the counts against production's shares gives p < 0.01, or a value occurs that
    production never saw.
    """
    if len(assignment) != len(rows):
        raise ValueError("assignment and rows differ in length")
    production_counts = production_counts or {}
    has_capped = any(a is None for a in assignment)
    splits = ("source",) + ((CAPPED,) if has_capped else ()) + SPLITS
    totals = {s: 0 for s in splits}
    for a in assignment:
        totals["source"] += 1
        totals[a if a is not None else CAPPED] += 1
    wanted: dict[str, str] = {}
    for c in slice_columns:
        wanted[c] = "slice"
    if class_column is not None:
        wanted[class_column] = "slice+class" if class_column in wanted else "class"
    for c in production_counts:
        wanted.setdefault(c, "production")
    columns: list[ColumnAudit] = []
    for col, kind in wanted.items():
        counts: dict[str, dict[str, int]] = {}
        for row, a in zip(rows, assignment):
            per = counts.setdefault(value_key(row.get(col)), {})
            per["source"] = per.get("source", 0) + 1
            s = a if a is not None else CAPPED
            per[s] = per.get(s, 0) + 1
        prod = production_counts.get(col)
        checks: tuple[ProductionCheck, ...] = ()
        if prod is not None:
            kept = {v: c["source"] - c.get(CAPPED, 0) for v, c in counts.items()}
            kept_total = totals["source"] - totals.get(CAPPED, 0)
            test = {v: per.get("test", 0) for v, per in counts.items()}
            checks = (_compare(prod, kept, kept_total, "kept"), _compare(prod, test, totals["test"], "test"))
        columns.append(ColumnAudit(col, kind, splits, dict(totals), counts,
                                   dict(prod) if prod is not None else None, checks))
    return Audit(splits, dict(totals), tuple(columns))


def _compare(production: Mapping[str, int], observed: Mapping[str, int], n: int, split: str) -> ProductionCheck:
    prod_total = sum(production.values())
    values = sorted(set(production) | {v for v, c in observed.items() if c})
    diffs: dict[str, float] = {}
    reasons: list[str] = []
    for v in values:
        share = observed.get(v, 0) / n if n else 0.0
        pshare = production.get(v, 0) / prod_total if prod_total else 0.0
        diffs[v] = round(100 * (share - pshare), 4)
    max_abs = max((abs(d) for d in diffs.values()), default=0.0)
    if max_abs > MISMATCH_PP:
        worst = max(diffs, key=lambda v: abs(diffs[v]))
        reasons.append(f"{worst} differs from production by {diffs[worst]:+.1f} pp (over {MISMATCH_PP:.0f} pp)")
    unseen = [v for v in values if observed.get(v, 0) and not production.get(v, 0)]
    if unseen:
        reasons.append(f"{len(unseen)} value(s) never seen in production, e.g. {unseen[0]}")
    p_value: float | None = None
    expected_values = [v for v in values if production.get(v, 0)]
    if n and prod_total and len(expected_values) >= 2:
        from scipy.special import chdtrc  # lighter to import than scipy.stats

        obs = [observed.get(v, 0) for v in expected_values]
        n_in = sum(obs)
        if n_in:
            exp = [production[v] / prod_total * n_in for v in expected_values]
            stat = sum((o - e) ** 2 / e for o, e in zip(obs, exp))
            p_value = float(chdtrc(len(obs) - 1, stat))  # chi-square goodness of fit, k - 1 df
            if p_value < MISMATCH_P:
                reasons.append(f"chi-square goodness of fit p = {p_value:.2g} (below {MISMATCH_P})")
    return ProductionCheck(split, n, diffs, round(max_abs, 4), p_value, bool(reasons), tuple(reasons))


# --------------------------------------------------------------------------- sizing


@dataclass(frozen=True)
class Sizing:
    """Whether dev and test can detect the pre-registered effect (paired binary design)."""

    n_dev: int
    n_test: int
    effect: float
    alpha: float
    power: float
    discordance: float
    mde_dev: float
    mde_test: float
    rows_needed: int  # test rows needed to detect ``effect``
    total_rows_needed: int | None = None  # all rows at the test ratio, when it was given

    @property
    def underpowered(self) -> bool:
        return self.mde_test > self.effect

    @property
    def dev_underpowered(self) -> bool:
        return self.mde_dev > self.effect

    def to_dict(self) -> dict[str, object]:
        return {"n_dev": self.n_dev, "n_test": self.n_test, "effect": self.effect, "alpha": self.alpha,
                "power": self.power, "discordance": self.discordance,
                "mde_dev": None if math.isinf(self.mde_dev) else self.mde_dev,
                "mde_test": None if math.isinf(self.mde_test) else self.mde_test, "rows_needed": self.rows_needed,
                "total_rows_needed": self.total_rows_needed, "underpowered": self.underpowered,
                "dev_underpowered": self.dev_underpowered}


def sizing(n_dev: int, n_test: int, effect: float, alpha: float, power: float = 0.8, discordance: float = 0.2,
           test_fraction: float | None = None) -> Sizing:
    """Minimum detectable effects of dev and test and the test rows needed (Connor 1987, paired binary).

    ``discordance`` is the assumed share of rows where the two arms disagree (raised to the
    effect when smaller: an effect of d needs at least d of rows discordant); ``test_fraction``
    (the test ratio) turns ``rows_needed`` into the total rows to collect.
    """
    from gitera.core.stats import paired_binary_mde, paired_binary_rows_needed

    discordance = max(discordance, abs(effect))  # an effect of d needs at least d of rows discordant
    mde_dev = float(paired_binary_mde(n_dev, alpha, power, discordance)) if n_dev > 0 else math.inf
    mde_test = float(paired_binary_mde(n_test, alpha, power, discordance)) if n_test > 0 else math.inf
    needed = int(paired_binary_rows_needed(effect, alpha, power, discordance))
    total = math.ceil(needed / test_fraction) if test_fraction else None
    return Sizing(n_dev, n_test, effect, alpha, power, discordance, mde_dev, mde_test, needed, total)


def check_sizing(s: Sizing, accept_underpowered: bool) -> str | None:
    """Refuse an underpowered test set unless accepted; return the note to record when accepted."""
    if not s.underpowered:
        return None
    more = f" (about {s.total_rows_needed} rows in all at the test ratio)" if s.total_rows_needed else ""
    detects = ("cannot detect any effect" if math.isinf(s.mde_test)
               else f"detects {100 * s.mde_test:.1f} pp at power {s.power:.2f}")
    text = (f"the test set has {s.n_test} rows, which {detects} "
            f"but the threshold is {100 * s.effect:.1f} pp, which needs {s.rows_needed} test rows{more}")
    if accept_underpowered:
        return f"accepted as underpowered: {text}."
    raise RefusedError(f"Underpowered: {text}; add real rows, or rerun with --accept-underpowered to record the "
                       "choice (the verdict may then only say 'underpowered').")


__all__ = [
    "Audit", "Capped", "ColumnAudit", "ProductionCheck", "SPLITS", "Sizing", "SplitResult", "audit",
    "check_sizing", "check_test_coverage", "sizing", "split_rows", "value_key",
]


# --------------------------------------------------------------------------- pins

PINNED = SPLITS  # the split files whose content the Split trailer and both seals pin
PINS_VERSION = 1


def pins_digest(pins: Mapping[str, str]) -> str:
    """sha256 (hex) of the canonical JSON of the pins: train and dev by the sha256 of their
    files, gate and test by the salted commitment of their (sealed) plaintext. This digest is
    bound into the header of both seals, so it cannot change without the seal keys."""
    import hashlib

    missing = [p for p in PINNED if not isinstance(pins.get(p), str)]
    if missing:
        raise ValueError(f"pins lack {', '.join(missing)}")
    doc = {"version": PINS_VERSION, **{p: pins[p] for p in PINNED}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
