"""Fixed for the whole experiment (locked by `gitera lock`): the data, the vocabulary, the evaluation.

As in autoresearch, train.py imports from here and never changes it. The evaluation reads the
file of the split gitera names in GITERA_SPLIT: dev -> data/val.txt (committed), gate ->
data/gate.txt and test -> data/test.txt (both sealed by `gitera split`: they exist only inside
the gate's and the verdict's own checkouts, for their runs).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

CONTEXT = 4  # characters of context the model sees
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))  # 96 symbols; any other character reads as "?"
DATA = Path(__file__).resolve().parent / "data"
EVAL_FILES = {"dev": "val.txt", "gate": "gate.txt", "test": "test.txt"}
_INDEX = {ch: i for i, ch in enumerate(VOCAB)}


def encode(text: str) -> np.ndarray:
    unknown = _INDEX["?"]
    return np.array([_INDEX.get(ch, unknown) for ch in text], dtype=np.int64)


def windows(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every position's CONTEXT previous symbols (newlines before the start) and the symbol itself."""
    padded = np.concatenate([np.zeros(CONTEXT, dtype=np.int64), ids])
    x = np.stack([padded[i:i + len(ids)] for i in range(CONTEXT)], axis=1)
    return x, ids


def train_text() -> str:
    return (DATA / "train.txt").read_text(encoding="utf-8")


def evaluate_bpb(predict: Callable[[np.ndarray], np.ndarray]) -> float:
    """Bits per byte of the eval file: -log2 p(next symbol) summed over the file, over its UTF-8 bytes.

    ``predict(contexts)`` returns next-symbol probabilities, shape (len(contexts), len(VOCAB))."""
    text = (DATA / EVAL_FILES[os.environ.get("GITERA_SPLIT", "dev")]).read_text(encoding="utf-8")
    x, y = windows(encode(text))
    bits = 0.0
    for start in range(0, len(y), 8192):
        p = predict(x[start:start + 8192])
        bits -= float(np.log2(np.clip(p[np.arange(len(p)), y[start:start + 8192]], 1e-12, 1.0)).sum())
    return bits / len(text.encode("utf-8"))
