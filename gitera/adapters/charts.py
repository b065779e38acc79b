"""The four conclusion charts (arm-bar, forest-plot, cost-vs-accuracy, progression).

This is the only module that talks to matplotlib. It is imported lazily by the verdict and log
commands (matplotlib itself is imported inside the functions, so importing this module costs
nothing). Every function takes plain data (the frozen dataclasses below) and an output
directory, writes ``<name>.png`` (1200 px wide, dpi 150) and ``<name>.svg``, and returns the two
paths. No print, no git, no pyplot: each chart is a ``matplotlib.figure.Figure`` on its own Agg
canvas, drawn under the matplotlib default style plus the settings in ``_RC`` so a user's
matplotlibrc cannot change the output.

Output is deterministic: SVG ids are salted with a fixed ``svg.hashsalt``, the SVG and PNG carry
no date, and SVG text stays text (``svg.fonttype = "none"``), so rendering the same data twice
gives byte-identical files and a reviewer (or a test) can find every label in the SVG.

Every data-bearing artist carries an SVG id (matplotlib ``gid``) built by :func:`gid_slug`:

=====================  ==========================================================
chart                  ids
=====================  ==========================================================
arm-bar                ``bar-<arm>``, ``err-<arm>``, ``value-<arm>``, ``threshold-line``
forest-plot            ``marker-<arm>`` (aggregate row), ``marker-<arm>-<slice>``,
                       ``ci-<arm>``, ``ci-<arm>-<slice>``, ``zero-line``,
                       ``threshold-line``, ``loss-floor-line``
cost-vs-accuracy       ``point-<arm>``, ``frontier`` (the step line),
                       ``frontier-<arm>`` (ring around each frontier point)
progression            ``attempt-<iteration>-<status>``, ``running-best``, ``noise-band``,
                       ``baseline-line``, ``gate-<after_iteration>``, ``locked``
=====================  ==========================================================

Colours are the Okabe-Ito colour-blind-safe palette, and every state that a colour encodes is
also encoded by a marker shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# ---------------------------------------------------------------------------------------------
# Palette (Okabe & Ito 2008) and per-state styles
# ---------------------------------------------------------------------------------------------

BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
REDDISH_PURPLE = "#CC79A7"
GREY = "#999999"
DARK_GREY = "#555555"

#: Forest-plot state -> (colour, marker).
STATE_STYLE: Mapping[str, tuple[str, str]] = {
    "PASS": (BLUISH_GREEN, "o"),
    "FAIL": (VERMILLION, "X"),
    "INCONCLUSIVE": (ORANGE, "D"),
}

#: Progression status -> (colour, marker, filled).
STATUS_STYLE: Mapping[str, tuple[str, str, bool]] = {
    "baseline": (BLACK, "D", True),
    "keep": (BLUISH_GREEN, "o", True),
    "discard": (DARK_GREY, "o", False),
    "crash": (VERMILLION, "X", True),
    "timeout": (ORANGE, "v", True),
    "guard_fail": (REDDISH_PURPLE, "s", True),
}
_UNKNOWN_STATUS_STYLE = (GREY, "P", True)

#: Gate outcome -> colour of its vertical line.
GATE_COLOURS: Mapping[str, str] = {
    "pass": BLUISH_GREEN,
    "fail": VERMILLION,
    "kill": VERMILLION,
    "saturated": ORANGE,
    "lock": BLUE,
}

DPI = 150
WIDTH_PX = 1200
HEIGHT_PX = 700

_RC: dict[str, Any] = {
    "svg.hashsalt": "gitera",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9.5,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "path.simplify": False,
}

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmBar:
    """One bar of the arm-bar chart.

    ``err_low`` / ``err_high`` are the absolute ends of the error bar (e.g. score - sd and
    score + sd, or the CI bounds), not distances; ``None`` or NaN draws no error bar.
    """

    name: str
    score: float
    err_low: float | None = None
    err_high: float | None = None
    is_baseline: bool = False
    decision_label: str | None = None


@dataclass(frozen=True)
class ForestRow:
    """One row of the forest plot: an arm's aggregate effect (``slice=None``) or one slice.

    ``effect`` and the CI are differences vs the baseline, oriented so positive = better.
    ``state`` is ``"PASS"``, ``"FAIL"`` or ``"INCONCLUSIVE"``.
    """

    label: str
    arm: str
    slice: str | None
    effect: float
    ci_low: float | None
    ci_high: float | None
    state: str


@dataclass(frozen=True)
class CostPoint:
    """One arm on the cost-vs-accuracy chart; ``cost_per_1k`` is USD per 1,000 rows (None or NaN
    when the arm reported no cost: it is then left off the chart and named in a footnote)."""

    name: str
    cost_per_1k: float | None
    score: float
    is_baseline: bool = False


@dataclass(frozen=True)
class AttemptPoint:
    """One attempt of the iterate loop. ``score`` is None for attempts without one (crash,
    timeout); ``status`` is one of keep / discard / crash / timeout / guard_fail / baseline."""

    iteration: int
    score: float | None
    status: str
    is_locked: bool = False


@dataclass(frozen=True)
class GateMark:
    """A generalization gate run after ``after_iteration``; ``outcome`` e.g. pass / fail /
    saturated (lock and kill are also coloured)."""

    after_iteration: int
    outcome: str


@dataclass(frozen=True)
class ChartData:
    """Everything :func:`render_all` needs. ``baseline_dev_score`` (the iterated arm's dev score
    before its first attempt, where the running best starts) and ``noise_floor`` are for the
    progression chart."""

    metric: str
    arms: tuple[ArmBar, ...] = ()
    threshold_score: float | None = None
    forest: tuple[ForestRow, ...] = ()
    threshold: float = 0.0
    loss_floor: float = 0.0
    costs: tuple[CostPoint, ...] = ()
    attempts: tuple[AttemptPoint, ...] = ()
    gates: tuple[GateMark, ...] = ()
    baseline_dev_score: float | None = None
    noise_floor: float | None = None
    higher_is_better: bool = True
    split_label: str = "sealed test set"  # what the arm-bar's scores were measured on


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.=]+")


def gid_slug(*parts: str) -> str:
    """The SVG id for ``parts``: joined with ``-``, each part with runs of characters other than
    letters, digits, ``_ . =`` replaced by ``-`` (e.g. ``gid_slug("marker", "v2", "tier=gold")``
    is ``marker-v2-tier=gold``)."""
    return "-".join(_SLUG_BAD.sub("-", p).strip("-") or "_" for p in parts)


class _Gids:
    """Hands out ids, suffixing ``~2``, ``~3`` … when two artists would share one."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def make(self, *parts: str) -> str:
        base = gid_slug(*parts)
        n = self._seen.get(base, 0) + 1
        self._seen[base] = n
        return base if n == 1 else f"{base}~{n}"


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _num(x: float | None) -> float | None:
    """``x`` as a float when it is a finite number, else None."""
    return float(x) if x is not None and _finite(x) else None


