"""Start-up stays light: the hot paths never import numpy, scipy or matplotlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import init_and_lock

HEAVY = ("numpy", "scipy", "matplotlib", "cryptography")

PROBE = """
import sys
from gitera.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
print('HEAVY:' + ','.join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["init", "-h"], ["lock"], ["status"], ["hook", "locked"], ["hook", "trailers", "msg.txt"], ["hook", "test-leak"]],
)
def test_hot_paths_do_not_import_heavy_libraries(repo: Path, args: list[str]) -> None:
    init_and_lock(repo)
    (repo / "msg.txt").write_text("subject\n")
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=set(HEAVY)), *args], cwd=repo, capture_output=True, text=True)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY:")]
    assert line == ["HEAVY:"], proc.stderr
