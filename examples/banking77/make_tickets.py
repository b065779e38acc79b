"""Rebuild tickets.csv: a deterministic, stratified sample of BANKING77 (run from this folder).

    python make_tickets.py

Reads train.csv + test.csv (the original PolyAI files), drops queries whose normalized
text (casefolded, whitespace collapsed) repeats an earlier one, then draws SAMPLE_SIZE rows
stratified by intent (each intent gets its proportional share, rounded by largest
remainder, so every intent and every intent group is represented), with a fixed seed.
Row order is shuffled with the same generator; ids are t00001, t00002, ...
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

SEED = 77
SAMPLE_SIZE = 2000
HERE = Path(__file__).resolve().parent


def main() -> None:
    groups: dict[str, str] = json.loads((HERE / "groups.json").read_text(encoding="utf-8"))
    seen: set[str] = set()
    by_intent: dict[str, list[str]] = {}
    for name in ("train.csv", "test.csv"):
        with open(HERE / name, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                key = " ".join(row["text"].casefold().split())
                if key in seen:
                    continue
                seen.add(key)
                by_intent.setdefault(row["category"], []).append(row["text"])
    total = sum(len(v) for v in by_intent.values())
    intents = sorted(by_intent)
    quotas = {i: SAMPLE_SIZE * len(by_intent[i]) / total for i in intents}
    counts = {i: int(quotas[i]) for i in intents}
    left = SAMPLE_SIZE - sum(counts.values())
    for i in sorted(intents, key=lambda i: (-(quotas[i] - counts[i]), i))[:left]:
        counts[i] += 1
    rng = np.random.default_rng(SEED)
    picked: list[tuple[str, str]] = []
    for intent in intents:
        texts = by_intent[intent]
        for j in sorted(rng.choice(len(texts), size=counts[intent], replace=False).tolist()):
            picked.append((texts[j], intent))
    order = rng.permutation(len(picked)).tolist()
    with open(HERE / "tickets.csv", "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["row_id", "text", "intent", "intent_group"])
        for n, k in enumerate(order, 1):
            text, intent = picked[k]
            out.writerow([f"t{n:05d}", text, intent, groups[intent]])


if __name__ == "__main__":
    main()