def _cost(p: CostPoint) -> float:
    c = _num(p.cost_per_1k)
    return math.nan if c is None else c


def _fmt(v: float, signed: bool = False) -> str:
    a = abs(v)
    if a >= 1000:
        s = f"{v:,.0f}" if not signed else f"{v:+,.0f}"
    elif a >= 10:
        s = f"{v:.1f}" if not signed else f"{v:+.1f}"
    else:
        s = f"{v:.3f}" if not signed else f"{v:+.3f}"
    return s.replace("-", "\u2212")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "\u2026"


def _wrap(text: str, width: int, max_lines: int = 3) -> list[str]:
    """Hard-wrap ``text`` (names often have no spaces) into at most ``max_lines`` lines."""
    words = text.split(" ")
    lines: list[str] = []
    cur = ""
    for word in words:
        while len(word) > width:
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(word[:width])
            word = word[width:]
        if not cur:
            cur = word
        elif len(cur) + 1 + len(word) <= width:
            cur = f"{cur} {word}"
        else:
            lines.append(cur)
            cur = word
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _shorten(lines[-1] + "\u2026", width)
    return lines or [""]


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        yield


def _new_figure(width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_dir: str | Path, name: str) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{name}.png", out / f"{name}.svg"
    fig.savefig(png, format="png", dpi=DPI, metadata={"Date": None})
    fig.savefig(svg, format="svg", dpi=DPI, metadata={"Date": None})
    svg.write_text(_stable_clip_ids(svg.read_text(encoding="utf-8")), encoding="utf-8")
    return png, svg


def _stable_clip_ids(text: str) -> str:
    """Renumber clip-path ids in order of first use.

    matplotlib derives a non-rectangular clip path's id from the path object's identity, so
    two renders of the same chart differed (found by a fresh-process CI run)."""
    import re

    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        old = match.group(1)
        new = names.setdefault(old, f"clip{len(names) + 1}")
        return match.group(0).replace(old, new)

    return re.sub(r'(?:id="|url\(#)(p[0-9a-f]{10})\b', rename, text)


