"""Charts: real PNG and SVG files rendered by matplotlib, opened and checked for content.

SVG checks rely on the ids (``gid``) gitera.adapters.charts gives each data-bearing artist and on
``svg.fonttype = "none"`` keeping text as text; PNG checks look at size and pixel colours.
"""

from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gitera.adapters import charts
from gitera.adapters.charts import (
    ArmBar,
    AttemptPoint,
    ChartData,
    CostPoint,
    ForestRow,
    GateMark,
)

NAN = math.nan
SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

LONG = "retrieval-hybrid-bm25-plus-dense-reranker-with-query-expansion-and-a-very-long-name"


# --------------------------------------------------------------------------------------------
# Helpers that open the outputs
# --------------------------------------------------------------------------------------------


def svg_ids(path: Path) -> Counter[str]:
    root = ET.parse(path).getroot()
    return Counter(gid for el in root.iter() if (gid := el.get("id")))


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return ["".join(el.itertext()) for el in root.iter(f"{SVG_NS}text")]


def svg_element(path: Path, gid: str) -> ET.Element:
    root = ET.parse(path).getroot()
    found = [el for el in root.iter() if el.get("id") == gid]
    assert len(found) == 1, f"{gid}: {len(found)} elements"
    return found[0]


def marker_y(path: Path, gid: str) -> float:
    """SVG y (downwards) of the single marker drawn inside the group ``gid``."""
    uses = list(svg_element(path, gid).iter(f"{SVG_NS}use"))
    assert len(uses) == 1
    return float(uses[0].get("y"))  # type: ignore[arg-type]


def png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return np.asarray(img[:, :, :3], dtype=float)


def count_near(img: np.ndarray, hex_colour: str, tol: float = 0.05) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int(np.all(np.abs(img - rgb) <= tol, axis=2).sum())


def assert_png_ok(path: Path, width: int = 1200, min_height: int = 700) -> np.ndarray:
    img = png(path)
    assert img.shape[1] == width
    assert img.shape[0] >= min_height
    assert img.var() > 0.001, "PNG looks blank"
    return img


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

ARMS = (
    ArmBar("v1", 0.78, 0.76, 0.80, is_baseline=True),
    ArmBar("v2", 0.84, 0.82, 0.86, decision_label="ship"),
    ArmBar("v3", 0.80, 0.77, 0.83, decision_label="kill"),
)

FOREST = (
    ForestRow("v2 (all rows)", "v2", None, 0.06, 0.03, 0.09, "PASS"),
    ForestRow("tier=gold", "v2", "tier=gold", 0.08, 0.01, 0.15, "PASS"),
    ForestRow("tier=free", "v2", "tier=free", -0.05, -0.09, -0.03, "FAIL"),
    ForestRow("v3 (all rows)", "v3", None, 0.02, -0.02, 0.06, "INCONCLUSIVE"),
    ForestRow("tier=gold", "v3", "tier=gold", 0.01, -0.03, 0.05, "INCONCLUSIVE"),
)

COSTS = (
    CostPoint("v1", 0.50, 0.78, is_baseline=True),
    CostPoint("v2", 1.20, 0.84),
    CostPoint("v3", 2.00, 0.80),
)

ATTEMPTS = (
    AttemptPoint(1, 0.70, "keep"),
    AttemptPoint(2, 0.72, "keep"),
    AttemptPoint(3, 0.71, "discard"),
    AttemptPoint(4, None, "crash"),
    AttemptPoint(5, 0.75, "keep", is_locked=True),
    AttemptPoint(6, 0.76, "keep"),
    AttemptPoint(7, None, "timeout"),
    AttemptPoint(8, 0.74, "guard_fail"),
)
GATES = (GateMark(3, "pass"), GateMark(6, "saturated"))


# --------------------------------------------------------------------------------------------
# arm-bar
# --------------------------------------------------------------------------------------------


