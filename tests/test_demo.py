"""The README's main command: `gitera demo` runs the whole pipeline on the bundled real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "gitera", "demo", "--dir", str(target), "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["decision"] in ("ship", "ship_narrowly", "underpowered", "kill")
    assert result["verify_ok"] is True
    conclusion = Path(result["conclusion"])
    text = conclusion.read_text()
    assert "## Question" in text and "## Discipline self-audit" in text
    names = {Path(c).name for c in result["charts"]}
    assert names == {"arm-bar.png", "forest-plot.png", "cost-vs-accuracy.png", "progression.png"}
    # the planted hardcode was caught and the verdict used the latest gate-passed state
    gates = subprocess.run(["git", "log", "--format=%(trailers:key=Gitera-Gate,valueonly)", "autoexp/banking"], cwd=target,
                           capture_output=True, text=True, check=True).stdout
    outcomes = [json.loads(x)["outcome"] for x in gates.splitlines() if x.strip()]
    assert "fail" in outcomes and "pass" in outcomes
    verdict = json.loads((target / ".gitera/banking/verdict.json").read_text())
    assert verdict["arms"]["rules-v2"]["what"].startswith("iteration 2")

    # the output browser of the whole demo: gates, charts, attempts with their diffs, and the test rows after the verdict
    page = tmp_path / "banking.html"
    view = subprocess.run([sys.executable, "-m", "gitera", "view", "--no-serve", "--out", str(page), "--json"], cwd=target,
                          capture_output=True, text=True, timeout=300)
    assert view.returncode == 0, view.stderr
    info = json.loads(view.stdout)
    assert info["test_rows"] == verdict["n_test"] and info["charts"] == ["arm-bar", "forest-plot", "cost-vs-accuracy", "progression"]
    html = page.read_text()
    data = json.loads(html.split('<script type="application/json" id="gitera-data">', 1)[1].split("</script>", 1)[0])
    assert [g["outcome"] for g in data["gates"]] == outcomes[::-1]  # git log lists the newest first
    assert len(data["attempts"]) == info["attempts"] >= 4 and all(a["diff"].startswith("diff --git") and len(a["commit"]) == 40 for a in data["attempts"])
    assert data["verdict"]["decision"]["decision"] == result["decision"] and data["frame_text"].startswith("question:")
    assert {s["key"] for s in data["splits"]["test"]["subjects"]} == {f"test:{arm}" for arm in verdict["arms"]}
