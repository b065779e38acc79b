"""Writes rows in order and crashes (exit 3, a traceback-like stderr) at a row with "crash": true."""

import json
import os
import sys

from common import rows

with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
    for row in rows():
        if row.get("crash"):
            out.flush()
            for i in range(30):
                print(f"log line {i}", file=sys.stderr)
            print(f"KeyError: 'boom' on row {row['id']}", file=sys.stderr)
            sys.exit(3)
        out.write(json.dumps({"id": row["id"], "score": 1.0}) + "\n")
