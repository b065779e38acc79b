"""A deterministic test harness (gitera command mode) driven by the arm's policy file.

The arm's params name a policy file; each line of it is `key: value`:
    accuracy: 0.6        rows whose stable hash falls below 0.6 score 1 (monotone: a higher
                         accuracy is a superset of correct rows, so paired gains are exact)
    group.<g>: 0.3       override the accuracy for rows of group <g>
    <column>.<v>: 0.3    the same for rows whose column <column> is <v> (after group.<g>)
    split.<s>: 0.8       override the accuracy when scoring split <s> (dev, gate, test): a gain
                         that exists only on the climbing rows, for the gate to catch
    trial.<t>: 0.45      override the accuracy for trial index <t> (e.g. the fresh trials of a
                         confirmation run: a gain that was luck in the first trials)
    noise: 0.02          per-trial flips with this probability (seeded by row and trial)
    latency: 50          latency_ms reported per row
    cost: 0.001          cost_usd per row
    sleep: 0.005         seconds each row takes (its line is flushed as soon as it is written)
    pad: 3000            append this many characters to each row's `output` (a long answer)
    error.<g>: TEXT      rows of group <g> report {"error": "TEXT: could not answer '<row text>'"} (a
                         per-row crash whose error text quotes the row)
    crash                exit 1 without writing anything
    hang                 sleep 60 s

The environment variable SYN_FAIL_SPLIT=<split> makes it exit 1 when scoring that split (a
failure outside the target files, which a test can switch off again); SYN_HANG_SPLIT=<split>
makes it sleep 60 s there.

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
    if split and os.environ.get("SYN_HANG_SPLIT") == split:
        time.sleep(60)
    if split and os.environ.get("SYN_FAIL_SPLIT") == split:
        print(f"SYN_FAIL_SPLIT says fail on {split}", file=sys.stderr)
        return 1
    rows = [json.loads(x) for x in Path(os.environ["GITERA_ROWS"]).read_text().splitlines() if x.strip()]
    with open(os.environ["GITERA_OUT"], "w") as out:
        for row in rows:
            message = policy.get(f"error.{row.get('group')}")
            if message is not None:
                out.write(json.dumps({"id": row["id"], "error": f"{message}: could not answer {row.get('text')!r}"}) + "\n")
                continue
            other = next((v for k, v in policy.items() if "." in k and k.split(".")[0] not in ("group", "split", "trial", "error")
                          and str(row.get(k.split(".")[0])) == k.split(".", 1)[1]), None)
            keys = (f"group.{row.get('group')}", f"trial.{trial}", f"split.{split}", "accuracy")
            first = f"group.{row.get('group')}"
            acc = float(policy[first] if first in policy else other if other is not None else next((policy[k] for k in keys if k in policy), "0.5"))
            score = 1 if u("row", row["id"]) < acc else 0
            if u("noise", row["id"], trial) < float(policy.get("noise", "0")):
                score = 1 - score
            out.write(json.dumps({"id": row["id"], "score": score, "latency_ms": float(policy.get("latency", "10")),
                                  "cost_usd": float(policy.get("cost", "0.0001")), "output": f"label-{score}" + "." * int(policy.get("pad", "0")) + os.environ.get("SYN_OUTPUT_SUFFIX", ""),
                                  "finding": None if score else "wrong"}) + "\n")
            if "sleep" in policy:
                time.sleep(float(policy["sleep"]))
                out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
