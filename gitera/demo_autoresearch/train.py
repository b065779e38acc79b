"""A tiny character-level language model of BANKING77 queries: the file the agent edits.

Like autoresearch's train.py: it trains for a fixed budget and prints `val_bpb` (bits per byte
on the eval file, lower is better). GITERA_TRIAL is the seed. Everything here may change;
prepare.py (the data and the evaluation) may not.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per run: results repeat exactly for a seed

import numpy as np  # noqa: E402

from prepare import CONTEXT, VOCAB, encode, evaluate_bpb, train_text, windows  # noqa: E402

# --- hyperparameters -------------------------------------------------------------------------
EMBED = 8  # size of a symbol's embedding
HIDDEN = 64  # hidden units
LR = 0.05  # learning rate (SGD with momentum)
MOMENTUM = 0.9
BATCH = 128
STEPS = 400
# -----------------------------------------------------------------------------------------------

started = time.time()
rng = np.random.default_rng(int(os.environ.get("GITERA_TRIAL", "0")))
x_all, y_all = windows(encode(train_text()))
V, D = len(VOCAB), CONTEXT * EMBED
params = {
    "emb": rng.normal(0, 1.0, (V, EMBED)),
    "w1": rng.normal(0, 1 / np.sqrt(D), (D, HIDDEN)), "b1": np.zeros(HIDDEN),
    "w2": rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, V)), "b2": np.zeros(V),
}
velocity = {k: np.zeros_like(v) for k, v in params.items()}


def forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = params["emb"][x].reshape(len(x), D)
    h = np.tanh(e @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return e, h, p / p.sum(axis=1, keepdims=True)


for step in range(STEPS):
    idx = rng.integers(0, len(y_all), BATCH)
    x, y = x_all[idx], y_all[idx]
    e, h, p = forward(x)
    g = p
    g[np.arange(BATCH), y] -= 1.0
    g /= BATCH
    grads = {"w2": h.T @ g, "b2": g.sum(axis=0)}
    gh = (g @ params["w2"].T) * (1 - h * h)
    grads["w1"], grads["b1"] = e.T @ gh, gh.sum(axis=0)
    ge = (gh @ params["w1"].T).reshape(BATCH, CONTEXT, EMBED)
    grads["emb"] = np.zeros_like(params["emb"])
    np.add.at(grads["emb"], x, ge)
    for k in params:
        velocity[k] = MOMENTUM * velocity[k] - LR * grads[k]
        params[k] += velocity[k]

val_bpb = evaluate_bpb(lambda x: forward(x)[2])
print(f"val_bpb: {val_bpb:.6f}")
print(f"training_seconds: {time.time() - started:.2f}")
print(f"num_params: {sum(v.size for v in params.values())}")
