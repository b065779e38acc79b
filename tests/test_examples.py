"""The example LLM harness: runs when its API key is present, is skipped otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "banking77"


def test_project_link_points_at_the_demo_project() -> None:
    assert (EXAMPLES / "project" / "frame.yaml").exists()
    assert (EXAMPLES / "project" / "eval" / "harness.py").exists()


def _run(tmp_path: Path, env_key: str | None) -> subprocess.CompletedProcess[str]:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "t1", "text": "I still have not received my new card", "intent": "card_arrival"}) + "\n")
    (tmp_path / "eval").mkdir(exist_ok=True)
    (tmp_path / "eval/groups.json").write_text((EXAMPLES / "groups.json").read_text())
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    if env_key:
        env["ANTHROPIC_API_KEY"] = env_key
    env.update(GITERA_ROWS=str(rows), GITERA_OUT=str(tmp_path / "out.jsonl"), GITERA_ARM_PARAMS="{}", GITERA_TRIAL="0")
    return subprocess.run([sys.executable, str(EXAMPLES / "llm_harness.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_llm_harness_skips_cleanly_without_a_key(tmp_path: Path) -> None:
    proc = _run(tmp_path, None)
    assert proc.returncode == 0 and "ANTHROPIC_API_KEY is not set; skipping" in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"), reason="needs ANTHROPIC_API_KEY (calls the provider's API)")
def test_llm_harness_scores_a_row_with_the_provider(tmp_path: Path) -> None:
    proc = _run(tmp_path, os.environ["ANTHROPIC_API_KEY"])
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out.jsonl").read_text())
    assert result["id"] == "t1" and (result.get("score") in (0, 1) or result.get("transient"))
