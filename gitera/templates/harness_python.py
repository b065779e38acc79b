"""Starter eval harness for gitera's python mode (eval: {python: eval.harness:score}).

gitera imports this module (with the arm's checkout first on sys.path, in a worker
process of its own) and calls `score(row, arm, trial, params)` concurrently from a thread
pool, so keep it thread-safe. Return a float/bool (the score) or a dict:

    {"score": <number or bool>, "cost_usd": <float>, "latency_ms": <float>, "tokens": <int>,
     "output": "<what the system answered>", "finding": "<failure category or None>"}

latency_ms defaults to the measured call time. Raise `TransientError` (or let a client's
RateLimitError / Timeout error through) to have the call retried with backoff; any other
exception records the row as crashed. docs/eval-contract.md has the full contract.

This starter scores a trivial keyword rule so it runs as is: replace `predict` with a
call to your system (model, prompt, retriever) and keep the rest.
"""

from __future__ import annotations

import time
from typing import Any

TEXT_FIELD = "text"  # the input column the system reads
LABEL_FIELD = "expected"  # the column holding the correct answer
PRICE_PER_1K_TOKENS = 0.0  # what one call costs; set it from your provider's price list


class TransientError(Exception):
    """Raise for a failure worth retrying (rate limit, overloaded server)."""


def predict(text: str, params: dict[str, Any]) -> str:
    """The system under test. Params come from the arm in the frame (here: a keyword list)."""
    keywords = params.get("keywords", {"refund": "billing", "password": "account"})
    low = text.lower()
    for word, label in keywords.items():
        if word in low:
            return str(label)
    return str(params.get("default", "other"))


def score(row: dict[str, Any], arm: str, trial: int, params: dict[str, Any]) -> dict[str, Any]:
    # `trial` is 0-based: seed any sampling with it so trials differ but reruns repeat.
    start = time.perf_counter()
    answer = predict(str(row[TEXT_FIELD]), params)
    tokens = len(str(row[TEXT_FIELD])) // 4 + 1
    correct = answer.strip().lower() == str(row.get(LABEL_FIELD, "")).strip().lower()
    return {
        "score": correct,
        "cost_usd": tokens / 1000 * PRICE_PER_1K_TOKENS,
        "latency_ms": (time.perf_counter() - start) * 1000,
        "tokens": tokens,
        "output": answer,
        "finding": None if correct else "wrong_label",
    }
