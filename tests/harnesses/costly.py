"""Charges $HARNESS_COST_USD per row like a paid API: the charge is appended to $HARNESS_LEDGER
when the row starts (a call is billed once made, even if the process is killed before it
answers), then the row takes $HARNESS_DELAY_S and its line is written and flushed."""

import json
import os
import time

from common import count_call, rows

todo = rows()
count_call(len(todo))
cost = float(os.environ["HARNESS_COST_USD"])
delay = float(os.environ.get("HARNESS_DELAY_S", "0"))
with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out, open(os.environ["HARNESS_LEDGER"], "a", encoding="utf-8") as ledger:
    for row in todo:
        ledger.write(f"{cost}\n")
        ledger.flush()
        time.sleep(delay)
        out.write(json.dumps({"id": row["id"], "score": 1, "cost_usd": cost, "latency_ms": delay * 1000}) + "\n")
        out.flush()
