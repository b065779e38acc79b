"""CLI start-up and the pre-commit hooks on a repository with 10,000 commits.

Each command is run repeatedly as a fresh process; the median wall time is
reported next to `git status` measured in the same run on the same repository.

    python bench/bench_startup.py [--commits 10000] [--repeat 30]
"""

from __future__ import annotations

import argparse
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

FRAME = """\
question: Does v2 beat v1?
hypothesis: The new rule helps.
baseline: {arm: v1, ref: "src/app.py:1"}
arms:
  v1: {change: current}
  v2: {change: one new rule}
metric: {primary: {name: accuracy, direction: higher}, trials: 3}
threshold: {effect: 0.05, slice_loss_floor: 0.02}
eval: {command: python eval/run.py}
locked: [eval/run.py]
data: {source: data/rows.csv, id: row_id, stratify: [group], seed: 1}
"""

# the staged file the leak hook reads: ~60 KB of prose and code, as an ordinary commit stages
NOTES = "".join(
    f"## note {i}\n\nThe customer in ticket {i} asked about fees; see `rules.py` line {i % 90}.\n"
    f"def rule_{i}(text):\n    return 'fee' in text and len(text) > {i % 40}  # token {i * 7919:x}\n\n"
    for i in range(600)
)


def write_rows(path: Path, n: int = 2000) -> None:
    """n rows of free text (the sealed ones are what the leak hook looks for)."""
    import csv

    path.parent.mkdir(exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row_id", "text", "group"])
        for i in range(n):
            w.writerow([f"r{i:05d}", f"customer message {i} about topic {i % 17} with detail {i * 7919 % 10007}", f"g{i % 3}"])


def sh(args: list[str], cwd: Path, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, **kw)  # type: ignore[call-overload,no-any-return]


def build_repo(root: Path, commits: int) -> None:
    sh(["git", "init", "-q", "-b", "main"], root)
    # fast-import writes 10,000 commits in well under a second
    lines = []
    for i in range(commits):
        body = f"line {i}\n".encode()
        lines.append(b"commit refs/heads/main\n")
        lines.append(f"committer Bench <b@e.invalid> {1700000000 + i} +0000\n".encode())
        msg = f"commit {i}\n".encode()
        lines.append(b"data %d\n%s" % (len(msg), msg))
        lines.append(f"M 100644 inline src/file{i % 200}.txt\n".encode())
        lines.append(b"data %d\n%s\n" % (len(body), body))
    sh(["git", "fast-import", "--quiet"], root, input=b"".join(lines))
    sh(["git", "reset", "-q", "--hard", "main"], root)
    (root / "eval").mkdir()
    (root / "eval/run.py").write_text("print('score')\n")
    (root / "src/app.py").write_text("x = 1\n")
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "project"], root)
    sh(["gitera", "init", "bench"], root)
    (root / ".gitera/bench/frame.yaml").write_text(FRAME)
    (root / ".gitignore").write_text("data/\n")
    write_rows(root / "data/rows.csv")
    sh(["git", "add", ".gitignore"], root)
    sh(["git", "commit", "-q", "-m", "ignore data"], root)
    sh(["gitera", "lock"], root)
    sh(["gitera", "split", "--accept-underpowered"], root)
    (root / "src/app.py").write_text("x = 2\n")
    (root / "notes.md").write_text(NOTES)
    sh(["git", "add", "src/app.py", "notes.md"], root)  # staged changes for the hooks to inspect


def median_time(args: list[str], cwd: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    gitera = shutil.which("gitera") or str(Path(sys.executable).parent / "gitera")
    os.environ["PATH"] = str(Path(gitera).parent) + os.pathsep + os.environ["PATH"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env_note = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "b@e.invalid", "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "b@e.invalid"}
        os.environ.update(env_note)
        build_repo(root, args.commits)
        git_status = median_time(["git", "status"], root, args.repeat)
        rows = [
            ("git status (reference)", git_status),
            ("gitera --help", median_time([gitera, "--help"], root, args.repeat)),
            ("gitera hook locked (pre-commit)", median_time([gitera, "hook", "locked"], root, args.repeat)),
            ("gitera hook test-leak (pre-commit, 60 KB staged)", median_time([gitera, "hook", "test-leak"], root, args.repeat)),
            ("gitera status", median_time([gitera, "status"], root, args.repeat)),
        ]
    print(f"Start-up, median of {args.repeat} runs, repository with {args.commits:,} commits\n")
    print("| command | median (s) | × git status | target |")
    print("|---|---:|---:|---|")
    for name, t in rows:
        target = "< 0.2 s" if name.startswith("gitera") else ""
        print(f"| {name} | {t:.3f} | {t / git_status:.1f} | {target} |")


if __name__ == "__main__":
    main()
