"""Building blocks for run-level tests: the autoresearch example and a tiny synthetic script, in real repos."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import git, run_gitera

AUTORESEARCH = Path(__file__).resolve().parents[1] / "gitera" / "demo_autoresearch"
IGNORE = "data/test.txt\ndata/gate.txt\n__pycache__/\n"


def autoresearch_project(root: Path, tag: str = "ar", frame_edits: dict[str, str] | None = None) -> None:
    """The bundled example (train.py, prepare.py, propose.py, data/) committed, initialised and locked;
    the held-out shards are in the work tree, untracked, as a user keeps them before `gitera split`."""
    for item in AUTORESEARCH.iterdir():
        if item.is_dir() and item.name != "__pycache__":
            shutil.copytree(item, root / item.name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif item.is_file() and item.name != "frame.yaml":
            shutil.copy(item, root / item.name)
    (root / ".gitignore").write_text(IGNORE)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a tiny character model")
    lock(root, tag, (AUTORESEARCH / "frame.yaml").read_text(), frame_edits)


def lock(root: Path, tag: str, frame: str, edits: dict[str, str] | None = None, check: bool = False) -> None:
    r = run_gitera(root, "init", tag)
    assert r.code == 0, r.err
    for old, new in (edits or {}).items():
        assert old in frame, old
        frame = frame.replace(old, new)
    (root / ".gitera" / tag / "frame.yaml").write_text(frame)
    r = run_gitera(root, "lock", *(["--check"] if check else []))
    assert r.code == 0, r.err


# A script whose score is |LR - 0.5| + the eval file's offset + seeded noise: fast, and every
# outcome of the keep rule can be had by choosing LR.
PREPARE = """\
import os, random


def evaluate(lr):
    split = os.environ.get("GITERA_SPLIT", "dev")
    offset = float(open({"dev": "data/val.txt", "test": "data/test.txt", "gate": "data/gate.txt"}[split]).read().split()[0])
    rng = random.Random(int(os.environ.get("GITERA_TRIAL", "0")))
    return abs(lr - 0.5) + offset + rng.gauss(0, NOISE)


NOISE = 0.01
"""

TRAIN = """\
from prepare import evaluate

LR = 0.1
print(f"loss: {evaluate(LR):.6f}")
print("peak_mb: 12.5")
"""

FRAME = """\
question: Does tuning train.py lower the loss?
hypothesis: A better learning rate lowers the loss.
baseline: {arm: base, ref: "train.py:3"}
arms:
  base: {change: train.py as locked}
  agent: {change: train.py as edited}
iterate:
  arm: agent
  target: [train.py]
  sprint: 3
  max_runs: 5
  budget: {max_iterations: 10}
data:
  dev: [data/val.txt]
  seal: [data/test.txt]
  gate_seal: [data/gate.txt]
metric:
  level: run
  primary: {name: loss, direction: lower}
  secondary: [{name: memory_mb, pattern: '^peak_mb:\\s*(\\S+)'}]
  trials: 3
threshold: {effect: 0.05}
eval: {command: python train.py, timeout_s: 60}
locked: [prepare.py, data/val.txt]
"""


def synthetic_project(root: Path, tag: str = "rl", frame: str = FRAME, *, train: str = TRAIN, prepare: str = PREPARE,
                      offsets: tuple[str, str, str] = ("0.0", "0.0", "0.0"), edits: dict[str, str] | None = None,
                      check: bool = False) -> None:
    """The synthetic script committed, initialised and locked (``check``: with `lock --check`); test and gate shards untracked."""
    (root / "data").mkdir(exist_ok=True)
    (root / "prepare.py").write_text(prepare)
    (root / "train.py").write_text(train)
    for name, offset in zip(("val", "test", "gate"), offsets):
        (root / "data" / f"{name}.txt").write_text(offset + "\n")
    (root / ".gitignore").write_text(IGNORE)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "synthetic script")
    lock(root, tag, frame, edits, check)


def set_lr(root: Path, value: str) -> None:
    text = (root / "train.py").read_text()
    (root / "train.py").write_text("\n".join(f"LR = {value}" if line.startswith("LR = ") else line for line in text.splitlines()) + "\n")


def through_run(root: Path) -> None:
    for step in ("split", "pilot", "run"):
        r = run_gitera(root, step)
        assert r.code == 0, (step, r.out, r.err)
