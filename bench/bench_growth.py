"""How gitera's cost grows: a verdict at 10k / 100k / 1M rows and `gitera log` at 1k / 10k / 100k attempts.

    python bench/bench_growth.py [--quick] [--part verdict|log|all]

Verdict: the verdict's statistics (`gitera.core.analysis.analyze`: per-row reduction, noise floor,
paired bootstrap CIs with 2,000 resamples, McNemar or paired t, Holm, 20-slice non-inferiority,
the decision) over N rows x 4 arms x 3 trials, binary and continuous scores, each size in its own
process for its peak RSS. Reference, same process and data: the arms' means and a paired t-test per
arm (`scipy.stats.ttest_rel`), the least any comparison of the arms computes.

Log: `gitera log --format jsonl` over a branch of N attempt commits (bench_log.py's repository,
written with git fast-import), cold (no history cache) and warm, next to the bare
`git log --format='%(trailers:key=Gitera-Result,valueonly)'`; medians of --repeat runs.
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

HERE = Path(__file__).resolve().parent
VERDICT_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
import numpy as np
from scipy import stats as sps
from bench_stats import make_data
from gitera.core import analysis, rules
rows, kind = int(sys.argv[1]), sys.argv[2]
base, arms, slices = make_data(kind, rows, 3, 20)
thr = rules.Threshold(effect=0.02, basis="point", slice_loss_floor=0.02, alpha=0.05)
t = time.perf_counter()
b = base.mean(axis=1)
ref = [(float(a.mean()), float(sps.ttest_rel(a.mean(axis=1), b).pvalue)) for a in arms.values()]
t_ref = time.perf_counter() - t
t = time.perf_counter()
verdict = analysis.analyze(base, arms, slices, threshold=thr, seed=1, n_resamples=2000)
t_verdict = time.perf_counter() - t
print(json.dumps({{"ref": t_ref, "verdict": t_verdict, "decision": verdict.decision,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def growth(label: str, sizes: list[int], costs: list[float]) -> str:
    """How cost grows between the two largest sizes (the smallest is dominated by fixed costs)."""
    (n0, c0), (n1, c1) = (sizes[-2], costs[-2]), (sizes[-1], costs[-1])
    ratio = c1 / c0
    shape = ("better than linear" if ratio < 0.9 * n1 / n0 else "linear" if ratio <= 1.25 * n1 / n0 else "worse than linear")
    return f"{label}: {n1 / n0:.0f}× the size ({n0:,} → {n1:,}) costs {ratio:.1f}× ({shape})."


def verdict_part(sizes: list[int]) -> list[str]:
    code = VERDICT_CHILD.format(root=str(HERE.parent), here=str(HERE))
    out = ["**A verdict's statistics** (N rows × 4 arms × 20 slices × 3 trials, 2,000 bootstrap resamples; one process per size)", "",
           "| rows | scores | reference: means + paired t (s) | verdict statistics (s) | × reference | per 1k rows (ms) | peak RSS (MiB) |",
           "|---:|---|---:|---:|---:|---:|---:|"]
    notes = []
    for kind in ("binary", "continuous"):
        times = []
        for n in sizes:
            proc = subprocess.run([sys.executable, "-c", code, str(n), kind], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-2000:])
            r = json.loads(proc.stdout)
            times.append(r["verdict"])
            out.append(f"| {n:,} | {kind} | {r['ref']:.3f} | {r['verdict']:.2f} | {r['verdict'] / r['ref']:.0f} | "
                       f"{1000 * r['verdict'] / n * 1000:.3f} | {r['rss']:.0f} |")
            print(out[-1], file=sys.stderr, flush=True)
        notes.append(growth(f"{kind} verdict", sizes, times))
    return [*out, "", *notes]


def log_part(sizes: list[int], repeat: int) -> list[str]:
    from bench_log import TAG, build_repo, timed

    out = ["**`gitera log --format jsonl`** (N attempt commits; median of {} runs)".format(repeat), "",
           "| attempts | `git log` of the trailers (ms) | gitera cold (ms) | × git log | gitera warm (ms) | × git log | cold per 1k attempts (ms) |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    colds = []
    for n in sizes:
        root = Path(tempfile.mkdtemp(prefix="gitera-bench-growth-"))
        try:
            build_repo(root, n)
            cache = root / ".git" / "gitera" / "history"
            gitera = [sys.executable, "-m", "gitera", "log", "--tag", TAG, "--format", "jsonl"]
            plain = ["git", "log", "--format=%(trailers:key=Gitera-Result,valueonly)", f"autoexp/{TAG}"]
            cold, warm, bare = [], [], []
            for _ in range(repeat):
                shutil.rmtree(cache, ignore_errors=True)
                t, listed = timed(gitera, root)
                assert len(listed.splitlines()) - 1 == n, "gitera log listed the wrong number of attempts"
                cold.append(t)
                warm.append(timed(gitera, root)[0])
                bare.append(timed(plain, root)[0])
        finally:
            shutil.rmtree(root, ignore_errors=True)
        c, w, b = statistics.median(cold), statistics.median(warm), statistics.median(bare)
        colds.append(c)
        out.append(f"| {n:,} | {b * 1000:.0f} | {c * 1000:.0f} | {c / b:.1f} | {w * 1000:.0f} | {w / b:.1f} | {c * 1000 / n * 1000:.1f} |")
        print(out[-1], file=sys.stderr, flush=True)
    return [*out, "", growth("gitera log (cold)", sizes, colds)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("verdict", "log", "all"), default="all")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="10k and 100k rows; 1k and 10k attempts; one run each")
    args = ap.parse_args()
    rows = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    attempts = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    repeat = 1 if args.quick else args.repeat
    lines = [f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d')}", ""]
    if args.part in ("verdict", "all"):
        lines += [*verdict_part(rows), ""]
    if args.part in ("log", "all"):
        lines += log_part(attempts, repeat)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
