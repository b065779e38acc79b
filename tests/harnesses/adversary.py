"""A command-mode harness for CLI tests: scores like a real one, then misbehaves on cue.

    ADVERSARY        "" (deterministic), flaky, hang, crash, lie, pilot-null, pilot-placeholder
    ADVERSARY_ARM    the arm that misbehaves (default b); the others stay deterministic
    ADVERSARY_IDS    comma-separated row ids the misbehaviour is about
    ADVERSARY_TRIAL  if set, misbehave only in this trial
    ADVERSARY_STATE  a folder for the flaky attempt counters (outside the checkout)
    ADVERSARY_LOG    if set, each invocation appends {"arm", "trial", "ids"} to it

flaky: the targeted rows fail transiently on their first two attempts. hang: any invocation
holding a targeted row hangs (with a child process). crash: any invocation holding one exits 3.
lie: of the targeted rows the 1st is omitted, the 2nd written twice, the 3rd gets a non-numeric
score; every invocation adds a garbage line and a line for an unknown id "ghost".
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def score(row_id: str) -> int:
    return int(hashlib.sha256(str(row_id).encode()).hexdigest(), 16) % 2


def line(row_id: str, **extra: object) -> str:
    result = {"id": row_id, "score": score(row_id), "cost_usd": 0.0001, "latency_ms": 10.0, "tokens": 12, "output": f"label-{score(row_id)}"}
    return json.dumps({**result, **extra}) + "\n"


def main() -> int:
    rows = [json.loads(x) for x in Path(os.environ["GITERA_ROWS"]).read_text().splitlines() if x.strip()]
    ids = [str(r["id"]) for r in rows]
    trial = os.environ["GITERA_TRIAL"]
    if os.environ.get("ADVERSARY_LOG"):
        with open(os.environ["ADVERSARY_LOG"], "a") as fh:
            fh.write(json.dumps({"arm": os.environ["GITERA_ARM"], "trial": int(trial), "ids": ids}) + "\n")
    mode = os.environ.get("ADVERSARY", "")
    wanted = os.environ.get("ADVERSARY_TRIAL")
    if os.environ["GITERA_ARM"] != os.environ.get("ADVERSARY_ARM", "b") or (wanted is not None and wanted != trial):
        mode = ""
    targets = [t for t in os.environ.get("ADVERSARY_IDS", "").split(",") if t]
    hit = [i for i in ids if i in targets]
    if mode == "crash" and hit:
        print(f"adversary: crash on row {hit[0]} with {len(ids)} rows", file=sys.stderr)
        return 3
    if mode == "hang" and hit:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        while True:
            time.sleep(1)
    with open(os.environ["GITERA_OUT"], "w") as out:
        if mode == "lie":
            out.write("this is not json\n")
        for i in ids:
            if mode == "flaky" and i in targets:
                mark = Path(os.environ["ADVERSARY_STATE"]) / f"{i}-{trial}"
                n = int(mark.read_text()) + 1 if mark.exists() else 1
                mark.write_text(str(n))
                if n <= 2:
                    out.write(json.dumps({"id": i, "transient": True, "error": "429 rate limited"}) + "\n")
                    continue
            if mode == "lie" and i in targets[:3]:
                kind = targets.index(i)
                if kind == 1:
                    out.write(line(i) + line(i))
                elif kind == 2:
                    out.write(line(i, score="high"))
                continue
            if mode == "pilot-null":
                out.write(line(i, output=None))
            elif mode == "pilot-placeholder":
                out.write(line(i, answer="TODO", meta={"label": "N/A"}))
            else:
                out.write(line(i))
        if mode == "lie":
            out.write(line("ghost"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
