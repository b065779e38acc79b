"""Scores row["text"] containing row["expected"]; reports its context in `output`."""

import json
import os
import time

from common import context, count_call, rows

todo = rows()
count_call(len(todo))
delay = float(os.environ.get("HARNESS_DELAY_S", "0"))
with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
    for row in todo:
        time.sleep(delay)
        hit = row["expected"] in row["text"]
        out.write(json.dumps({
            "id": row["id"], "score": hit, "cost_usd": 0.01, "latency_ms": 5.0, "tokens": {"in": 10, "out": 2},
            "output": json.dumps(context()), "finding": None if hit else "miss",
        }) + "\n")
        out.flush()
