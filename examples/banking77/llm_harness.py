"""An eval harness that asks an LLM provider to route each query (gitera command mode).

Runs when ANTHROPIC_API_KEY is set and skips otherwise (it then writes nothing and exits 0
with a message, so `gitera pilot` reports the missing results instead of crashing).
Use it as an arm's harness by pointing the frame at it:

    eval: {command: python llm_harness.py, concurrency: 8, timeout_s: 600}
    arms:
      llm: {change: route with an LLM, params: {model: claude-haiku-4-5, intents: eval/groups.json}}

Only the standard library: the request goes to the provider's HTTPS API with urllib.
Rate limits and 5xx answers are reported as transient, so gitera retries them with backoff.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

API = "https://api.anthropic.com/v1/messages"
PRICE_PER_MTOK = {"input": 1.0, "output": 5.0}  # USD per million tokens; set from the provider's price list


def ask(model: str, intents: list[str], text: str, key: str) -> tuple[str, int, int]:
    prompt = ("Classify the banking customer query into exactly one intent from this list; answer with the intent only.\n"
              f"Intents: {', '.join(intents)}\nQuery: {text}")
    body = json.dumps({"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": prompt}]}).encode()
    req = urllib.request.Request(API, data=body, headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                                                          "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        data = json.loads(resp.read())
    answer = "".join(part.get("text", "") for part in data.get("content", [])).strip()
    usage = data.get("usage", {})
    return answer, int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))


def main() -> int:
    key = os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        print("llm_harness: ANTHROPIC_API_KEY is not set; skipping (no rows scored).", file=sys.stderr)
        return 0
    params = json.loads(os.environ.get("GITERA_ARM_PARAMS") or "{}")
    intents = sorted(set(json.loads(Path(params.get("intents", "eval/groups.json")).read_text())))
    model = params.get("model", "claude-haiku-4-5")
    rows = [json.loads(x) for x in Path(os.environ["GITERA_ROWS"]).read_text().splitlines() if x.strip()]
    with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
        for row in rows:
            start = time.perf_counter()
            try:
                answer, tin, tout = ask(model, intents, row["text"], key)
            except urllib.error.HTTPError as exc:
                transient = exc.code == 429 or exc.code >= 500
                out.write(json.dumps({"id": row["id"], "score": None, "transient": transient, "error": f"HTTP {exc.code}"}) + "\n")
                continue
            except (urllib.error.URLError, TimeoutError) as exc:
                out.write(json.dumps({"id": row["id"], "score": None, "transient": True, "error": str(exc)}) + "\n")
                continue
            cost = tin / 1e6 * PRICE_PER_MTOK["input"] + tout / 1e6 * PRICE_PER_MTOK["output"]
            out.write(json.dumps({"id": row["id"], "score": int(answer == row["intent"]), "output": answer[:200],
                                  "tokens": tin + tout, "cost_usd": cost,
                                  "latency_ms": (time.perf_counter() - start) * 1000}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
