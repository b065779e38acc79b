"""A scripted proposer for `gitera iterate --loop --propose`: step n of a plan, the same across sessions.

    python plan_propose.py PLAN.json

PLAN.json: {"steps": ["<target content>" | "FAIL" | "HANG", ...], "cycle": true|false,
"delay_s": seconds each proposal takes (default 0)}. The step
number is kept in PLAN.json.n (so a resumed session goes on with the next step). "FAIL" exits 1;
"HANG" touches PLAN.json.hung and sleeps (a test kills the session there); the next time the
same step comes round it is skipped. Past the plan's end: FAIL, unless the plan cycles.
"""

import json
import os
import sys
import time
from pathlib import Path

plan_path = Path(sys.argv[1])
plan = json.loads(plan_path.read_text())
counter = plan_path.with_name(plan_path.name + ".n")
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
steps = plan["steps"]
if n >= len(steps) and not plan.get("cycle"):
    print("the plan is over", file=sys.stderr)
    sys.exit(1)
step = steps[n % len(steps)]
hung = plan_path.with_name(plan_path.name + ".hung")
if step == "HANG" and not hung.exists():
    hung.write_text(str(os.getpid()))
    time.sleep(600)
    sys.exit(1)
if step in ("FAIL", "HANG"):
    print(f"step {n + 1} fails", file=sys.stderr)
    sys.exit(1)
time.sleep(float(plan.get("delay_s", 0)))
ctx = json.loads(Path(os.environ["GITERA_CONTEXT"]).read_text())
Path(ctx["target_files"][0]).write_text(step)
Path(os.environ["GITERA_HYPOTHESIS_FILE"]).write_text(f"plan step {n + 1}: {step.strip().splitlines()[0]}\n")
