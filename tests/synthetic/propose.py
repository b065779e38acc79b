"""A test proposer for `gitera iterate --loop --propose`: raises the policy's accuracy a step each time."""

import json
import os
import sys
from pathlib import Path

ctx = json.loads(Path(os.environ["GITERA_CONTEXT"]).read_text())
n = ctx["dashboard"]["iteration"] + 1
if "--fail" in sys.argv:
    print("proposer crashed", file=sys.stderr)
    sys.exit(1)
Path(ctx["target_files"][0]).write_text(f"accuracy: {0.5 + 0.08 * n:.2f}\n")
Path(os.environ["GITERA_HYPOTHESIS_FILE"]).write_text(f"step {n}: accuracy {0.5 + 0.08 * n:.2f} answers more rows\n")
