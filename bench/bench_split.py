"""`gitera split` at 10k / 100k / 1M rows (time and peak RSS) next to reading and hashing the same file.

    python bench/bench_split.py [--sizes 10000,100000,1000000] [--format csv|parquet]

Each size: a data file of realistic rows (an id, a 60-120 character customer message, a label
of 12, a tier of 3), an experiment initialised and locked in a fresh repository, then one
`gitera split --accept-underpowered` in its own process; the reference is one process that reads
the same file in 1 MiB chunks and SHA-256s it (what any tool must at least do). Peak RSS is the
process's maximum resident set (getrusage of the child). The table says how each grows.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from installed import as_installed  # this script's folder is on sys.path

as_installed()

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GIT_CONFIG_NOSYSTEM": "1",
       "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid", "GIT_COMMITTER_NAME": "bench",
       "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
FRAME = """\
question: Does v2 beat v1?
hypothesis: v2 names the processor.
baseline: {{arm: v1, ref: "harness.py:1"}}
arms:
  v1: {{change: current}}
  v2: {{change: names the processor}}
data:
  source: {source}
  id: row_id
  label: label
  slices: [tier]
  stratify: [tier, label]
  seed: 7
metric: {{primary: {{name: accuracy, direction: higher}}, trials: 3}}
threshold: {{effect: 0.02, slice_loss_floor: 0.02}}
eval: {{command: python harness.py}}
locked: [harness.py]
"""
WORDS = ("card", "payment", "refund", "transfer", "pending", "declined", "fee", "exchange", "rate", "top", "up", "account",
         "verify", "identity", "cash", "withdrawal", "atm", "contactless", "virtual", "lost", "stolen", "arrived")


def write_data(path: Path, rows: int, fmt: str) -> None:
    def message(i: int) -> str:
        n = 10 + i % 9
        return f"ticket {i}: " + " ".join(WORDS[(i * 7 + k * 13) % len(WORDS)] for k in range(n))

    if fmt == "csv":
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["row_id", "text", "label", "tier"])
            for i in range(rows):
                w.writerow([f"t{i:07d}", message(i), f"intent_{i * 31 % 12}", ("free", "plus", "enterprise")[i % 3]])
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, rows, 100_000):
        idx = range(start, min(rows, start + 100_000))
        table = pa.table({"row_id": [f"t{i:07d}" for i in idx], "text": [message(i) for i in idx],
                          "label": [f"intent_{i * 31 % 12}" for i in idx], "tier": [("free", "plus", "enterprise")[i % 3] for i in idx]})
        writer = writer or pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table, row_group_size=50_000)
    assert writer is not None
    writer.close()


def _peak_of(args: list[str], cwd: Path) -> float:
    code = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def measure(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time in this process's child, peak RSS through a fresh wrapper (getrusage's maximum is per parent)."""
    start = time.perf_counter()
    peak = _peak_of(args, cwd)
    return time.perf_counter() - start, peak / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--format", choices=("csv", "parquet"), default="csv")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    gitera = str(BIN / "gitera")
    hasher = [sys.executable, "-c", "import hashlib, sys\nh = hashlib.sha256()\nwith open(sys.argv[1], 'rb') as f:\n"
              "    for b in iter(lambda: f.read(1 << 20), b''):\n        h.update(b)\nprint(h.hexdigest())\n"]
    lines = [f"`gitera split` of a {args.format.upper()} file; {os.cpu_count()} CPUs; wall time and peak RSS of one process each", "",
             "| rows | file (MiB) | read + SHA-256 (s) | split (s) | × reference | split per 1k rows (ms) | reference RSS (MiB) | split RSS (MiB) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    results = []
    for n in sizes:
        root = Path(tempfile.mkdtemp(prefix="bench-split-"))
        try:
            subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True, env=ENV)
            (root / "harness.py").write_text("print('SCORE: 1')\n")
            (root / "data").mkdir()
            data = root / "data" / f"rows.{args.format}"
            write_data(data, n, args.format)
            (root / ".gitignore").write_text("data/\n")
            subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=ENV)
            subprocess.run(["git", "commit", "-qm", "project"], cwd=root, check=True, env=ENV)
            subprocess.run([gitera, "init", "big"], cwd=root, check=True, env=ENV, capture_output=True)
            (root / ".gitera/big/frame.yaml").write_text(FRAME.format(source=f"data/{data.name}"))
            subprocess.run([gitera, "lock"], cwd=root, check=True, env=ENV, capture_output=True)
            size = data.stat().st_size / 2**20  # before the split, which moves the source out of the work tree
            ref_s, ref_rss = measure([*hasher, str(data)], root)
            split_s, split_rss = measure([gitera, "split", "--accept-underpowered"], root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        results.append((n, split_s, split_rss))
        lines.append(f"| {n:,} | {size:.1f} | {ref_s:.2f} | {split_s:.2f} | {split_s / ref_s:.0f} | {1000 * split_s / n * 1000:.2f} | "
                     f"{ref_rss:.0f} | {split_rss:.0f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    if len(results) > 1:  # between the two largest sizes: the smallest is dominated by start-up
        (n0, t0, m0), (n1, t1, m1) = results[-2], results[-1]
        shape = "better than linear" if t1 / t0 < 0.9 * n1 / n0 else "linear" if t1 / t0 <= 1.25 * n1 / n0 else "worse than linear"
        lines += ["", f"Growth from {n0:,} to {n1:,} rows ({n1 / n0:.0f}×): time {t1 / t0:.1f}× ({shape}), peak RSS {m1 / m0:.1f}× "
                      f"({(m1 - m0) / (n1 - n0) * 2**20:.0f} bytes per extra row)."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
