"""`gitera demo --kind run`: the autoresearch-style pipeline on the bundled example, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_kind_run_end_to_end(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "gitera", "demo", "--kind", "run", "--dir", str(target), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["kind"] == "run" and result["decision"] == "ship" and result["arm"] == "agent" and result["verify_ok"] is True
    runs = {a["iteration"]: a for a in result["attempts"]}
    assert runs[1] == {"iteration": 1, "status": "discard", "runs": 1}  # clearly worse: one training run
    assert any(a["runs"] > 1 for a in runs.values()) and all(a["runs"] <= 5 for a in runs.values())
    assert {Path(c).name for c in result["charts"]} == {"arm-bar.png", "forest-plot.png", "progression.png"}  # no cost reported: no cost chart
    text = Path(result["conclusion"]).read_text()
    assert "runs per arm on the sealed test files" in text and "## Discipline self-audit" in text
    assert not (target / "data/test.txt").exists() and (target / "data/LICENSE").exists()
    log = subprocess.run([sys.executable, "-m", "gitera", "log"], cwd=target, capture_output=True, text=True, check=True).stdout
    assert "[1 run]" in log
