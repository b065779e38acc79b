"""Rebuild the autoresearch example's text shards from BANKING77 (run from this folder).

    python make_data.py

Reads ../banking77/train.csv and ../banking77/test.csv (the original PolyAI files, CC-BY-4.0),
keeps each query once (casefolded, whitespace collapsed), shuffles them all with a fixed seed
and writes one query per line to ../../gitera/demo_autoresearch/data/:

- train.txt  2,500 queries  (committed and locked: what train.py learns from)
- val.txt      400 queries  (committed and locked: the dev eval)
- gate.txt     400 queries  (never committed: sealed, the gate's shard)
- test.txt     400 queries  (never committed: sealed, the verdict's)

The four files are drawn from one shuffled pool, so the three eval shards are exchangeable (a
gap between them is noise, not a harder shard); no query is in two files. The files are rebuilt
byte for byte.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SEED = 13
HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "gitera" / "demo_autoresearch" / "data"
SIZES = {"train": 2500, "val": 400, "gate": 400, "test": 400}


def queries(name: str, seen: set[str]) -> list[str]:
    out = []
    with open(HERE.parent / "banking77" / name, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            text = " ".join(row["text"].split())
            key = text.casefold()
            if text and key not in seen:
                seen.add(key)
                out.append(text)
    return out


def main() -> None:
    seen: set[str] = set()
    pool = queries("train.csv", seen) + queries("test.csv", seen)
    random.Random(SEED).shuffle(pool)
    parts, start = {}, 0
    for name, size in SIZES.items():
        parts[name] = pool[start:start + size]
        start += size
    OUT.mkdir(parents=True, exist_ok=True)
    for name, lines in parts.items():
        (OUT / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}.txt: {len(lines)} queries")


if __name__ == "__main__":
    main()
