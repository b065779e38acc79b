"""Fails whenever a poisoned row is among its rows: exits 3 for a row with "crash": true, hangs
(with a child process) for one with "hang": true; otherwise scores every row 1.

Each invocation appends the ids it was given to $HARNESS_LOG (one JSON list per line), so a
test can count how often each row was tried. With POISON_IN_ORDER=1 it scores its rows in order
and fails only on reaching a poisoned row (the rows before it are written and flushed).
"""

import json
import os
import subprocess
import sys
import time

from common import rows

todo = rows()
log = os.environ.get("HARNESS_LOG")
if log:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps([r["id"] for r in todo]) + "\n")
if os.environ.get("POISON_IN_ORDER") == "1":
    with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
        for row in todo:
            if row.get("crash"):
                print(f"poison: crashing on row {row['id']}", file=sys.stderr)
                sys.exit(3)
            while row.get("hang"):
                time.sleep(1)
            out.write(json.dumps({"id": row["id"], "score": 1, "cost_usd": 0.001, "latency_ms": 1}) + "\n")
            out.flush()
    sys.exit(0)
if any(r.get("crash") for r in todo):
    print(f"poison: crashing with {len(todo)} rows", file=sys.stderr)
    sys.exit(3)
if any(r.get("hang") for r in todo):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    while True:
        time.sleep(1)
with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
    for row in todo:
        out.write(json.dumps({"id": row["id"], "score": 1, "cost_usd": 0.001, "latency_ms": 1}) + "\n")
