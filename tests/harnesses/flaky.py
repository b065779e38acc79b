"""Even ids fail transiently on their first two attempts (state kept in the checkout)."""

import json
import os
from pathlib import Path

from common import count_call, rows

todo = rows()
count_call(len(todo))
trial = os.environ["GITERA_TRIAL"]
with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
    for row in todo:
        mark = Path(f"attempts-{row['id']}-{trial}")
        n = int(mark.read_text()) + 1 if mark.exists() else 1
        mark.write_text(str(n))
        if int(row["id"]) % 2 == 0 and n <= int(os.environ.get("FLAKY_FAILURES", "2")):
            out.write(json.dumps({"id": row["id"], "transient": True, "error": "429 rate limited"}) + "\n")
        else:
            out.write(json.dumps({"id": row["id"], "score": 1, "cost_usd": 0.0, "latency_ms": 1}) + "\n")
