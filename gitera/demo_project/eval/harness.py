"""Eval harness for the banking-intents example (gitera command mode).

Reads the rows to score from $GITERA_ROWS (JSONL, each with id, text, intent),
trains the arm's classifier on the experiment's train split, and writes one
JSON result line per row to $GITERA_OUT:

    {"id": ..., "score": 0|1, "output": predicted intent, "cost_usd": ..,
     "latency_ms": .., "tokens": .., "finding": failure category or null}

Arms (from $GITERA_ARM_PARAMS):
    {"model": "rules", "rules": "rules/v1.txt"}   keyword rules, first match wins
    {"model": "centroid"}                           TF-IDF nearest centroid
    {"model": "logreg", "epochs": 8}                TF-IDF + softmax regression (SGD,
                                                    seeded by the trial: real trial noise)

The cost is what an API priced per 1k input tokens would charge (simulated from
the text length: this example runs offline), latency is measured.
"""

from __future__ import annotations

import json
import math
import os
import re

# Several shards run at once: one BLAS thread each avoids oversubscribing the cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Protocol

PRICE_PER_1K_TOKENS = {"rules": 0.0, "centroid": 0.0001, "logreg": 0.0002}
WORD = re.compile(r"[a-z0-9']+")


def tokens(text: str) -> list[str]:
    words = WORD.findall(text.lower())
    return words + [a + " " + b for a, b in zip(words, words[1:])]


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def groups() -> dict[str, str]:
    data: dict[str, str] = json.loads(Path("eval/groups.json").read_text())
    return data


class Model(Protocol):
    def predict(self, text: str) -> str: ...


class Rules:
    def __init__(self, path: str, fallback: str) -> None:
        self.rules: list[tuple[str, str]] = []
        for line in Path(path).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "->" in line:
                phrase, intent = (p.strip() for p in line.split("->", 1))
                self.rules.append((phrase.lower(), intent))
        self.fallback = fallback

    def predict(self, text: str) -> str:
        low = text.lower()
        for phrase, intent in self.rules:
            if all(word in low for word in phrase.split("+")):
                return intent
        return self.fallback

    def matched(self, text: str) -> bool:
        low = text.lower()
        return any(all(word in low for word in phrase.split("+")) for phrase, _ in self.rules)


class Tfidf:
    def __init__(self, texts: list[str]) -> None:
        df = Counter(t for text in texts for t in set(tokens(text)))
        n = len(texts)
        self.vocab = {t: i for i, t in enumerate(sorted(t for t, c in df.items() if c >= 2))}
        self.idf = {t: math.log((1 + n) / (1 + df[t])) + 1 for t in self.vocab}

    def vector(self, text: str) -> dict[int, float]:
        counts = Counter(t for t in tokens(text) if t in self.vocab)
        vec = {self.vocab[t]: c * self.idf[t] for t, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {k: v / norm for k, v in vec.items()}


class Centroid:
    def __init__(self, train: list[dict[str, Any]]) -> None:
        self.tfidf = Tfidf([r["text"] for r in train])
        sums: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        for r in train:
            for k, v in self.tfidf.vector(r["text"]).items():
                sums[r["intent"]][k] += v
        self.centroids = {}
        for intent, vec in sums.items():
            norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
            self.centroids[intent] = {k: v / norm for k, v in vec.items()}

    def predict(self, text: str) -> str:
        vec = self.tfidf.vector(text)
        return max(self.centroids, key=lambda c: (sum(vec.get(k, 0.0) * v for k, v in self.centroids[c].items()), c))


class LogReg:
    def __init__(self, train: list[dict[str, Any]], epochs: int, seed: int) -> None:
        import numpy as np

        self.np = np
        self.tfidf = Tfidf([r["text"] for r in train])
        self.labels = sorted({r["intent"] for r in train})
        index = {c: i for i, c in enumerate(self.labels)}
        x = self._matrix([r["text"] for r in train])
        y = np.array([index[r["intent"]] for r in train])
        rng = np.random.default_rng(seed)
        self.w = rng.normal(0, 0.01, (x.shape[1], len(self.labels)))
        for _ in range(epochs):
            for batch in np.array_split(rng.permutation(len(y)), max(1, len(y) // 32)):
                logits = x[batch] @ self.w
                logits -= logits.max(axis=1, keepdims=True)
                p = np.exp(logits)
                p /= p.sum(axis=1, keepdims=True)
                p[np.arange(len(batch)), y[batch]] -= 1
                self.w -= 2.0 * (x[batch].T @ p / len(batch) + 1e-4 * self.w)

    def _matrix(self, texts: list[str]):  # type: ignore[no-untyped-def]
        m = self.np.zeros((len(texts), len(self.tfidf.vocab)))
        for i, text in enumerate(texts):
            for k, v in self.tfidf.vector(text).items():
                m[i, k] = v
        return m

    def predict(self, text: str) -> str:
        return str(self.labels[int((self._matrix([text]) @ self.w).argmax())])


def main() -> int:
    params = json.loads(os.environ.get("GITERA_ARM_PARAMS") or "{}")
    trial = int(os.environ.get("GITERA_TRIAL", "0"))
    tag = os.environ["GITERA_TAG"]
    rows = load_jsonl(Path(os.environ["GITERA_ROWS"]))
    train = load_jsonl(Path(f".gitera/{tag}/split/train.jsonl"))
    kind = params.get("model", "rules")
    start = time.perf_counter()
    model: Model
    if kind == "rules":
        model = Rules(params.get("rules", "rules/v1.txt"), Counter(r["intent"] for r in train).most_common(1)[0][0])
    elif kind == "centroid":
        model = Centroid(train)
    elif kind == "logreg":
        model = LogReg(train, int(params.get("epochs", 8)), seed=1000 + trial)
    else:
        print(f"unknown model {kind!r}", file=sys.stderr)
        return 2
    setup_ms = (time.perf_counter() - start) * 1000 / max(1, len(rows))
    group_of = groups()
    with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
        for row in rows:
            t0 = time.perf_counter()
            predicted = model.predict(row["text"])
            n_tokens = len(row["text"]) // 4 + 40
            finding = None
            if predicted != row["intent"]:
                if isinstance(model, Rules) and not model.matched(row["text"]):
                    finding = "no_rule_matched"
                elif group_of.get(predicted) == group_of.get(row["intent"]):
                    finding = "wrong_intent_same_group"
                else:
                    finding = "wrong_group"
            result = {
                "id": row["id"],
                "score": int(predicted == row["intent"]),
                "output": predicted,
                "tokens": n_tokens,
                "cost_usd": round(n_tokens / 1000 * PRICE_PER_1K_TOKENS[kind], 8),
                "latency_ms": round((time.perf_counter() - t0) * 1000 + setup_ms, 3),
                "finding": finding,
            }
            out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
