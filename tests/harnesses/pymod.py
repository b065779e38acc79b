"""Python-mode harness: behaviour chosen by row fields."""

import os
import time

VALUE = 1.0  # the "other arm" copy of this module sets a different value
_attempts: dict = {}


class TransientError(Exception):
    pass


class RateLimitError(Exception):
    pass


def score(row, arm, trial, params):
    key = (row["id"], trial)
    _attempts[key] = _attempts.get(key, 0) + 1
    counter = os.environ.get("HARNESS_COUNTER")
    if counter:
        with open(counter, "a") as fh:
            fh.write("1\n")
    if row.get("sleep"):
        time.sleep(row["sleep"])
    if row.get("transient") and _attempts[key] <= row["transient"]:
        raise (RateLimitError if row["id"] % 2 else TransientError)("slow down")
    if row.get("raise"):
        raise ValueError(row["raise"])
    if row.get("exit"):
        os._exit(7)
    if row.get("plain"):
        return VALUE
    print("noise on stdout must not break the protocol")
    return {"score": VALUE, "cost_usd": 0.001, "output": f"{arm}/{trial}/{params.get('p')}/{os.getcwd()}"}


def costly(row, arm, trial, params):
    """Charges $HARNESS_COST_USD like a paid API: billed to $HARNESS_LEDGER when the call starts."""
    cost = float(os.environ["HARNESS_COST_USD"])
    with open(os.environ["HARNESS_LEDGER"], "a") as fh:
        fh.write(f"{cost}\n")
    time.sleep(float(os.environ.get("HARNESS_DELAY_S", "0")))
    return {"score": 1, "cost_usd": cost, "latency_ms": 1.0}
