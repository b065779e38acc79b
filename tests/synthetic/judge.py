"""A test judge: scores each output 1 if it starts with label-1. `--contrarian` disagrees on every
row. Each row costs $JUDGE_COST (default 0.00001) and takes $JUDGE_SLEEP seconds (default 0); each
line is flushed as soon as it is written, so its cost streams to gitera.

It also appends what it was shown (its cwd, environment, rows file, candidate labels and the
byte length of every output) to $JUDGE_SEEN_FILE (judge_seen.jsonl), so a test can check the
judge was blind to arm names and got the full output.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    contrarian = "--contrarian" in sys.argv
    rows = [json.loads(x) for x in Path(os.environ["GITERA_ROWS"]).read_text().splitlines() if x.strip()]
    seen = Path(os.environ.get("JUDGE_SEEN_FILE", "judge_seen.jsonl"))
    with seen.open("a") as fh:
        fh.write(json.dumps({"arm_env": os.environ.get("GITERA_ARM"), "candidates": sorted({r.get("candidate") for r in rows}),
                             "keys": sorted(rows[0]) if rows else [], "cwd": os.getcwd(), "env": dict(os.environ),
                             "ids": [r["id"] for r in rows], "lengths": [len(str(r.get("output")).encode()) for r in rows]}) + "\n")
    with open(os.environ["GITERA_OUT"], "w") as out:
        for row in rows:
            score = 1 if str(row.get("output")).startswith("label-1") else 0
            if contrarian:
                score = 1 - score
            if os.environ.get("JUDGE_SLEEP"):
                time.sleep(float(os.environ["JUDGE_SLEEP"]))
            out.write(json.dumps({"id": row["id"], "score": score, "cost_usd": float(os.environ.get("JUDGE_COST", "0.00001")), "latency_ms": 1.0}) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