def _outside_legend(fig: Figure, handles: Sequence[Any], ncol: int) -> None:
    if handles:
        fig.legend(handles=list(handles), loc="outside lower center", ncol=min(ncol, len(handles)))


# ---------------------------------------------------------------------------------------------
# 1. arm-bar
# ---------------------------------------------------------------------------------------------


def arm_bar(
    arms: Sequence[ArmBar],
    threshold_score: float | None,
    metric: str,
    out_dir: str | Path,
    *,
    split_label: str = "sealed test set",
    error_label: str = "error bars: trial-to-trial sd",
    name: str = "arm-bar",
) -> tuple[Path, Path]:
    """Score per arm with error bars, the baseline bar hatched grey, each bar labelled with its
    value, and a dashed "ship threshold" line at ``threshold_score`` (baseline + threshold
    effect; None draws no line). Returns (png, svg)."""
    if not arms:
        raise ValueError("arm_bar needs at least one arm")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    with _style():
        fig = _new_figure()
        ax = fig.add_subplot()
        gids = _Gids()
        n = len(arms)
        width = 0.6
        cap = width * 0.18
        labels: list[str] = []
        has_err = False
        for i, arm in enumerate(arms):
            colour = GREY if arm.is_baseline else BLUE
            score = arm.score if _finite(arm.score) else 0.0
            (rect,) = ax.bar(
                i,
                score,
                width=width,
                color=colour,
                edgecolor=DARK_GREY if arm.is_baseline else BLUE,
                hatch="//" if arm.is_baseline else None,
                linewidth=1.0,
                zorder=2,
            )
            rect.set_gid(gids.make("bar", arm.name))
            top = score
            lo, hi = _num(arm.err_low), _num(arm.err_high)
            if lo is not None and hi is not None:
                nan = math.nan
                (err,) = ax.plot(
                    [i, i, nan, i - cap, i + cap, nan, i - cap, i + cap],
                    [lo, hi, nan, lo, lo, nan, hi, hi],
                    color=BLACK,
                    linewidth=1.3,
                    zorder=3,
                )
                err.set_gid(gids.make("err", arm.name))
                top = max(top, hi) if score >= 0 else min(top, lo)
                has_err = True
            text = _fmt(arm.score) if _finite(arm.score) else "no score"
            above = score >= 0
            value = ax.annotate(
                text,
                xy=(i, top),
                xytext=(0, 4 if above else -4),
                textcoords="offset points",
                ha="center",
                va="bottom" if above else "top",
                fontsize=10,
                fontweight="bold",
                zorder=6,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                      "alpha": 0.85},
            )
            value.set_gid(gids.make("value", arm.name))
            lines = _wrap(arm.name, 22 if n <= 4 else 14, 3)
            if arm.is_baseline:
                lines.append("(baseline)")
            if arm.decision_label:
                lines.append(f"[{arm.decision_label}]")
            labels.append("\n".join(lines))
        ax.set_xticks(range(n), labels)
        ax.tick_params(axis="x", length=0)
        if n <= 2:
            ax.set_xlim(-1.0, n)
        handles: list[Any] = []
        if any(a.is_baseline for a in arms):
            handles.append(Patch(facecolor=GREY, edgecolor=DARK_GREY, hatch="//", label="baseline"))
        if any(not a.is_baseline for a in arms):
            handles.append(Patch(facecolor=BLUE, edgecolor=BLUE, label="candidate arm"))
        if has_err:
            handles.append(Line2D([], [], color=BLACK, linewidth=1.3, label=error_label))
        t = _num(threshold_score)
        if t is not None:
            line = ax.axhline(t, color=VERMILLION, linestyle="--", linewidth=1.6, zorder=5)
            line.set_gid("threshold-line")
            handles.append(
                Line2D([], [], color=VERMILLION, linestyle="--", linewidth=1.6,
                       label=f"ship threshold ({_fmt(t)})")
            )
        ax.margins(y=0.14)
        ax.grid(axis="y", color="#dddddd", linewidth=0.8, zorder=0)
        ax.set_axisbelow(True)
        ax.set_title(f"{metric} per arm on the {split_label}")
        ax.set_ylabel(f"{metric} ({split_label})")
        ax.set_xlabel("arm")
        _outside_legend(fig, handles, 4)
        return _save(fig, out_dir, name)


