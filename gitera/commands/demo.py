"""gitera demo: the whole pipeline on the bundled banking-intents example, in a temporary repo.

init → lock → split → pilot → run → six iterations in two sprints (the second plants a
hardcoded dev row, which the gate catches) → verdict → verify. Real data (BANKING77,
CC-BY-4.0), real classifiers, real git, real encryption.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from gitera.adapters.output import Output
from gitera.core.errors import GiteraError

# Sprint 1: general rules (one change each). Sprint 2: one general rule, then a planted
# hardcode (a dev row's exact text mapped to its label: the gate must catch it), then one more.
GENERAL_RULES = [
    ("passcode -> passcode_forgotten", "a passcode rule routes forgotten-passcode questions"),
    ("verify+identity -> verify_my_identity", "an identity-verification rule catches KYC questions"),
    ("exchange+charge -> exchange_charge", "an exchange-charge rule separates fees from rates"),
    ("declined+transfer -> declined_transfer", "a declined-transfer rule catches rejected transfers"),
]


DEMO_HOLDOUT_SEED = 1


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _gitera(root: Path, *args: str) -> tuple[int, str]:
    """Run one gitera command as a user would, in the demo repo (this interpreter first on PATH: the
    harness's `python` is gitera's, with its numpy)."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "gitera", *args], cwd=root, capture_output=True, text=True, env=env)
    if proc.returncode not in (0,) and args[0] not in ("iterate", "verify"):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise GiteraError(f"the demo step `gitera {' '.join(args)}` failed: {' | '.join(tail)}")
    return proc.returncode, proc.stdout


def _setup(root: Path) -> None:
    project = resources.files("gitera") / "demo_project"
    data = resources.files("gitera") / "example_data"
    for name in ("eval", "rules"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for item in (project / name).iterdir():
            if item.is_file() and not item.name.endswith(".pyc"):
                (root / name / item.name).write_bytes(item.read_bytes())
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "tickets.csv").write_bytes((data / "tickets.csv").read_bytes())
    (root / "data" / "LICENSE").write_bytes((data / "LICENSE").read_bytes())
    (root / ".gitignore").write_text("data/\n__pycache__/\n")
    (root / "README.md").write_text("Banking-intents router (gitera demo). Data: BANKING77, PolyAI, CC-BY-4.0.\n")
    _first_commit(root, "banking-intents router with keyword rules")


def _first_commit(root: Path, message: str) -> None:
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "gitera demo")
    _git(root, "config", "user.email", "demo@gitera.invalid")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)


def _planted_hardcode(root: Path) -> str:
    """A dev row's exact text mapped to its label: what an over-eager agent might write."""
    for line in (root / ".gitera/banking/split/dev.jsonl").read_text().splitlines():
        row = json.loads(line)
        text = " ".join(str(row["text"]).lower().replace("+", " ").split())
        if 25 <= len(text) <= 70 and "->" not in text:
            return f"{text} -> {row['intent']}"
    raise GiteraError("no dev row suitable for the planted hardcode")


def _root(keep: Path | None) -> Path:
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="gitera-demo-"))
    if keep.exists() and any(keep.iterdir()):
        raise GiteraError(f"{keep} is not empty; give a new or empty directory to --dir.")
    keep.mkdir(parents=True, exist_ok=True)
    return keep


