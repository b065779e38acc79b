"""Starter eval harness for gitera's command mode (eval: {command: python eval/harness.py}).

gitera runs this file once per shard of rows, from the root of a checkout of the arm's
commit, with these environment variables (docs/eval-contract.md has the full contract):

    GITERA_ROWS         path of a JSONL file: the rows to score, each with an "id"
    GITERA_OUT          path to write: one JSON line per row (see RESULT below)
    GITERA_ARM          the arm's name, e.g. "v2"
    GITERA_ARM_PARAMS   the arm's params from the frame, as JSON, e.g. {"prompt": "prompts/v2.txt"}
    GITERA_TRIAL        the trial index, 0-based: seed any randomness with it
    GITERA_SPLIT        "train" (pilot), "dev" (run/iterate) or "test" (verdict)
    GITERA_TAG          the experiment's tag

RESULT, one line per input row:
    {"id": <row id>, "score": <number or true/false>, "cost_usd": <float>, "latency_ms": <float>,
     "tokens": <int>, "output": "<what the system answered>", "finding": "<failure category or null>"}
Optional: "transient": true asks gitera to retry the row (a rate limit, a 5xx);
"error": "..." records the row as crashed (not as a wrong answer).

This starter scores a trivial keyword rule so it runs as is: replace `predict` with a
call to your system (model, prompt, retriever) and keep the rest.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

TEXT_FIELD = "text"  # the input column the system reads
LABEL_FIELD = "expected"  # the column holding the correct answer
PRICE_PER_1K_TOKENS = 0.0  # what one call costs; set it from your provider's price list


def predict(text: str, params: dict[str, Any]) -> str:
    """The system under test. Params come from the arm in the frame (here: a keyword list)."""
    keywords = params.get("keywords", {"refund": "billing", "password": "account"})
    low = text.lower()
    for word, label in keywords.items():
        if word in low:
            return str(label)
    return str(params.get("default", "other"))


def main() -> int:
    params = json.loads(os.environ.get("GITERA_ARM_PARAMS") or "{}")
    rows = [json.loads(line) for line in Path(os.environ["GITERA_ROWS"]).read_text(encoding="utf-8").splitlines() if line.strip()]
    # Write and flush each line as soon as the row is scored: gitera reads finished rows
    # while the shard runs, so a killed shard keeps what it already did, and timeout_s is
    # the limit per row (the wait for the next line), not for the whole shard.
    with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
        for row in rows:
            start = time.perf_counter()
            try:
                answer = predict(str(row[TEXT_FIELD]), params)
            except KeyError as exc:  # a broken row: say so instead of guessing a score
                out.write(json.dumps({"id": row["id"], "error": f"missing field {exc}"}) + "\n")
                continue
            tokens = len(str(row[TEXT_FIELD])) // 4 + 1
            correct = answer.strip().lower() == str(row.get(LABEL_FIELD, "")).strip().lower()
            out.write(json.dumps({
                "id": row["id"],
                "score": correct,
                "cost_usd": tokens / 1000 * PRICE_PER_1K_TOKENS,
                "latency_ms": (time.perf_counter() - start) * 1000,
                "tokens": tokens,
                "output": answer,
                "finding": None if correct else "wrong_label",
            }) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
