"""The example's proposer: one hyperparameter change per attempt, as an agent would make it.

    gitera iterate --loop --propose "python propose.py"

gitera runs it before each attempt with GITERA_CONTEXT (the loop's state as JSON: the attempt
number, the best score, the noise floor, what was tried) and GITERA_HYPOTHESIS_FILE. It edits
train.py, the one target file, and writes its hypothesis. A coding agent does the same with its
own ideas (reading GITERA_CONTEXT_MD); gitera decides keep or discard, never the proposer.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

# (hyperparameter, new value, why): tried in this order, one per attempt, on the current best train.py
PROPOSALS = [
    ("LR", "0.005", "a 10x smaller learning rate trains more stably"),
    ("LR", "0.1", "a 2x larger learning rate learns more within the fixed step budget"),
    ("HIDDEN", "72", "eight more hidden units add a little capacity"),
    ("EMBED", "16", "16-dimensional symbol embeddings separate characters better than 8"),
    ("MOMENTUM", "0.8", "less momentum makes the updates less noisy"),
    ("STEPS", "800", "twice the training steps: the model is still underfit"),
]


def main() -> None:
    context = json.loads(Path(os.environ["GITERA_CONTEXT"]).read_text())
    name, value, why = PROPOSALS[int(context["dashboard"]["iteration"]) % len(PROPOSALS)]
    path = Path("train.py")
    text = path.read_text()
    old = re.search(rf"^{name} = (\S+)", text, re.MULTILINE)
    if old is None:
        raise SystemExit(f"train.py has no {name} to change")
    path.write_text(text[: old.start(1)] + value + text[old.end(1):])
    Path(os.environ["GITERA_HYPOTHESIS_FILE"]).write_text(f"{name} {old.group(1)} -> {value}: {why}\n")


if __name__ == "__main__":
    main()
