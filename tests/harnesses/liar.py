"""Breaks the contract in every way: omits, duplicates, invents ids, garbage, bad scores."""

import json
import os

from common import rows

lines = []
for row in rows():
    rid = row["id"]
    if rid == "omit":
        continue
    if rid == "nonnum":
        lines.append(json.dumps({"id": rid, "score": "high"}))
    elif rid == "nan":
        lines.append('{"id": "nan", "score": NaN}')
    elif rid == "inf":
        lines.append('{"id": "inf", "score": Infinity}')
    elif rid == "bool":
        lines.append(json.dumps({"id": rid, "score": True}))
    elif rid == "noscore":
        lines.append(json.dumps({"id": rid, "output": "x"}))
    elif rid == "dup":
        lines.append(json.dumps({"id": rid, "score": 1}))
        lines.append(json.dumps({"id": rid, "score": 0}))
    else:
        lines.append(json.dumps({"id": rid, "score": 0.25}))
lines.insert(1, "this is not json")
lines.append(json.dumps({"id": "ghost", "score": 1}))
lines.append(json.dumps([1, 2, 3]))
with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
    out.write("\n".join(lines) + "\n")
