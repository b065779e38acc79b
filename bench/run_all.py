"""Run every benchmark in bench/ and print their tables: `python bench/run_all.py [--quick]`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

QUICK = {
    "bench_startup.py": ["--repeat", "10"],
    "bench_seal.py": ["--size-mib", "128"],
    "bench_eval.py": ["--quick"],
    "bench_budget.py": ["--quick"],
    "bench_iterate.py": ["--repeat", "3"],
    "bench_runlevel.py": ["--repeat", "3"],
    "bench_log.py": ["--commits", "2000", "--repeat", "3"],
    "bench_view.py": ["--rows", "5000", "--repeat", "2"],
}


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    here = Path(__file__).parent
    failed = 0
    for script in sorted(here.glob("bench_*.py")):
        print(f"\n## {script.stem}\n", flush=True)
        args = QUICK.get(script.name, []) if quick else []
        failed |= subprocess.run([sys.executable, str(script), *args]).returncode != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
