"""gitera's own overhead per attempt of a run-level experiment, next to `dvc exp run` of the same script.

A run-level experiment (metric.level: run) scores one run of a script per attempt when the
candidate is clearly better or clearly worse. The script here is trivial (it prints `loss: x`
and exits), so the attempt's wall time is almost all gitera: start-up, the checks, the
candidate commit, the clean work tree, the sequential rule, the commits (and a restore for a
discard). The script alone (one run, as gitera runs it) is timed in the same run and
subtracted. `dvc exp run` of a stage that runs the same script once, with the hyperparameter
changed each time, is measured the same way (as bench/bench_iterate.py does for rows).
Attempts alternate a clear gain (kept) and a clear loss (discarded and restored); the gate
runs after every sprint of 3, inside the attempt that closes it, as in real use. Medians over
--repeat attempts.

    python bench/bench_runlevel.py [--repeat 12]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_iterate import ENV, dvc_bin, new_repo, sh  # this script's folder is on sys.path (as_installed runs there)

SCRIPT = """\
import os, random
LR = {lr}
rng = random.Random(int(os.environ.get("GITERA_TRIAL", "0")))
print(f"loss: {{abs(LR - 10) + rng.gauss(0, 0.01):.6f}}")
"""

FRAME = """\
question: Does tuning train.py lower the loss?
hypothesis: A better learning rate lowers the loss.
baseline: {arm: base, ref: "train.py:1"}
arms:
  base: {change: train.py as locked}
  agent: {change: train.py as edited}
iterate:
  arm: agent
  target: [train.py]
  sprint: 3
  max_runs: 5
  budget: {max_iterations: 1000}
data:
  seal: [data/test.txt]
metric:
  level: run
  primary: {name: loss, direction: lower}
  trials: 3
threshold: {effect: 0.05}
eval: {command: python train.py, timeout_s: 60}
locked: [bench.txt]
"""


def lr_of(i: int) -> float:
    """Attempt i: a clear gain (kept) when even, a clear loss from the current best (discarded) when odd."""
    best = 0.2 * (i // 2 + 1)  # 20x the noise: kept after one run
    return best if i % 2 == 0 else best - 1.0


def gitera_project(root: Path) -> None:
    (root / "data").mkdir()
    (root / "data" / "test.txt").write_text("held out\n")
    (root / ".gitignore").write_text("data/test.txt\n")
    (root / "bench.txt").write_text("the locked eval\n")
    (root / "train.py").write_text(SCRIPT.format(lr=0.0))
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "script"], root)
    gitera = [sys.executable, "-m", "gitera"]
    sh([*gitera, "init", "bench"], root)
    (root / ".gitera/bench/frame.yaml").write_text(FRAME)
    for step in ("lock", "split", "pilot", "run"):
        sh([*gitera, step], root)


def script_alone(root: Path) -> float:
    start = time.perf_counter()
    sh(["/bin/sh", "-c", "python train.py"], root, {**ENV, "GITERA_TRIAL": "0", "GITERA_SPLIT": "dev"})
    return time.perf_counter() - start


def bench_gitera(base: Path, repeat: int) -> tuple[float, float, list[str]]:
    root = new_repo(base / "gitera")
    gitera_project(root)
    totals, alone, statuses = [], [], []
    for i in range(repeat):
        (root / "train.py").write_text(SCRIPT.format(lr=lr_of(i)))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "gitera", "iterate", "-m", f"attempt {i}"], cwd=root, capture_output=True, text=True,
                              env=ENV, check=False)
        totals.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"gitera iterate failed: {proc.stdout[-400:]} {proc.stderr[-400:]}")
        found = re.search(r"#\d+ ([A-Z_]+): \w+ after (\d+) runs?", proc.stdout)
        statuses.append(f"{found.group(1).lower()} ({found.group(2)} run{'s' if found.group(2) != '1' else ''})" if found else "?")
        alone.append(script_alone(root))
    return statistics.median(totals), statistics.median(alone), statuses


def bench_dvc(base: Path, repeat: int) -> tuple[float, float] | None:
    dvc = dvc_bin()
    if dvc is None:
        return None
    root = new_repo(base / "dvc")
    (root / "train.py").write_text(SCRIPT.format(lr=0.0))
    (root / "params.yaml").write_text("lr: 0.0\n")
    # the same work as one run-level attempt: the script once, its printed score an output
    (root / "dvc.yaml").write_text("stages:\n  train:\n    cmd: GITERA_TRIAL=0 python train.py > score.txt\n    deps: [train.py]\n"
                                   "    params: [lr]\n    outs: [score.txt]\n")
    sh([str(dvc), "init", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "dvc project"], root)
    sh([str(dvc), "exp", "run", "-q"], root)  # warm-up (dvc's own caches)
    times, alone = [], []
    for i in range(repeat):
        (root / "train.py").write_text(SCRIPT.format(lr=lr_of(i)))
        start = time.perf_counter()
        sh([str(dvc), "exp", "run", "-q", "-S", f"lr={lr_of(i):.4f}"], root)
        times.append(time.perf_counter() - start)
        alone.append(script_alone(root))
    return statistics.median(times), statistics.median(alone)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=12)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitera-bench-runlevel-") as tmp:
        base = Path(tmp)
        g_total, g_alone, statuses = bench_gitera(base, args.repeat)
        dvc = bench_dvc(base, args.repeat)
    g_over = g_total - g_alone
    print(f"Per attempt of a run-level experiment, median of {args.repeat} (a trivial script; attempts: {', '.join(statuses)})\n")
    print("| operation | wall (ms) | script alone (ms) | overhead (ms) | × gitera's overhead |")
    print("|---|---:|---:|---:|---:|")
    print(f"| `gitera iterate -m …` (one run, the sequential rule, commit, restore; a gate every 3rd) | {g_total * 1000:.0f} | "
          f"{g_alone * 1000:.0f} | {g_over * 1000:.0f} | 1.0 |")
    if dvc is None:
        print("| `dvc exp run` of the same script | dvc not installed | — | — | — |")
        return 0
    d_total, d_alone = dvc
    d_over = d_total - d_alone
    print(f"| `dvc exp run` of the same script (one run) | {d_total * 1000:.0f} | {d_alone * 1000:.0f} | {d_over * 1000:.0f} | {d_over / g_over:.1f} |")
    met = d_over >= 5 * g_over
    print(f"\nTarget: gitera's overhead at least 5× below DVC's — {'met' if met else 'NOT met'} ({d_over / g_over:.1f}×).")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
