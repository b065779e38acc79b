"""`gitera log --format jsonl` on a branch of 10,000 attempt commits, next to the bare `git log` of the trailers.

The branch is written with `git fast-import`: each commit carries realistic `Gitera-Tag` and
`Gitera-Result` trailers (the fields `gitera iterate` writes). Cold = no history cache in
.git/gitera/history/; warm = the cache of the same tip. Medians of --repeat fresh processes.

    python bench/bench_log.py [--commits 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from installed import as_installed  # this script's folder is on sys.path

as_installed()

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GIT_CONFIG_NOSYSTEM": "1"}
TAG = "syn"
FRAME = """\
question: Does policy B beat policy A?
hypothesis: B answers more rows correctly.
baseline: {arm: a, ref: "policy_a.txt:1"}
arms:
  a: {change: current policy}
  b: {change: the iterated policy}
iterate: {arm: b, target: [policy_b.txt], sprint: 3, budget: {max_iterations: 20000}}
metric: {primary: {name: accuracy, direction: higher}, trials: 3}
threshold: {effect: 0.05, slice_loss_floor: 0.02}
eval: {command: python harness.py}
locked: [harness.py]
"""


def sh(args: list[str], cwd: Path, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, env=ENV, **kw)  # type: ignore[call-overload,no-any-return]


def result(i: int) -> dict[str, object]:
    status = ("keep", "discard", "discard", "guard_fail", "crash")[i % 5]
    score = round(0.5 + (i % 400) / 1000, 6)
    return {"kind": "attempt", "iteration": i, "sprint": (i - 1) // 3 + 1, "arm": "b", "split": "dev", "n": 240, "trials": 3,
            "score": None if status == "crash" else score, "sd": 0.0041, "delta": 0.0125, "ci": [0.001, 0.024],
            "best_score": score - 0.01, "threshold": 0.0072, "status": status,
            "reason": f"{status}: gain +0.0125 vs the paired SE 0.0072", "outcome": "neutral",
            "hypothesis": f"attempt {i}: name the payment processor in rule {i % 37}", "mode": "primary",
            "gains": None if status == "crash" else {"accuracy": {"field": "score", "direction": "higher", "gain": 0.0125, "se": 0.0072,
                                                                  "threshold": 0.0124, "noise_floor": 0.0062}},
            "weights": None, "confirm": None, "cost_per_1k": 0.1, "latency_ms": 10.0,
            "spent_usd": 0.072, "frame": "sha256:" + "ab" * 32, "rows": f".gitera/{TAG}/runs/attempt-{i:05d}.jsonl",
            "noise_floor": 0.0062}


def build_repo(root: Path, commits: int) -> None:
    sh(["git", "init", "-q", "-b", "main"], root)
    chunks: list[bytes] = []

    def commit(i: int, message: str, files: dict[str, str]) -> None:
        msg = message.encode()
        chunks.append(f"commit refs/heads/autoexp/{TAG}\ncommitter Bench <b@e.invalid> {1700000000 + i} +0000\n".encode())
        chunks.append(b"data %d\n%s\n" % (len(msg), msg))
        for path, text in files.items():
            data = text.encode()
            chunks.append(f"M 100644 inline {path}\n".encode() + b"data %d\n%s\n" % (len(data), data))

    commit(0, "project\n", {"policy_b.txt": "accuracy: 0.5\n", "harness.py": "print('x')\n", f".gitera/{TAG}/frame.yaml": FRAME})
    for i in range(1, commits + 1):
        r = result(i)
        subject = f"gitera iterate: {TAG} #{i} {r['status']}: {r['hypothesis']}"[:100]
        message = (f"{subject}\n\nHypothesis: {r['hypothesis']}\nDecision: {r['reason']}\n\n"
                   f"Gitera-Tag: {TAG}\nGitera-Result: {json.dumps(r, sort_keys=True)}\n")
        commit(i, message, {"policy_b.txt": f"accuracy: {0.5 + (i % 400) / 1000:.3f}\n"})
    sh(["git", "fast-import", "--quiet"], root, input=b"".join(chunks))
    sh(["git", "checkout", "-q", f"autoexp/{TAG}"], root)


def timed(args: list[str], cwd: Path) -> tuple[float, bytes]:
    start = time.perf_counter()
    out = sh(args, cwd).stdout
    return time.perf_counter() - start, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitera-bench-log-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        build_repo(root, args.commits)
        built = time.perf_counter() - start
        cache = root / ".git" / "gitera" / "history"
        gitera = [sys.executable, "-m", "gitera", "log", "--tag", TAG, "--format", "jsonl"]
        plain = ["git", "log", "--format=%(trailers:key=Gitera-Result,valueonly)", f"autoexp/{TAG}"]
        # the table and md views (issue 14) add one `git log --numstat` of the target files and the frame
        views = {fmt: [*gitera[:-1], fmt] for fmt in ("table", "md")}
        cold, warm, bare = [], [], []
        viewed: dict[str, list[float]] = {fmt: [] for fmt in views}
        lines = 0
        for _ in range(args.repeat):
            shutil.rmtree(cache, ignore_errors=True)
            t, out = timed(gitera, root)
            cold.append(t)
            lines = len(out.splitlines()) - 1
            warm.append(timed(gitera, root)[0])
            bare.append(timed(plain, root)[0])
            for fmt, cmd in views.items():
                viewed[fmt].append(timed(cmd, root)[0])
    assert lines == args.commits, f"gitera log listed {lines} attempts, expected {args.commits}"
    c, w, b = statistics.median(cold), statistics.median(warm), statistics.median(bare)
    print(f"{args.commits:,} attempt commits (built with git fast-import in {built:.2f} s); median of {args.repeat} runs\n")
    print("| command | wall time | vs `git log` |")
    print("|---|---:|---:|")
    print(f"| `git log --format='%(trailers:key=Gitera-Result,valueonly)'` | {b * 1000:.0f} ms | 1.0× |")
    print(f"| `gitera log --format jsonl` (cold: no history cache) | {c * 1000:.0f} ms | {c / b:.1f}× |")
    print(f"| `gitera log --format jsonl` (warm: cached) | {w * 1000:.0f} ms | {w / b:.1f}× |")
    for fmt, times in viewed.items():
        v = statistics.median(times)
        print(f"| `gitera log --format {fmt}` (warm: cached; params and target changes) | {v * 1000:.0f} ms | {v / b:.1f}× |")
    print(f"\nTarget < 500 ms: cold {'met' if c < 0.5 else 'NOT met'}, warm {'met' if w < 0.5 else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