# ---------------------------------------------------------------------------------------------
# 2. forest-plot
# ---------------------------------------------------------------------------------------------


def _group_rows(rows: Sequence[ForestRow]) -> list[tuple[str, list[ForestRow], list[ForestRow]]]:
    order: list[str] = []
    agg: dict[str, list[ForestRow]] = {}
    slices: dict[str, list[ForestRow]] = {}
    for row in rows:
        if row.arm not in agg:
            order.append(row.arm)
            agg[row.arm], slices[row.arm] = [], []
        (agg if row.slice is None else slices)[row.arm].append(row)
    return [(arm, agg[arm], slices[arm]) for arm in order]


#: Forest-plot legend: (is an aggregate row, state) -> words. An arm's aggregate is judged
#: against the threshold, a slice against the loss floor: the same state means different things.
FOREST_STATE_WORDS: Mapping[tuple[bool, str], str] = {
    (True, "PASS"): "arm PASS: clears the threshold",
    (True, "FAIL"): "arm FAIL: misses the threshold",
    (True, "INCONCLUSIVE"): "arm INCONCLUSIVE: cannot tell yet",
    (False, "PASS"): "slice PASS: within the loss floor",
    (False, "FAIL"): "slice FAIL: slice loses beyond the floor",
    (False, "INCONCLUSIVE"): "slice INCONCLUSIVE: cannot tell yet",
}