def demo(keep: Path | None, out: Output, kind: str = "row") -> int:
    if kind == "run":
        return demo_runs(keep, out)
    started = time.time()
    root = _root(keep)
    env_before = os.environ.get("GITERA_SEAL_KEY")
    os.environ.pop("GITERA_SEAL_KEY", None)
    steps: list[dict[str, Any]] = []

    def step(*args: str) -> tuple[int, str]:
        t = time.time()
        out.info(f"$ gitera {' '.join(args)}")
        code, text = _gitera(root, *args)
        steps.append({"command": "gitera " + " ".join(args), "exit": code, "seconds": round(time.time() - t, 2)})
        for line in text.strip().splitlines()[-4:]:
            out.info(f"    {line}")
        return code, text

    try:
        _setup(root)
        out.info(f"Demo repository: {root}")
        project = resources.files("gitera") / "demo_project"
        # the reusable holdout's noise seed is normally a fresh secret; the demo fixes it so that its
        # story (sprint 1 passes the gate, sprint 2's planted hardcode fails it) is the same every run
        keys = root / ".git" / "gitera" / "keys"
        keys.mkdir(parents=True, mode=0o700, exist_ok=True)
        fd = os.open(keys / "banking.holdout", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{DEMO_HOLDOUT_SEED}\n")
        step("init", "banking")
        (root / ".gitera/banking/frame.yaml").write_bytes((project / "frame.yaml").read_bytes())
        step("lock")
        step("split")
        step("pilot")
        step("run")
        rules = root / "rules/v2.txt"
        # the fourth attempt smuggles a hardcoded dev row in beside a general rule: the gate must kill it
        edits = [*GENERAL_RULES[:3], (GENERAL_RULES[3][0] + "\n" + _planted_hardcode(root), GENERAL_RULES[3][1])]
        for line, hypothesis in edits:
            text = rules.read_text()
            # a rule placed first takes precedence over the catch-all rules below it
            header, body = text.split("\n", 2)[:2], text.split("\n", 2)[2]
            rules.write_text("\n".join(header) + "\n" + line + "\n" + body)
            step("iterate", "-m", hypothesis)
            status = json.loads((root / ".gitera/banking/runs/iterate.json").read_text())
            if status["status"] != "active":
                break
        state = json.loads((root / ".gitera/banking/runs/iterate.json").read_text())
        if state["status"] == "active" and state["in_sprint"] > 0:
            step("gate")
        step("log")
        verdict = json.loads(step("verdict", "--json")[1])
        vcode = step("verify")[0]
    finally:
        if env_before is not None:
            os.environ["GITERA_SEAL_KEY"] = env_before
    conclusion = root / verdict["conclusion"]
    charts = sorted(str(root / p) for p in verdict["charts"] if p.endswith(".png"))
    decision = verdict["decision"]
    sentence = (conclusion.read_text().split("**")[1] if conclusion.exists() else decision["decision"])
    elapsed = time.time() - started
    out.result(
        {"repository": str(root), "decision": decision["decision"], "arm": decision["arm"], "conclusion": str(conclusion),
         "charts": charts, "verify_ok": vcode == 0, "seconds": round(elapsed, 1), "steps": steps},
        "\n".join([
            "",
            f"Decision: {sentence}",
            f"Conclusion: {conclusion}",
            "Charts:",
            *[f"  {c}" for c in charts],
            f"gitera verify: {'all checks pass' if vcode == 0 else 'VIOLATIONS (see above)'}",
            f"Demo finished in {elapsed:.0f} s. Explore it: cd {root} && gitera log && git log --stat",
        ]),
    )
    if keep is None and os.environ.get("GITERA_DEMO_CLEANUP") == "1":
        shutil.rmtree(root, ignore_errors=True)
    return 0 if vcode == 0 else 1


# --- gitera demo --kind run: the autoresearch-style loop (docs/run-level.md) ---------------------


def _setup_runs(root: Path) -> None:
    project = resources.files("gitera") / "demo_autoresearch"
    (root / "data").mkdir(parents=True, exist_ok=True)
    for name in ("train.py", "prepare.py", "propose.py", "data/train.txt", "data/val.txt", "data/test.txt", "data/gate.txt", "data/README.md"):
        (root / name).write_bytes((project / name).read_bytes())
    (root / "data" / "LICENSE").write_bytes((resources.files("gitera") / "example_data" / "LICENSE").read_bytes())
    # the held-out shards stay out of git: `gitera split` seals them and removes them from the work tree
    (root / ".gitignore").write_text("data/test.txt\ndata/gate.txt\n__pycache__/\n")
    (root / "README.md").write_text("A tiny character model of BANKING77 queries (gitera demo --kind run). Data: PolyAI, CC-BY-4.0.\n")
    _first_commit(root, "tiny character model: train.py, the locked prepare.py and the data")


def demo_runs(keep: Path | None, out: Output) -> int:
    """init → lock → split (seals the test and gate shards) → pilot → run → iterate --loop with the
    example's proposer (six attempts, two gates) → verdict → verify."""
    started = time.time()
    root = _root(keep)
    steps: list[dict[str, Any]] = []
    env_before = os.environ.pop("GITERA_SEAL_KEY", None)

    def step(*args: str, show: int = 4) -> tuple[int, str]:
        t = time.time()
        out.info(f"$ gitera {' '.join(args)}")
        code, text = _gitera(root, *args)
        steps.append({"command": "gitera " + " ".join(args), "exit": code, "seconds": round(time.time() - t, 2)})
        for line in text.strip().splitlines()[-show:] if show else []:
            out.info(f"    {line}")
        return code, text

    try:
        _setup_runs(root)
        out.info(f"Demo repository: {root}")
        step("init", "autoresearch")
        (root / ".gitera/autoresearch/frame.yaml").write_bytes((resources.files("gitera") / "demo_autoresearch" / "frame.yaml").read_bytes())
        step("lock")
        step("split")
        step("pilot")
        step("run", show=6)
        step("iterate", "--loop", "--propose", "python propose.py", show=3)
        step("log", show=14)
        verdict = json.loads(step("verdict", "--json", show=0)[1])
        vcode = step("verify", show=3)[0]
    finally:
        if env_before is not None:
            os.environ["GITERA_SEAL_KEY"] = env_before
    attempts = json.loads(_gitera(root, "log", "--format", "json")[1])["attempts"]
    conclusion = root / verdict["conclusion"]
    charts = sorted(str(root / p) for p in verdict["charts"] if p.endswith(".png"))
    sentence = conclusion.read_text().split("**")[1] if conclusion.exists() else verdict["decision"]["decision"]
    elapsed = time.time() - started
    runs = [f"#{a['iteration']} {a['status']} after {a['trials']} run{'s' if a['trials'] != 1 else ''}" for a in attempts]
    out.result(
        {"repository": str(root), "kind": "run", "decision": verdict["decision"]["decision"], "arm": verdict["decision"]["arm"],
         "conclusion": str(conclusion), "charts": charts, "verify_ok": vcode == 0, "seconds": round(elapsed, 1), "steps": steps,
         "attempts": [{"iteration": a["iteration"], "status": a["status"], "runs": a["trials"]} for a in attempts]},
        "\n".join(["", f"Decision: {sentence}", f"Attempts (training runs each cost): {'; '.join(runs)}",
                   f"Conclusion: {conclusion}", "Charts:", *[f"  {c}" for c in charts],
                   f"gitera verify: {'all checks pass' if vcode == 0 else 'VIOLATIONS (see above)'}",
                   f"Demo finished in {elapsed:.0f} s. Explore it: cd {root} && gitera log && git log --stat"]),
    )
    if keep is None and os.environ.get("GITERA_DEMO_CLEANUP") == "1":
        shutil.rmtree(root, ignore_errors=True)
    return 0 if vcode == 0 else 1
