"""A test judge: scores each output 1 if it says label-1. `--contrarian` disagrees on every row.

It also appends what it was shown (GITERA_ARM and the candidate labels) to judge_seen.jsonl,
so a test can check the judge was blind to arm names.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    contrarian = "--contrarian" in sys.argv
    rows = [json.loads(x) for x in Path(os.environ["GITERA_ROWS"]).read_text().splitlines() if x.strip()]
    seen = Path(os.environ.get("JUDGE_SEEN_FILE", "judge_seen.jsonl"))
    with seen.open("a") as fh:
        fh.write(json.dumps({"arm_env": os.environ.get("GITERA_ARM"), "candidates": sorted({r.get("candidate") for r in rows}),
                             "keys": sorted(rows[0]) if rows else []}) + "\n")
    with open(os.environ["GITERA_OUT"], "w") as out:
        for row in rows:
            score = 1 if row.get("output") == "label-1" else 0
            if contrarian:
                score = 1 - score
            out.write(json.dumps({"id": row["id"], "score": score, "cost_usd": 0.00001, "latency_ms": 1.0}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