def forest_plot(
    rows: Sequence[ForestRow],
    threshold: float,
    loss_floor: float,
    metric: str,
    out_dir: str | Path,
    *,
    name: str = "forest-plot",
) -> tuple[Path, Path]:
    """One row per arm (aggregate effect vs baseline, with CI) with its slices indented beneath,
    markers coloured and shaped by state, and vertical lines at 0, +``threshold`` and
    -``loss_floor``. Returns (png, svg)."""
    if not rows:
        raise ValueError("forest_plot needs at least one row")
    for bad in rows:
        if bad.state not in STATE_STYLE:
            raise ValueError(
                f"forest row {bad.label!r} has state {bad.state!r}; expected PASS, FAIL or INCONCLUSIVE"
            )
    from matplotlib.lines import Line2D

    groups = _group_rows(rows)
    # Layout: (y, kind, arm, row or None); kind "agg", "header" (arm without aggregate row), "slice".
    layout: list[tuple[int, str, str, ForestRow | None]] = []
    spans: list[tuple[int, int]] = []
    for arm, aggs, slices in groups:
        start = len(layout)
        for r in aggs:
            layout.append((len(layout), "agg", arm, r))
        if not aggs:
            layout.append((len(layout), "header", arm, None))
        for r in slices:
            layout.append((len(layout), "slice", arm, r))
        spans.append((start, len(layout) - 1))
    n_rows = len(layout)
    height_px = max(HEIGHT_PX, int((0.3 * n_rows + 1.8) * DPI))

    with _style():
        fig = _new_figure(WIDTH_PX, height_px)
        gs = fig.add_gridspec(1, 4, width_ratios=[1.9, 3.1, 2.2, 1.0], wspace=0.0)
        lab = fig.add_subplot(gs[0])
        ax = fig.add_subplot(gs[1], sharey=lab)
        val = fig.add_subplot(gs[2], sharey=lab)
        stt = fig.add_subplot(gs[3], sharey=lab)
        for side in (lab, val, stt):
            side.set_xlim(0, 1)
            side.axis("off")
        gids = _Gids()

        for k, (y0, y1) in enumerate(spans):
            if k % 2 == 0:
                ax.axhspan(y0 - 0.5, y1 + 0.5, color="#f2f2f2", zorder=0, linewidth=0)
        xs: list[float] = [0.0, float(threshold), -float(loss_floor)]
        states_seen: set[tuple[bool, str]] = set()  # (is an aggregate row, state)
        for y, kind, arm, row in layout:
            bold = kind != "slice"
            if row is None:
                lab.text(0.0, y, _shorten(arm, 30), va="center", ha="left", fontweight="bold")
                continue
            text = _shorten(row.label, 30 if bold else 28)
            lab.text(0.0 if bold else 0.07, y, text, va="center", ha="left",
                     fontweight="bold" if bold else "normal")
            colour, marker = STATE_STYLE[row.state]
            states_seen.add((row.slice is None, row.state))
            parts = ("marker", arm) if row.slice is None else ("marker", arm, row.slice)
            ci_parts = ("ci",) + parts[1:]
            lo, hi = _num(row.ci_low), _num(row.ci_high)
            if lo is not None and hi is not None:
                (ci,) = ax.plot([lo, hi], [y, y], color=colour, linewidth=2.2 if bold else 1.5,
                                solid_capstyle="butt", zorder=3)
                ci.set_gid(gids.make(*ci_parts))
                xs.extend([lo, hi])
            if _finite(row.effect):
                (mk,) = ax.plot([row.effect], [y], linestyle="none", marker=marker,
                                markersize=9.5 if bold else 7, color=colour,
                                markeredgecolor=BLACK if bold else colour, markeredgewidth=0.8,
                                zorder=4)
                mk.set_gid(gids.make(*parts))
                xs.append(float(row.effect))
                summary = _fmt(row.effect, signed=True)
                if lo is not None and hi is not None:
                    summary += f" [{_fmt(lo, True)}, {_fmt(hi, True)}]"
            else:
                summary = "no estimate"
            val.text(0.03, y, summary, va="center", ha="left", fontsize=8,
                     fontweight="bold" if bold else "normal")
            stt.text(1.0, y, row.state, va="center", ha="right", fontsize=7.5, color=colour,
                     fontweight="bold" if bold else "normal")

        zero = ax.axvline(0.0, color=BLACK, linewidth=1.0, zorder=2)
        zero.set_gid("zero-line")
        thr = ax.axvline(threshold, color=BLUE, linestyle="--", linewidth=1.5, zorder=2)
        thr.set_gid("threshold-line")
        floor = ax.axvline(-loss_floor, color=REDDISH_PURPLE, linestyle=":", linewidth=1.8, zorder=2)
        floor.set_gid("loss-floor-line")

        finite_xs = [x for x in xs if math.isfinite(x)]
        lo_x, hi_x = min(finite_xs), max(finite_xs)
        pad = (hi_x - lo_x) * 0.08 or 0.05
        ax.set_xlim(lo_x - pad, hi_x + pad)
        lab.set_ylim(n_rows - 0.5, -0.5)
        ax.tick_params(axis="y", left=False, labelleft=False)
        ax.spines["left"].set_visible(False)
        ax.grid(axis="x", color="#dddddd", linewidth=0.8, zorder=1)
        ax.set_axisbelow(True)
        ax.set_xlabel(f"difference in {metric} vs baseline (positive = better), with CI")
        fig.suptitle(f"Effect on {metric} vs baseline, per arm and per slice",
                     fontweight="bold", fontsize=12)

        handles: list[Any] = [
            Line2D([], [], linestyle="none", marker=STATE_STYLE[s][1], color=STATE_STYLE[s][0],
                   markersize=8.5 if aggregate else 6.5, markeredgecolor=BLACK if aggregate else STATE_STYLE[s][0],
                   markeredgewidth=0.8, label=FOREST_STATE_WORDS[aggregate, s])
            for aggregate, s in FOREST_STATE_WORDS if (aggregate, s) in states_seen
        ]
        handles += [
            Line2D([], [], color=BLACK, linewidth=1.0, label="no difference (0)"),
            Line2D([], [], color=BLUE, linestyle="--", linewidth=1.5,
                   label=f"threshold (+{_fmt(threshold)})"),
            Line2D([], [], color=REDDISH_PURPLE, linestyle=":", linewidth=1.8,
                   label=f"slice loss floor (\u2212{_fmt(loss_floor)})"),
        ]
        _outside_legend(fig, handles, 3)
        return _save(fig, out_dir, name)


# ---------------------------------------------------------------------------------------------
# 3. cost-vs-accuracy
# ---------------------------------------------------------------------------------------------


def pareto_frontier(points: Sequence[CostPoint], higher_is_better: bool = True) -> list[CostPoint]:
    """The points no other point dominates (costs no more and scores at least as well, and is
    strictly better in one), sorted by cost. Points without a finite cost or score are ignored."""
    valid = [p for p in points if _finite(p.cost_per_1k) and _finite(p.score)]

    def better_or_equal(a: float, b: float) -> bool:
        return a >= b if higher_is_better else a <= b

    def dominates(p: CostPoint, q: CostPoint) -> bool:
        pc, qc = _cost(p), _cost(q)
        return (pc <= qc and better_or_equal(p.score, q.score)
                and (pc < qc or p.score != q.score))

    front = [q for q in valid if not any(dominates(p, q) for p in valid)]
    sign = -1.0 if higher_is_better else 1.0
    return sorted(front, key=lambda p: (_cost(p), sign * p.score))


