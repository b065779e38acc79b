"""A deterministic test harness (gitera command mode) driven by the arm's policy file.

The arm's params name a policy file; each line of it is `key: value`:
    accuracy: 0.6        rows whose stable hash falls below 0.6 score 1 (monotone: a higher
                         accuracy is a superset of correct rows, so paired gains are exact)
    group.<g>: 0.3       override the accuracy for rows of group <g>
    split.<s>: 0.8       override the accuracy when scoring split <s> (dev, gate, test): a gain
                         that exists only on the climbing rows, for the gate to catch
    noise: 0.02          per-trial flips with this probability (seeded by row and trial)
    latency: 50          latency_ms reported per row
    cost: 0.001          cost_usd per row
    pad: 3000            append this many characters to each row's `output` (a long answer)
    crash                exit 1 without writing anything
    hang                 sleep 60 s
$SYN_OUTPUT_SUFFIX, when set, is appended to every output (a changed answer, same score).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path


def u(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:12], 16) / 16**12


def main() -> int:
    params = json.loads(os.environ.get("GITERA_ARM_PARAMS") or "{}")
    policy: dict[str, str] = {}
    for line in Path(params.get("policy", "policy.txt")).read_text().splitlines():
        key, _, value = line.partition(":")
        policy[key.strip()] = value.strip()
    if "crash" in policy:
        print("policy says crash", file=sys.stderr)
        return 1
    if "hang" in policy:
        time.sleep(60)
    trial = int(os.environ["GITERA_TRIAL"])
    split = os.environ.get("GITERA_SPLIT", "")
    rows = [json.loads(x) for x in Path(os.environ["GITERA_ROWS"]).read_text().splitlines() if x.strip()]
    with open(os.environ["GITERA_OUT"], "w") as out:
        for row in rows:
            acc = float(policy.get(f"group.{row.get('group')}", policy.get(f"split.{split}", policy.get("accuracy", "0.5"))))
            score = 1 if u("row", row["id"]) < acc else 0
            if u("noise", row["id"], trial) < float(policy.get("noise", "0")):
                score = 1 - score
            out.write(json.dumps({"id": row["id"], "score": score, "latency_ms": float(policy.get("latency", "10")),
                                  "cost_usd": float(policy.get("cost", "0.0001")), "output": f"label-{score}" + "." * int(policy.get("pad", "0")) + os.environ.get("SYN_OUTPUT_SUFFIX", ""),
                                  "finding": None if score else "wrong"}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