def test_arm_bar_content(tmp_path: Path) -> None:
    png_path, svg_path = charts.arm_bar(ARMS, 0.83, "accuracy", tmp_path)
    assert (png_path.name, svg_path.name) == ("arm-bar.png", "arm-bar.svg")
    img = assert_png_ok(png_path, min_height=700)
    assert img.shape[0] == 700
    # Baseline bar is grey (hatched), candidate bars blue: both colours are really drawn.
    assert count_near(img, charts.BLUE) > 5000
    assert count_near(img, charts.GREY) > 2000

    ids = svg_ids(svg_path)
    for arm in ("v1", "v2", "v3"):
        assert ids[f"bar-{arm}"] == 1
        assert ids[f"err-{arm}"] == 1
        assert ids[f"value-{arm}"] == 1
    assert ids["threshold-line"] == 1
    assert sum(1 for k in ids if k.startswith("bar-")) == 3

    texts = svg_texts(svg_path)
    assert "accuracy per arm on the sealed test set" in texts
    assert "accuracy (sealed test set)" in texts
    assert "arm" in texts
    for word in ("v1", "v2", "v3", "(baseline)", "[ship]", "[kill]", "0.780", "0.840", "0.800"):
        assert word in texts, word
    assert "ship threshold (0.830)" in texts


def test_arm_bar_without_threshold_or_error_bars(tmp_path: Path) -> None:
    arms = (ArmBar("v1", 0.5, NAN, NAN, True), ArmBar("v2", 0.6, None, None))
    _, svg_path = charts.arm_bar(arms, None, "f1", tmp_path)
    ids = svg_ids(svg_path)
    assert ids["bar-v1"] == ids["bar-v2"] == 1
    assert not [k for k in ids if k.startswith("err-")]
    assert "threshold-line" not in ids