def cost_vs_accuracy(
    points: Sequence[CostPoint],
    metric: str,
    out_dir: str | Path,
    *,
    higher_is_better: bool = True,
    name: str = "cost-vs-accuracy",
) -> tuple[Path, Path]:
    """Cost per 1,000 rows (x) against score (y), one labelled marker per arm, and the Pareto
    frontier as a step line with its points ringed. All-zero costs get a linear axis from 0;
    costs spanning more than two decades (or zero next to tiny costs) get a symlog axis."""
    if not points:
        raise ValueError("cost_vs_accuracy needs at least one point")
    from matplotlib.lines import Line2D

    valid = [p for p in points if _finite(p.cost_per_1k) and _finite(p.score)]
    missing = [p.name for p in points if p not in valid]
    front = pareto_frontier(valid, higher_is_better)
    costs = [_cost(p) for p in valid]
    positives = [c for c in costs if c > 0]
    max_cost = max(costs, default=0.0)

    with _style():
        fig = _new_figure()
        ax = fig.add_subplot()
        gids = _Gids()
        notes: list[str] = []
        if max_cost <= 0:
            ax.set_xlim(-0.05, 1.0)
            if valid:
                notes.append("every arm with a reported cost cost $0")
        elif min(costs) >= 0 and max_cost / min(positives) > 100:
            linthresh = min(positives)
            ax.set_xscale("symlog", linthresh=linthresh, linscale=0.6)
            ax.set_xlim(0 if min(costs) > 0 else -linthresh * 0.3, max_cost * 3)
            notes.append(f"x axis: linear below ${_fmt(linthresh)}, logarithmic above")
        else:
            lo = min(0.0, min(costs))
            ax.set_xlim(lo - 0.04 * (max_cost - lo), max_cost + 0.12 * (max_cost - lo))

        if len(front) >= 1 and valid:
            fx = [_cost(p) for p in front]
            fy = [p.score for p in front]
            right = ax.get_xlim()[1]
            if right > fx[-1]:
                fx.append(right)
                fy.append(fy[-1])
            (step,) = ax.step(fx, fy, where="post", color=BLUISH_GREEN, linewidth=1.8,
                              alpha=0.9, zorder=2)
            step.set_gid("frontier")
            for p in front:
                (ring,) = ax.plot([_cost(p)], [p.score], linestyle="none", marker="o",
                                  markersize=17, markerfacecolor="none",
                                  markeredgecolor=BLUISH_GREEN, markeredgewidth=2.2, zorder=3)
                ring.set_gid(gids.make("frontier", p.name))
        for p in valid:
            colour, marker = (GREY, "s") if p.is_baseline else (BLUE, "o")
            (mk,) = ax.plot([_cost(p)], [p.score], linestyle="none", marker=marker,
                            markersize=9, color=colour, markeredgecolor=BLACK,
                            markeredgewidth=0.7, zorder=4)
            mk.set_gid(gids.make("point", p.name))
            label = _shorten(p.name, 32) + (" (baseline)" if p.is_baseline else "")
            ax.annotate(label, xy=(_cost(p), p.score), xytext=(9, 7),
                        textcoords="offset points", fontsize=9, zorder=5)
        if missing:
            notes.append("no cost reported, not shown: " + ", ".join(_shorten(m, 24) for m in missing))
        if notes:
            ax.text(0.01, 0.01, "; ".join(notes), transform=ax.transAxes, fontsize=8,
                    color=DARK_GREY, ha="left", va="bottom")
        ax.margins(y=0.18)
        ax.grid(color="#e3e3e3", linewidth=0.8, zorder=0)
        ax.set_axisbelow(True)
        direction = "higher" if higher_is_better else "lower"
        ax.set_title(f"Cost vs {metric}: which arms are worth their price")
        ax.set_xlabel("cost per 1,000 rows (USD)")
        ax.set_ylabel(f"{metric} ({direction} is better)")
        handles: list[Any] = []
        if any(p.is_baseline for p in valid):
            handles.append(Line2D([], [], linestyle="none", marker="s", color=GREY,
                                  markeredgecolor=BLACK, markersize=8, label="baseline"))
        if any(not p.is_baseline for p in valid):
            handles.append(Line2D([], [], linestyle="none", marker="o", color=BLUE,
                                  markeredgecolor=BLACK, markersize=8, label="candidate arm"))
        if front:
            handles.append(Line2D([], [], color=BLUISH_GREEN, linewidth=1.8, marker="o",
                                  markerfacecolor="none", markersize=11,
                                  label=f"Pareto frontier (cheaper and {direction} {metric})"))
        _outside_legend(fig, handles, 3)
        return _save(fig, out_dir, name)


