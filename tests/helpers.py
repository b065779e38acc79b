"""Building blocks for tests: a filled frame and a locked experiment in a real repo."""

from __future__ import annotations

from collections.abc import Callable
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


def read_test_rows(root: Path, tag: str = "banking", key_text: str | None = None) -> list[dict[str, object]]:
    """Test-only: decrypt the seal with the local key (the product does this only in the verdict)."""
    return _open_part(root, tag, "seal", key_text or (root / f".git/gitera/keys/{tag}.key").read_text())


def read_gate_rows(root: Path, tag: str = "banking") -> list[dict[str, object]]:
    """Test-only: decrypt the gate seal with the local gate key (the product does this only in the gate)."""
    return _open_part(root, tag, "gate_seal", (root / f".git/gitera/keys/gate/{tag}.key").read_text())


def _open_part(root: Path, tag: str, part: str, key_text: str) -> list[dict[str, object]]:
    import json
    import tempfile

    from gitera.adapters import keys, seal

    manifest = json.loads((root / f".gitera/{tag}/split/manifest.json").read_text())
    key = keys.parse_data_key(key_text.strip(), "key file")
    rel = manifest[part]["path"]
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "rows.jsonl"
        seal.open_seal(root / rel, key, seal.Binding(tag, manifest["frame_hash"], rel, manifest.get("pins_digest")), plain)
        return [json.loads(line) for line in plain.read_text().splitlines()]


SYNTHETIC = Path(__file__).resolve().parent / "synthetic"

SYNTHETIC_FRAME = """\
question: Does policy B beat policy A?
hypothesis: B answers more rows correctly.
baseline: {arm: a, ref: "policy_a.txt:1"}
arms:
  a: {change: current policy, params: {policy: policy_a.txt}}
  b: {change: the iterated policy, params: {policy: policy_b.txt}}
ARMS_EXTRA
iterate:
  arm: b
  target: [policy_b.txt]
  sprint: 3
  budget: {max_iterations: MAX_ITER, max_consecutive_crashes: 3}
data:
  source: data/rows.csv
  id: row_id
  label: label
  slices: [group]
  stratify: [group]
  seed: 3
metric:
  primary: {name: accuracy, direction: higher}
  guards: [{name: latency_ms, max_increase: 1.0}]
  trials: 3
threshold: {effect: EFFECT, basis: point, slice_loss_floor: 0.05, alpha: 0.05}
eval: {command: python harness.py, concurrency: 2, timeout_s: TIMEOUTEVAL_EXTRA, env: [SYN_*, JUDGE_*, HARNESS_*, ADVERSARY*]}
locked: [harness.py]
"""


def synthetic_project(root: Path, *, rows: int = 600, groups: tuple[str, ...] = ("g1", "g2", "g3"), policies: dict[str, str] | None = None,
                      extra_arms: str = "", effect: float = 0.05, max_iterations: int = 30, timeout_s: float = 20,
                      accept_underpowered: bool = True, eval_extra: str = "", locked_extra: tuple[str, ...] = (),
                      harness: Path | None = None, pilot: bool = True, max_cost_usd: float | None = None,
                      row_text: Callable[[int], str] | None = None, frame_edits: dict[str, str] | None = None,
                      columns: dict[str, Callable[[int], str]] | None = None, split: bool = True,
                      split_args: tuple[str, ...] = ()) -> None:
    """A locked, split, piloted experiment `syn` with the deterministic policy harness (only locked: ``split=False``).

    ``row_text(i)``: row i's text; ``columns``: more data columns, name -> value of row i;
    ``split_args``: more options for `gitera split`.
    """
    import csv
    import shutil

    shutil.copy(harness or SYNTHETIC / "harness.py", root / "harness.py")
    shutil.copy(SYNTHETIC / "judge.py", root / "judge.py")
    for name, text in (policies or {"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.5\n"}).items():
        (root / name).write_text(text)
    (root / "data").mkdir(exist_ok=True)
    with (root / "data/rows.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row_id", "text", "label", "group", *(columns or {})])
        for i in range(rows):
            g = groups[i % len(groups)]
            words = row_text(i) if row_text else f"customer message number {i} about topic {i % 17} in {g} with detail {i * 7919 % 10007}"
            w.writerow([f"s{i:05d}", words, f"L{i % 5}", g, *(f(i) for f in (columns or {}).values())])
    (root / ".gitignore").write_text("data/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "synthetic project")
    assert run_gitera(root, "init", "syn").code == 0
    frame = (SYNTHETIC_FRAME.replace("ARMS_EXTRA", extra_arms).replace("EFFECT", str(effect))
             .replace("MAX_ITER", str(max_iterations)).replace("TIMEOUT", str(timeout_s)).replace("EVAL_EXTRA", eval_extra)
             .replace("locked: [harness.py]", "locked: [" + ", ".join(["harness.py", *locked_extra]) + "]"))
    if max_cost_usd is not None:
        frame = frame.replace("max_consecutive_crashes: 3}", f"max_consecutive_crashes: 3, max_cost_usd: {max_cost_usd}}}")
    for old, new in (frame_edits or {}).items():
        assert old in frame, old
        frame = frame.replace(old, new)
    (root / ".gitera/syn/frame.yaml").write_text(frame)
    r = run_gitera(root, "lock")
    assert r.code == 0, r.err
    if not split:
        return
    r = run_gitera(root, "split", *(["--accept-underpowered"] if accept_underpowered else []), *split_args)
    assert r.code == 0, r.err
    if pilot:
        r = run_gitera(root, "pilot")
        assert r.code == 0, r.out + r.err


def fix_holdout_seed(root: Path, tag: str = "syn", seed: int = 1) -> None:
    """Fix the reusable holdout's secret noise seed (as `gitera demo` does) so a test's gates replay the same."""
    import os

    keys = root / ".git" / "gitera" / "keys"
    keys.mkdir(parents=True, mode=0o700, exist_ok=True)
    fd = os.open(keys / f"{tag}.holdout", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{seed}\n")


def all_blobs(root: Path) -> list[bytes]:
    """Every object in the repository's store (reachable or not), in one buffer, to search."""
    import subprocess

    out = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=root, capture_output=True, check=True).stdout
    return [out]