def test_arm_bar_needs_an_arm(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one arm"):
        charts.arm_bar([], 0.5, "accuracy", tmp_path)


# --------------------------------------------------------------------------------------------
# forest-plot
# --------------------------------------------------------------------------------------------


def test_forest_plot_content(tmp_path: Path) -> None:
    png_path, svg_path = charts.forest_plot(FOREST, 0.05, 0.02, "accuracy", tmp_path)
    assert_png_ok(png_path)
    ids = svg_ids(svg_path)
    expected = {
        "marker-v2", "marker-v2-tier=gold", "marker-v2-tier=free",
        "marker-v3", "marker-v3-tier=gold",
    }
    assert {k for k in ids if k.startswith("marker-")} == expected
    assert all(ids[k] == 1 for k in expected)
    assert {k for k in ids if k.startswith("ci-")} == {"ci-" + k[len("marker-"):] for k in expected}
    for line in ("zero-line", "threshold-line", "loss-floor-line"):
        assert ids[line] == 1

    texts = svg_texts(svg_path)
    assert "Effect on accuracy vs baseline, per arm and per slice" in texts
    assert "difference in accuracy vs baseline (positive = better), with CI" in texts
    for label in ("v2 (all rows)", "v3 (all rows)", "tier=free"):
        assert label in texts
    assert texts.count("tier=gold") == 2
    assert "threshold (+0.050)" in texts
    assert "slice loss floor (\u22120.020)" in texts
    assert "\u22120.050 [\u22120.090, \u22120.030]" in texts
    assert {"PASS", "FAIL", "INCONCLUSIVE"} <= set(texts)  # the state column
    legend = {"arm PASS: clears the threshold", "arm INCONCLUSIVE: cannot tell yet", "slice PASS: within the loss floor",
              "slice FAIL: slice loses beyond the floor", "slice INCONCLUSIVE: cannot tell yet"}
    assert legend <= set(texts)
    assert "arm FAIL: misses the threshold" not in texts  # no aggregate failed


def test_forest_plot_legend_reads_an_aggregate_fail_as_missing_the_threshold(tmp_path: Path) -> None:
    # an arm whose aggregate FAILs while every slice holds: nothing in the chart may say a slice loses
    rows = (
        ForestRow("v2 (all rows)", "v2", None, 0.01, -0.01, 0.03, "FAIL"),
        ForestRow("tier=gold", "v2", "tier=gold", 0.01, -0.01, 0.03, "PASS"),
        ForestRow("tier=free", "v2", "tier=free", 0.01, -0.01, 0.03, "PASS"),
    )
    _, svg_path = charts.forest_plot(rows, 0.05, 0.02, "accuracy", tmp_path)
    texts = svg_texts(svg_path)
    assert "arm FAIL: misses the threshold" in texts and "slice PASS: within the loss floor" in texts
    assert not [t for t in texts if "loses" in t]
    assert texts.count("FAIL") == 1 and texts.count("PASS") == 2


def test_forest_plot_groups_slices_under_their_arm(tmp_path: Path) -> None:
    # Rows arrive interleaved; each arm's slices must end up directly beneath it.
    rows = (FOREST[1], FOREST[3], FOREST[0], FOREST[4], FOREST[2])
    _, svg_path = charts.forest_plot(rows, 0.05, 0.02, "accuracy", tmp_path)
    ys = {g: marker_y(svg_path, g) for g in (
        "marker-v2", "marker-v2-tier=gold", "marker-v2-tier=free", "marker-v3", "marker-v3-tier=gold")}
    order = sorted(ys, key=ys.__getitem__)
    assert order == ["marker-v2", "marker-v2-tier=gold", "marker-v2-tier=free",
                     "marker-v3", "marker-v3-tier=gold"]


def test_forest_plot_fail_colour_is_distinct(tmp_path: Path) -> None:
    with_fail, _ = charts.forest_plot(FOREST, 0.05, 0.02, "accuracy", tmp_path / "a")
    no_fail_rows = tuple(
        ForestRow(r.label, r.arm, r.slice, r.effect, r.ci_low, r.ci_high, "PASS") for r in FOREST
    )
    without_fail, _ = charts.forest_plot(no_fail_rows, 0.05, 0.02, "accuracy", tmp_path / "b")
    a, b = png(with_fail), png(without_fail)
    fail_colour, _ = charts.STATE_STYLE["FAIL"]
    pass_colour, _ = charts.STATE_STYLE["PASS"]
    inc_colour, _ = charts.STATE_STYLE["INCONCLUSIVE"]
    assert len({fail_colour, pass_colour, inc_colour}) == 3
    assert count_near(a, fail_colour) > 150  # the FAIL marker, its CI, legend and state text
    assert count_near(b, fail_colour) < 10
    assert count_near(a, pass_colour) > 150
    assert count_near(a, inc_colour) > 150
    assert count_near(b, inc_colour) < 10
    assert count_near(b, pass_colour) > count_near(a, pass_colour)


def test_forest_plot_nan_ci_and_nan_effect(tmp_path: Path) -> None:
    rows = (
        ForestRow("v2 (all rows)", "v2", None, 0.03, NAN, NAN, "INCONCLUSIVE"),
        ForestRow("tier=gold", "v2", "tier=gold", NAN, None, None, "INCONCLUSIVE"),
        ForestRow("tier=free", "v2", "tier=free", 0.01, -0.01, math.inf, "PASS"),
    )
    png_path, svg_path = charts.forest_plot(rows, 0.05, 0.02, "accuracy", tmp_path)
    assert_png_ok(png_path)
    ids = svg_ids(svg_path)
    assert ids["marker-v2"] == 1 and ids["marker-v2-tier=free"] == 1
    assert "marker-v2-tier=gold" not in ids
    assert not [k for k in ids if k.startswith("ci-")]
    assert "no estimate" in svg_texts(svg_path)


def test_forest_plot_twenty_slices(tmp_path: Path) -> None:
    rows = [ForestRow("v2 (all rows)", "v2", None, 0.04, 0.01, 0.07, "INCONCLUSIVE")]
    for i in range(20):
        state = ("PASS", "FAIL", "INCONCLUSIVE")[i % 3]
        rows.append(ForestRow(f"region=r{i:02d}", "v2", f"region=r{i:02d}", 0.01 * (i - 8),
                              0.01 * (i - 8) - 0.03, 0.01 * (i - 8) + 0.03, state))
    png_path, svg_path = charts.forest_plot(rows, 0.05, 0.02, "accuracy", tmp_path)
    img = assert_png_ok(png_path)
    assert img.shape[0] > 700  # grows with the number of rows
    ids = svg_ids(svg_path)
    assert sum(1 for k in ids if k.startswith("marker-v2-region=")) == 20
    texts = set(svg_texts(svg_path))
    assert {f"region=r{i:02d}" for i in range(20)} <= texts
    ys = [marker_y(svg_path, f"marker-v2-region=r{i:02d}") for i in range(20)]
    assert ys == sorted(ys) and len(set(ys)) == 20


def test_forest_plot_rejects_unknown_state(tmp_path: Path) -> None:
    row = ForestRow("v2", "v2", None, 0.1, 0.0, 0.2, "MAYBE")
    with pytest.raises(ValueError, match="MAYBE"):
        charts.forest_plot([row], 0.05, 0.02, "accuracy", tmp_path)


# --------------------------------------------------------------------------------------------
# cost-vs-accuracy
# --------------------------------------------------------------------------------------------


def test_pareto_frontier() -> None:
    pts = [
        CostPoint("cheap-bad", 0.1, 0.70),
        CostPoint("mid", 0.5, 0.80),
        CostPoint("dominated", 0.6, 0.75),
        CostPoint("dear-good", 2.0, 0.90),
        CostPoint("dear-same", 2.0, 0.85),
        CostPoint("no-cost", None, 0.99),
    ]
    assert [p.name for p in charts.pareto_frontier(pts)] == ["cheap-bad", "mid", "dear-good"]
    # Lower is better (e.g. error rate): only the cheapest-and-lowest survive.
    assert [p.name for p in charts.pareto_frontier(pts, higher_is_better=False)] == ["cheap-bad"]
    ties = [CostPoint("a", 1.0, 0.5), CostPoint("b", 1.0, 0.5)]
    assert {p.name for p in charts.pareto_frontier(ties)} == {"a", "b"}


def test_cost_vs_accuracy_content(tmp_path: Path) -> None:
    png_path, svg_path = charts.cost_vs_accuracy(COSTS, "accuracy", tmp_path)
    img = assert_png_ok(png_path)
    assert img.shape[0] == 700
    assert count_near(img, charts.BLUISH_GREEN) > 300  # the frontier is drawn
    ids = svg_ids(svg_path)
    assert ids["frontier"] == 1
    assert {k for k in ids if k.startswith("point-")} == {"point-v1", "point-v2", "point-v3"}
    assert {k for k in ids if k.startswith("frontier-")} == {"frontier-v1", "frontier-v2"}
    texts = svg_texts(svg_path)
    assert "Cost vs accuracy: which arms are worth their price" in texts
    assert "cost per 1,000 rows (USD)" in texts
    assert "accuracy (higher is better)" in texts
    assert {"v1 (baseline)", "v2", "v3"} <= set(texts)


def test_cost_vs_accuracy_zero_and_missing_costs(tmp_path: Path) -> None:
    pts = (CostPoint("v1", 0.0, 0.7, True), CostPoint("v2", 0.0, 0.8), CostPoint("v3", None, 0.9))
    png_path, svg_path = charts.cost_vs_accuracy(pts, "accuracy", tmp_path)
    assert_png_ok(png_path)
    ids = svg_ids(svg_path)
    assert {k for k in ids if k.startswith("point-")} == {"point-v1", "point-v2"}
    assert {k for k in ids if k.startswith("frontier-")} == {"frontier-v2"}
    joined = " ".join(svg_texts(svg_path))
    assert "every arm with a reported cost cost $0" in joined
    assert "no cost reported, not shown: v3" in joined


def test_cost_vs_accuracy_wide_cost_range_uses_symlog(tmp_path: Path) -> None:
    pts = (CostPoint("local", 0.0, 0.7, True), CostPoint("haiku", 0.02, 0.8),
           CostPoint("sonnet", 9.0, 0.86))
    _, svg_path = charts.cost_vs_accuracy(pts, "accuracy", tmp_path)
    joined = " ".join(svg_texts(svg_path))
    assert "logarithmic above" in joined
    assert svg_ids(svg_path)["frontier"] == 1


def test_cost_vs_accuracy_lower_is_better(tmp_path: Path) -> None:
    pts = (CostPoint("a", 1.0, 0.10, True), CostPoint("b", 2.0, 0.05), CostPoint("c", 3.0, 0.20))
    _, svg_path = charts.cost_vs_accuracy(pts, "error rate", tmp_path, higher_is_better=False)
    ids = svg_ids(svg_path)
    assert {k for k in ids if k.startswith("frontier-")} == {"frontier-a", "frontier-b"}
    assert "error rate (lower is better)" in svg_texts(svg_path)


# --------------------------------------------------------------------------------------------
# progression
# --------------------------------------------------------------------------------------------


def test_running_best_counts_only_kept_attempts() -> None:
    steps = charts.running_best(ATTEMPTS, 0.69)
    assert steps == [(1, 0.70), (2, 0.72), (3, 0.72), (4, 0.72), (5, 0.75), (6, 0.76),
                     (7, 0.76), (8, 0.76)]
    lower = [AttemptPoint(1, 0.3, "keep"), AttemptPoint(2, 0.1, "discard"), AttemptPoint(3, 0.2, "keep")]
    assert charts.running_best(lower, 0.4, higher_is_better=False) == [(1, 0.3), (2, 0.3), (3, 0.2)]


def test_progression_content(tmp_path: Path) -> None:
    png_path, svg_path = charts.progression(ATTEMPTS, 0.69, 0.01, tmp_path, "accuracy", GATES)
    img = assert_png_ok(png_path)
    assert img.shape[0] == 700
    ids = svg_ids(svg_path)
    expected = {f"attempt-{a.iteration}-{a.status}" for a in ATTEMPTS}
    assert {k for k in ids if k.startswith("attempt-")} == expected
    for gid in ("running-best", "noise-band", "baseline-line", "gate-3", "gate-6", "locked"):
        assert ids[gid] == 1, gid
    # Attempts without a score sit on the bottom edge, below every scored attempt.
    scored = [marker_y(svg_path, f"attempt-{a.iteration}-{a.status}") for a in ATTEMPTS if a.score]
    for gid in ("attempt-4-crash", "attempt-7-timeout"):
        assert marker_y(svg_path, gid) > max(scored)
    # The locked ring sits on attempt 5, not on the best-scoring attempt 6.
    assert marker_y(svg_path, "locked") == marker_y(svg_path, "attempt-5-keep")
    texts = svg_texts(svg_path)
    assert "Iterate loop: dev accuracy per attempt" in texts
    assert "iteration" in texts
    assert "accuracy on dev (higher is better)" in texts
    assert {"gate: pass", "gate: saturated", "locked"} <= set(texts)
    assert "crash (no score: bottom edge)" in texts


def test_progression_without_noise_floor_or_gates(tmp_path: Path) -> None:
    attempts = (AttemptPoint(1, None, "crash"),)
    png_path, svg_path = charts.progression(attempts, 0.5, None, tmp_path, "accuracy")
    assert_png_ok(png_path)
    ids = svg_ids(svg_path)
    assert ids["attempt-1-crash"] == 1
    assert "noise-band" not in ids
    # a deterministic harness has a noise floor of 0: no band to draw, so no legend entry for one
    _, zero = charts.progression(attempts, 0.5, 0.0, tmp_path / "zero", "accuracy")
    assert "noise-band" not in svg_ids(zero) and not [t for t in svg_texts(zero) if t.startswith("noise band")]
    assert not [k for k in ids if k.startswith("gate-")]
    assert "locked" not in ids


# --------------------------------------------------------------------------------------------
# Edge cases across charts, determinism, render_all, lazy import
# --------------------------------------------------------------------------------------------


def test_single_arm_everywhere(tmp_path: Path) -> None:
    data = ChartData(
        metric="accuracy",
        arms=(ArmBar("only", 0.9, 0.88, 0.92, True),),
        threshold_score=0.95,
        forest=(ForestRow("only (all rows)", "only", None, 0.0, -0.01, 0.01, "INCONCLUSIVE"),),
        threshold=0.05,
        loss_floor=0.02,
        costs=(CostPoint("only", 1.0, 0.9, True),),
        attempts=(AttemptPoint(1, 0.9, "keep", True),),
        baseline_dev_score=0.88,
        noise_floor=0.0,
    )
    out = charts.render_all(data, tmp_path)
    assert set(out) == {"arm-bar", "forest-plot", "cost-vs-accuracy", "progression"}
    for key, (png_path, svg_path) in out.items():
        assert_png_ok(png_path)
        if key != "progression":  # the iterate loop has one arm and does not name it
            assert "only" in " ".join(svg_texts(svg_path))
    assert svg_ids(out["cost-vs-accuracy"][1])["frontier-only"] == 1


def test_long_arm_name(tmp_path: Path) -> None:
    arms = (ArmBar("v1", 0.7, 0.69, 0.71, True), ArmBar(LONG, 0.8, 0.78, 0.82, decision_label="ship"))
    _, svg_path = charts.arm_bar(arms, 0.75, "accuracy", tmp_path)
    assert svg_ids(svg_path)[f"bar-{LONG}"] == 1
    # The name is wrapped onto several lines, every piece of it still in the SVG as text.
    assert LONG[:22] in svg_texts(svg_path)
    rows = (ForestRow(LONG, LONG, None, 0.1, 0.05, 0.15, "PASS"),)
    _, svg_path = charts.forest_plot(rows, 0.05, 0.02, "accuracy", tmp_path)
    assert svg_ids(svg_path)[f"marker-{LONG}"] == 1
    assert any(t.startswith(LONG[:20]) and t.endswith("\u2026") for t in svg_texts(svg_path))
    _, svg_path = charts.cost_vs_accuracy((CostPoint(LONG, 1.0, 0.8),), "accuracy", tmp_path)
    assert svg_ids(svg_path)[f"point-{LONG}"] == 1


def test_gid_slug() -> None:
    assert charts.gid_slug("marker", "v2", "tier=gold") == "marker-v2-tier=gold"
    assert charts.gid_slug("bar", "prompt v2 / fast") == "bar-prompt-v2-fast"
    assert charts.gid_slug("bar", "") == "bar-_"


def test_duplicate_names_get_distinct_ids(tmp_path: Path) -> None:
    arms = (ArmBar("a b", 0.5, None, None, True), ArmBar("a/b", 0.6))
    _, svg_path = charts.arm_bar(arms, None, "accuracy", tmp_path)
    ids = svg_ids(svg_path)
    assert ids["bar-a-b"] == 1 and ids["bar-a-b~2"] == 1


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    data = ChartData(metric="accuracy", arms=ARMS, threshold_score=0.83, forest=FOREST,
                     threshold=0.05, loss_floor=0.02, costs=COSTS, attempts=ATTEMPTS,
                     gates=GATES, baseline_dev_score=0.69, noise_floor=0.01)
    first = charts.render_all(data, tmp_path / "one")
    second = charts.render_all(data, tmp_path / "two")
    assert set(first) == set(second) == {"arm-bar", "forest-plot", "cost-vs-accuracy", "progression"}
    for key, (png1, svg1) in first.items():
        png2, svg2 = second[key]
        assert svg1.read_bytes() == svg2.read_bytes(), key
        assert png1.read_bytes() == png2.read_bytes(), key
        assert b"<dc:date>" not in svg1.read_bytes()


def test_render_all_skips_what_has_no_data(tmp_path: Path) -> None:
    data = ChartData(metric="accuracy", arms=ARMS, threshold_score=0.83, forest=FOREST,
                     threshold=0.05, loss_floor=0.02, costs=COSTS)
    out = charts.render_all(data, tmp_path / "deep" / "dir")
    assert set(out) == {"arm-bar", "forest-plot", "cost-vs-accuracy"}
    assert sorted(p.name for p in (tmp_path / "deep" / "dir").iterdir()) == [
        "arm-bar.png", "arm-bar.svg", "cost-vs-accuracy.png", "cost-vs-accuracy.svg",
        "forest-plot.png", "forest-plot.svg",
    ]


def test_user_matplotlibrc_does_not_change_the_charts(tmp_path: Path) -> None:
    import matplotlib

    _, before = charts.arm_bar(ARMS, 0.83, "accuracy", tmp_path / "a")
    with matplotlib.rc_context({"axes.facecolor": "black", "font.size": 20, "svg.fonttype": "path"}):
        _, after = charts.arm_bar(ARMS, 0.83, "accuracy", tmp_path / "b")
    assert before.read_bytes() == after.read_bytes()


def test_importing_charts_does_not_import_matplotlib() -> None:
    code = "import sys, gitera.adapters.charts; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# The progression drawn from a real history (gitera log --chart; the conclusion draws the same)
# --------------------------------------------------------------------------------------------


def path_ys(path: Path, gid: str) -> list[float]:
    """The SVG y of every vertex of the single path inside the group ``gid``."""
    (el,) = list(svg_element(path, gid).iter(f"{SVG_NS}path"))
    numbers = [float(x) for x in el.get("d", "").replace("M", " ").replace("L", " ").split()]
    return numbers[1::2]


def climbed(root: Path, start: str, kept: str, direction: str = "higher") -> Path:
    from tests.conftest import run_gitera
    from tests.helpers import synthetic_project

    synthetic_project(root, policies={"policy_a.txt": "accuracy: 0.6\n", "policy_b.txt": start},
                      frame_edits={"direction: higher": f"direction: {direction}"})
    assert run_gitera(root, "run").code == 0
    (root / "policy_b.txt").write_text(kept)
    r = run_gitera(root, "iterate", "-m", "one change")
    assert r.code == 0 and "KEEP" in r.out, r.out + r.err
    r = run_gitera(root, "log", "--chart", str(root / "p.png"))
    assert r.code == 0, r.err
    return root / "p.svg"


def test_the_running_best_starts_at_the_iterated_arms_own_dev_score(repo: Path) -> None:
    # b starts at 0.4, below the baseline arm a (0.6), and keeps an attempt at 0.5: the running
    # best must climb from b's 0.4 to the kept 0.5, not sit at a's 0.6 above the kept attempt
    svg = climbed(repo, "accuracy: 0.4\n", "accuracy: 0.5\n")
    ys = path_ys(svg, "running-best")
    assert ys[0] > ys[-1]  # it climbs (SVG y grows downwards)
    assert math.isclose(ys[-1], marker_y(svg, "attempt-1-keep"), abs_tol=0.01)
    assert math.isclose(path_ys(svg, "baseline-line")[0], ys[0], abs_tol=0.01)
    assert [t for t in svg_texts(svg) if t.startswith("before the first attempt (0.4")]


def test_the_running_best_follows_the_metric_direction(repo: Path) -> None:
    # lower is better: a kept drop from 0.5 to 0.3 is the new best (not the max of the two)
    svg = climbed(repo, "accuracy: 0.5\n", "accuracy: 0.3\n", direction="lower")
    ys = path_ys(svg, "running-best")
    assert math.isclose(ys[-1], marker_y(svg, "attempt-1-keep"), abs_tol=0.01) and ys[-1] > ys[0]
    assert "accuracy on dev (lower is better)" in svg_texts(svg)