# ---------------------------------------------------------------------------------------------
# 4. progression
# ---------------------------------------------------------------------------------------------


def running_best(
    attempts: Sequence[AttemptPoint], baseline: float, higher_is_better: bool = True
) -> list[tuple[int, float]]:
    """(iteration, best score so far) after each attempt, in iteration order: the best of the
    baseline and every *kept* attempt up to it (discarded attempts are reverted, so they never
    count). NaN while there is neither a finite baseline nor a kept score."""
    best = baseline if _finite(baseline) else math.nan
    out: list[tuple[int, float]] = []
    for a in sorted(attempts, key=lambda a: a.iteration):
        s = _num(a.score)
        if a.status == "keep" and s is not None and (
            not math.isfinite(best) or (s > best if higher_is_better else s < best)
        ):
            best = s
        out.append((a.iteration, best))
    return out


def progression(
    attempts: Sequence[AttemptPoint],
    baseline: float,
    noise_floor: float | None,
    out_dir: str | Path,
    metric: str = "score",
    gates: Sequence[GateMark] = (),
    *,
    higher_is_better: bool = True,
    name: str = "progression",
) -> tuple[Path, Path]:
    """The iterate loop on dev: one marker per attempt (shape and colour by status; attempts
    without a score sit on the bottom edge), the running best of kept attempts as a step line,
    the noise band (baseline +/- 2 x noise floor), gates as labelled vertical lines, and the
    locked attempt ringed. ``baseline``: the iterated arm's dev score before its first attempt."""
    if not attempts:
        raise ValueError("progression needs at least one attempt")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    ordered = sorted(attempts, key=lambda a: a.iteration)

    with _style():
        fig = _new_figure()
        ax = fig.add_subplot()
        gids = _Gids()
        bottom = ax.get_xaxis_transform()  # x in data, y in axes fraction
        ys: list[float] = [baseline] if _finite(baseline) else []
        handles: list[Any] = []

        nf = _num(noise_floor)
        if nf is not None and nf > 0 and _finite(baseline):  # a zero-width band would only add a legend entry
            half = 2.0 * nf
            band = ax.axhspan(baseline - half, baseline + half, color=SKY_BLUE, alpha=0.22,
                              linewidth=0, zorder=0)
            band.set_gid("noise-band")
            ys += [baseline - half, baseline + half]
            handles.append(Patch(facecolor=SKY_BLUE, alpha=0.35,
                                 label="noise band (\u00b1 2 \u00d7 noise floor)"))
        if _finite(baseline):
            bl = ax.axhline(baseline, color=DARK_GREY, linestyle="--", linewidth=1.0, zorder=1)
            bl.set_gid("baseline-line")
            handles.append(Line2D([], [], color=DARK_GREY, linestyle="--", linewidth=1.0,
                                  label=f"before the first attempt ({_fmt(baseline)})"))

        first_x = min(0, ordered[0].iteration)
        steps = running_best(ordered, baseline, higher_is_better)
        bx: list[float] = [float(first_x)] + [float(x) for x, _ in steps]
        by: list[float] = [baseline if _finite(baseline) else math.nan] + [y for _, y in steps]
        if any(math.isfinite(v) for v in by):
            (run,) = ax.step(bx, by, where="post", color=BLACK, linewidth=1.6, zorder=2)
            run.set_gid("running-best")
            handles.append(Line2D([], [], color=BLACK, linewidth=1.6, label="running best (kept)"))

        statuses_seen: list[str] = []
        for a in ordered:
            colour, marker, filled = STATUS_STYLE.get(a.status, _UNKNOWN_STATUS_STYLE)
            if a.status not in statuses_seen:
                statuses_seen.append(a.status)
            kw: dict[str, Any] = {
                "linestyle": "none", "marker": marker, "markersize": 8.5, "color": colour,
                "markeredgecolor": BLACK if filled else colour,
                "markeredgewidth": 0.6 if filled else 1.4, "zorder": 4,
            }
            if not filled:
                kw["markerfacecolor"] = "white"
            score = _num(a.score)
            if score is not None:
                (mk,) = ax.plot([a.iteration], [score], **kw)
                ys.append(score)
            else:
                (mk,) = ax.plot([a.iteration], [0.04], transform=bottom, clip_on=False, **kw)
            mk.set_gid(gids.make("attempt", str(a.iteration), a.status))
            if a.is_locked:
                yx = (score, ax.transData) if score is not None else (0.04, bottom)
                (ring,) = ax.plot([a.iteration], [yx[0]], transform=yx[1], linestyle="none",
                                  marker="o", markersize=19, markerfacecolor="none",
                                  markeredgecolor=BLUE, markeredgewidth=2.4, zorder=5,
                                  clip_on=False)
                ring.set_gid(gids.make("locked"))
                ax.annotate("locked", xy=(a.iteration, yx[0]), xycoords=yx[1],
                            xytext=(0, 14), textcoords="offset points", ha="center",
                            va="bottom", color=BLUE, fontweight="bold", fontsize=9, zorder=6)

        for g in gates:
            colour = GATE_COLOURS.get(g.outcome.lower(), DARK_GREY)
            x = g.after_iteration + 0.5
            line = ax.axvline(x, color=colour, linestyle="-.", linewidth=1.5, zorder=1)
            line.set_gid(gids.make("gate", str(g.after_iteration)))
            ax.annotate(f"gate: {g.outcome}", xy=(x, 0.985), xycoords=bottom, xytext=(-3, 0),
                        textcoords="offset points", rotation=90, ha="right", va="top",
                        fontsize=8, color=colour)

        status_words = {
            "baseline": "baseline run", "keep": "keep", "discard": "discard",
            "crash": "crash (no score: bottom edge)",
            "timeout": "timeout (no score: bottom edge)", "guard_fail": "guard fail",
        }
        for st in statuses_seen:
            colour, marker, filled = STATUS_STYLE.get(st, _UNKNOWN_STATUS_STYLE)
            handles.append(Line2D([], [], linestyle="none", marker=marker, color=colour,
                                  markerfacecolor=colour if filled else "white",
                                  markeredgecolor=BLACK if filled else colour,
                                  markersize=7, label=status_words.get(st, st)))
        if any(a.is_locked for a in ordered):
            handles.append(Line2D([], [], linestyle="none", marker="o", markersize=11,
                                  markerfacecolor="none", markeredgecolor=BLUE,
                                  markeredgewidth=2.0, label="locked (sent to verdict)"))
        if gates:
            handles.append(Line2D([], [], color=DARK_GREY, linestyle="-.", linewidth=1.5,
                                  label="generalization gate"))

        if ys:
            lo, hi = min(ys), max(ys)
            span = hi - lo or max(abs(hi) * 0.1, 0.05)
            ax.set_ylim(lo - 0.2 * span, hi + 0.15 * span)
        last = max(a.iteration for a in ordered)
        ax.set_xlim(first_x - 0.6, last + 0.9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", color="#e3e3e3", linewidth=0.8, zorder=0)
        ax.set_axisbelow(True)
        ax.set_title(f"Iterate loop: dev {metric} per attempt")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{metric} on dev ({'higher' if higher_is_better else 'lower'} is better)")
        _outside_legend(fig, handles, 3)
        return _save(fig, out_dir, name)


# ---------------------------------------------------------------------------------------------
# All of them
# ---------------------------------------------------------------------------------------------


def render_all(data: ChartData, out_dir: str | Path) -> dict[str, tuple[Path, Path]]:
    """Render every chart the data supports, keyed by chart name (``arm-bar``, ``forest-plot``,
    ``cost-vs-accuracy``, ``progression``). A chart whose input is empty is skipped; the
    progression also needs ``attempts`` and ``baseline_dev_score``."""
    out: dict[str, tuple[Path, Path]] = {}
    if data.arms:
        out["arm-bar"] = arm_bar(data.arms, data.threshold_score, data.metric, out_dir, split_label=data.split_label)
    if data.forest:
        out["forest-plot"] = forest_plot(data.forest, data.threshold, data.loss_floor,
                                         data.metric, out_dir)
    if data.costs:
        out["cost-vs-accuracy"] = cost_vs_accuracy(data.costs, data.metric, out_dir,
                                                   higher_is_better=data.higher_is_better)
    if data.attempts and data.baseline_dev_score is not None:
        out["progression"] = progression(data.attempts, data.baseline_dev_score, data.noise_floor,
                                         out_dir, data.metric, data.gates,
                                         higher_is_better=data.higher_is_better)
    return out
