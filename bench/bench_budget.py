"""What a cost budget costs in wall-clock time, and how close it keeps the spend to the cap.

One arm, ROWS rows x 3 trials, an IO-bound harness that takes LATENCY per row and writes
(and flushes) one line per row, concurrency 32, as in bench_eval.py. Each scenario is timed
against the same run without a budget:

- a $0 harness under a budget: the pilot then gives no estimate, so the run starts with one
  invocation and admits the rest once its first row's cost arrives;
- a costly harness with an accurate pilot estimate and a loose cap (room for more than 1.5 x
  the run): nothing is held back;
- the same with a tight cap (the run costs 90 % of it): before the first cost arrives only what
  the cap could pay at 1.5 x the estimate starts;
- the same with real costs 3 x the estimate and a cap that pays for half the run: the run stops
  for the budget; the table shows the spend (what the harness billed, in-progress rows
  included) against the cap and the documented bound, cap + concurrency x one row's cost.

    python bench/bench_budget.py [--quick] [--rows 1000] [--latency-ms 50] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench_eval import workload_args  # this script's folder is on sys.path

from gitera.adapters.evalrun import Budget, EvalRun, EvalSpec, run_eval

HARNESS = """\
import json, os, time
delay, cost = float(os.environ["BENCH_LATENCY_S"]), float(os.environ["BENCH_COST_USD"])
with open(os.environ["GITERA_ROWS"]) as rows, open(os.environ["GITERA_OUT"], "w") as out, open(os.environ["BENCH_LEDGER"], "a") as bill:
    for line in rows:
        row = json.loads(line)
        bill.write(f"{cost}\\n"); bill.flush()
        time.sleep(delay)
        out.write(json.dumps({"id": row["id"], "score": 1, "cost_usd": cost, "latency_ms": delay * 1000}) + "\\n")
        out.flush()
"""

PYTHON_HARNESS = """\
import os, time

def score(row, arm, trial, params):
    cost = float(os.environ["BENCH_COST_USD"])
    with open(os.environ["BENCH_LEDGER"], "a") as bill:
        bill.write(f"{cost}\\n")
    time.sleep(float(os.environ["BENCH_LATENCY_S"]))
    return {"score": 1, "cost_usd": cost, "latency_ms": 1.0}
"""

TRIALS = (0, 1, 2)
COST = 0.001  # per row of the costly harness


def scenarios(calls: int) -> list[tuple[str, float, Budget | None]]:
    """(name, real cost per row, budget): the run costs calls x COST."""
    run_cost = calls * COST
    return [
        ("$0 harness, no budget", 0.0, None),
        ("$0 harness, $1 cap, no estimate", 0.0, Budget(1.0)),
        ("costly, no budget", COST, None),
        ("costly, loose cap (2 x the run), estimate exact", COST, Budget(2 * run_cost, est_cost_per_call=COST)),
        ("costly, tight cap (run = 90 % of it), estimate exact", COST, Budget(run_cost / 0.9, est_cost_per_call=COST)),
        ("costly, real = 3 x estimate, cap pays half the run", COST, Budget(run_cost / 2, est_cost_per_call=COST / 3)),
    ]


def score(spec: EvalSpec, checkout: Path, work: Path, rows: int, concurrency: int, budget: Budget | None) -> tuple[float, EvalRun]:
    start = time.perf_counter()
    run = run_eval(
        spec, checkout=checkout, tag="bench", arm="a", params={}, split="dev", rows=[{"id": i} for i in range(rows)],
        trials=TRIALS, concurrency=concurrency, timeout_s=600, budget=budget, workdir=work / str(time.monotonic_ns()),
    )
    return time.perf_counter() - start, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    workload_args(parser)
    args = parser.parse_args()
    rows = 200 if args.quick else args.rows
    calls = rows * len(TRIALS)
    table = [
        "| mode | scenario | wall (s) | vs no budget | scored | billed ($) | cap ($) | cap + concurrency x row ($) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkout = root / "checkout"
        checkout.mkdir()
        (checkout / "harness.py").write_text(HARNESS)
        (checkout / "benchbudget.py").write_text(PYTHON_HARNESS)
        os.environ["BENCH_LATENCY_S"] = str(args.latency_ms / 1000)
        specs = {"command": EvalSpec(command=f"{shlex.quote(sys.executable)} harness.py"), "python": EvalSpec(python="benchbudget:score")}
        for mode, spec in specs.items():
            unbudgeted = 0.0
            for i, (name, cost, budget) in enumerate(scenarios(calls)):
                ledger = root / f"ledger-{mode}-{i}"
                os.environ.update(BENCH_COST_USD=str(cost), BENCH_LEDGER=str(ledger))
                wall, run = score(spec, checkout, root / "work", rows, args.concurrency, budget)
                unbudgeted = wall if budget is None else unbudgeted
                billed = sum(float(x) for x in ledger.read_text().split())
                cap = f"{budget.max_cost_usd:.3f}" if budget else "-"
                bound = f"{budget.max_cost_usd + args.concurrency * cost:.3f}" if budget else "-"
                ratio = "-" if budget is None else f"{wall / unbudgeted:.2f} x"
                scored = run.status_counts()["ok"]
                table.append(f"| {mode} | {name} | {wall:.2f} | {ratio} | {scored}/{calls} | {billed:.3f} | {cap} | {bound} |")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
