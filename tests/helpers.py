"""Building blocks for tests: a filled frame and a locked experiment in a real repo."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import git, run_gitera

FRAME = """\
question: Does v2 beat v1 on intent routing?
hypothesis: Naming the payment processor moves fee rows out of transfer.
baseline: {arm: v1, ref: "src/route.py:3"}
arms:
  v1: {change: current production rules, params: {rules: rules_v1.txt}}
  v2: {change: adds the payment-processor rule, params: {rules: rules_v2.txt}}
iterate:
  arm: v2
  target: [rules_v2.txt]
  sprint: 3
  budget: {max_iterations: 10, max_cost_usd: 5, max_wall_clock_hours: 1, max_consecutive_crashes: 3}
data:
  source: data/rows.csv
  id: row_id
  label: intent
  slices: [group]
  stratify: [group]
  split: {train: 0.3, dev: 0.5, test: 0.2}
  seed: 7
metric:
  primary: {name: accuracy, direction: higher}
  secondary: [cost_usd, latency_ms]
  guards: [{name: latency_ms, max_increase: 0.5}]
  trials: 3
threshold: {effect: 0.05, basis: point, slice_loss_floor: 0.02, alpha: 0.05}
eval: {command: python eval/run.py, concurrency: 4, timeout_s: 60}
locked: [eval/run.py, eval/metric.py]
"""


def write_project(root: Path) -> None:
    (root / "eval").mkdir(exist_ok=True)
    (root / "eval" / "run.py").write_text("print('scoring')\n")
    (root / "eval" / "metric.py").write_text("def accuracy(a, b):\n    return float(a == b)\n")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "route.py").write_text("# routing\n\nRULES = 'rules_v1.txt'\n")
    (root / "rules_v1.txt").write_text("fee -> card_payment_fee_charged\n")
    (root / "rules_v2.txt").write_text("fee -> card_payment_fee_charged\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project files")


def init_and_lock(root: Path, tag: str = "exp1", frame: str = FRAME) -> None:
    write_project(root)
    r = run_gitera(root, "init", tag)
    assert r.code == 0, r.err
    (root / ".gitera" / tag / "frame.yaml").write_text(frame)
    r = run_gitera(root, "lock")
    assert r.code == 0, r.err


DEMO = Path(__file__).resolve().parents[1] / "gitera" / "demo_project"
TICKETS = Path(__file__).resolve().parents[1] / "gitera" / "example_data" / "tickets.csv"


def banking_project(root: Path, tag: str = "banking", rows: int | None = None, frame_edits: dict[str, str] | None = None) -> None:
    """The bundled banking-intents project, initialised and locked (data kept out of git)."""
    import shutil

    for item in DEMO.iterdir():
        if item.is_dir():
            shutil.copytree(item, root / item.name, dirs_exist_ok=True)
        elif item.name != "frame.yaml":
            shutil.copy(item, root / item.name)
    (root / "data").mkdir(exist_ok=True)
    lines = TICKETS.read_text().splitlines(keepends=True)
    (root / "data" / "tickets.csv").write_text("".join(lines if rows is None else lines[: rows + 1]))
    (root / ".gitignore").write_text("data/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "banking project")
    r = run_gitera(root, "init", tag)
    assert r.code == 0, r.err
    frame = (DEMO / "frame.yaml").read_text()
    for old, new in (frame_edits or {}).items():
        assert old in frame, old
        frame = frame.replace(old, new)
    (root / ".gitera" / tag / "frame.yaml").write_text(frame)
    r = run_gitera(root, "lock")
    assert r.code == 0, r.err


def read_test_rows(root: Path, tag: str = "banking") -> list[dict[str, object]]:
    """Test-only: decrypt the seal with the local key (the product does this only in the verdict)."""
    import json
    import tempfile

    from gitera import keys, seal

    manifest = json.loads((root / f".gitera/{tag}/split/manifest.json").read_text())
    key = keys.parse_data_key((root / f".git/gitera/keys/{tag}.key").read_text().strip(), "key file")
    rel = manifest["seal"]["path"]
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "test.jsonl"
        seal.open_seal(root / rel, key, seal.Binding(tag, manifest["frame_hash"], rel), plain)
        return [json.loads(line) for line in plain.read_text().splitlines()]
