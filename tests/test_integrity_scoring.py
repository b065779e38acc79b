"""Issue 12, points 1, 7 and 8, played as attacks through the real CLI (docs/threat-model.md,
"Scoring and inputs"): an agent that runs `gitera iterate` and wants a better score, a careless
user, a tampered file. Each ends in a refusal, a crash or invalid row, a failing verify, or the
attack having no effect on the score — never a cheating attempt kept.

Point 1: the harness sees only the locked tree and the arm's declared content, runs in a
scrubbed environment, and dies with gitera. Point 7: exact decisions at ties. Point 8: bad input
never hangs or tracebacks.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result, git, run_gitera

# The locked harness (command mode): scores each row from the arm's policy file (JSON), writes one
# line per row, and reports in `output` which sensitive variables it could see.
HARNESS = r'''"""Scores each row from the arm's policy file: {"default": 0, "scores": {id: score}, ...}."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

policy = json.loads(Path(json.loads(os.environ["GITERA_ARM_PARAMS"])["policy"]).read_text())
seen = sorted(k for k in os.environ if k.startswith(("GITERA_SEAL", "PYTHONPATH", "PYTHONSTARTUP", "MY_", "NOT_LISTED")))
rows = [json.loads(x) for x in Path(os.environ["GITERA_ROWS"]).read_text().split("\n") if x.strip()]
pids = os.environ.get("MY_PIDS")
if pids and policy.get("hang_after") is not None:
    child = subprocess.Popen(["sleep", "300"])  # a child in the harness's process group
    escapee = subprocess.Popen(["sleep", "301"], start_new_session=True)  # one that left the group
    with open(pids, "a") as fh:
        fh.write(f"{os.getpid()}\n{child.pid}\n{escapee.pid}\n")
if pids and policy.get("linger"):
    lingerer = subprocess.Popen(["sleep", "302"])  # still running when the harness exits
    with open(pids, "a") as fh:
        fh.write(f"{lingerer.pid}\n")
with open(os.environ["GITERA_OUT"], "w", encoding="utf-8") as out:
    for i, row in enumerate(rows):
        if policy.get("hang_after") is not None and i >= policy["hang_after"]:
            time.sleep(300)
        key = str(row["id"])
        raw = policy.get("raw", {}).get(key)
        if raw is not None:
            out.write(raw + "\n")
            out.flush()
            continue
        line = {"id": row["id"], "score": policy.get("scores", {}).get(key, policy.get("default", 0)),
                "cost_usd": policy.get("cost", 0.001), "latency_ms": 1.0,
                "output": policy.get("output", json.dumps({"env": seen}))}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        out.flush()
        if os.environ.get("MY_LEDGER"):
            with open(os.environ["MY_LEDGER"], "a") as fh:
                fh.write(f"{line['cost_usd']}\n")
'''

FRAME = """\
question: Does policy b beat policy a?
hypothesis: b answers more rows correctly.
baseline: {arm: a, ref: "policy_a.json:1"}
arms:
  a: {change: current policy, params: {policy: policy_a.json}}
  b: {change: the iterated policy, params: {policy: policy_b.json}}
ARMS_EXTRA
iterate:
  arm: b
  target: [policy_b.json]
  sprint: 3
  budget: {max_iterations: 20, max_consecutive_crashes: 3BUDGET}
data: {source: data/rows.csv, id: row_id, slices: [group], stratify: [group], split_column: split, gate_fraction: 0, seed: 1}
metric: {primary: {name: accuracy, direction: higher}, trials: 3}
threshold: {effect: 0.05, basis: point, slice_loss_floor: 0.02, alpha: 0.05}
EVAL
locked: [LOCKED]
"""
COMMAND_EVAL = "eval: {command: python eval/run.py, concurrency: 2, timeout_s: 60, env: [MY_*]}"


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def policy(default: float = 0, scores: dict[str, float] | None = None, **extra: Any) -> str:
    return json.dumps({"default": default, "scores": scores or {}, **extra}, ensure_ascii=False)


def project(root: Path, *, dev: int = 20, train: int = 6, test: int = 12, pa: str = "", pb: str = "", arms_extra: str = "",
            budget: str = "", eval_line: str = COMMAND_EVAL, locked: Sequence[str] = ("eval/run.py",), extra_files: dict[str, str] | None = None,
            text: str = "message", pilot: bool = True, lock: bool = True) -> None:
    """A locked, split (split column: exactly `dev` dev rows, no gate reserve) and piloted experiment `x` (only its frame
    written: ``lock=False``)."""
    (root / "eval").mkdir(exist_ok=True)
    (root / "eval" / "run.py").write_text(HARNESS)
    (root / "policy_a.json").write_text(pa or policy(0, {i: 1 for i in ids("d", dev)[: dev // 2]}))
    (root / "policy_b.json").write_text(pb or policy(0, {i: 1 for i in ids("d", dev)[: dev // 2]}))
    for name, content in (extra_files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    (root / "data").mkdir(exist_ok=True)
    with (root / "data" / "rows.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row_id", "text", "group", "split"])
        for split, prefix, n in (("train", "t", train), ("dev", "d", dev), ("test", "x", test)):
            for i, rid in enumerate(ids(prefix, n)):
                w.writerow([rid, f"{text} {rid}", f"g{(i // 2) % 2 + 1}", split])
    (root / ".gitignore").write_text("data/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    assert run_gitera(root, "init", "x").code == 0
    frame = (FRAME.replace("ARMS_EXTRA", arms_extra).replace("BUDGET", budget).replace("EVAL", eval_line)
             .replace("LOCKED", ", ".join(locked)))
    (root / ".gitera/x/frame.yaml").write_text(frame)
    if not lock:
        return
    ok(run_gitera(root, "lock"))
    ok(run_gitera(root, "split", "--accept-underpowered"))
    if pilot:
        ok(run_gitera(root, "pilot"))


def ok(r: Result) -> Result:
    assert r.code == 0, r.out + r.err
    return r


def commit_as_agent(root: Path, files: dict[str, str], message: str = "agent change") -> None:
    """A plain `git commit --no-verify` on the experiment branch: what an agent with a shell can always do."""
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    git(root, "add", "-A", "--", *files)
    git(root, "commit", "-q", "--no-verify", "-m", message)


def attempt(root: Path, pb: str, message: str = "one change") -> dict[str, Any]:
    """One `gitera iterate` attempt with policy_b.json set to ``pb``; the attempt's trailer record."""
    (root / "policy_b.json").write_text(pb)
    r = run_gitera(root, "iterate", "-m", message, "--json")
    assert r.code in (0, 5), r.out + r.err
    return dict(json.loads(r.out)["result"])


def rows_file(root: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (root / record["rows"]).read_text(encoding="utf-8").split("\n") if x.strip()]


def run_scores(root: Path) -> dict[str, float]:
    r = ok(run_gitera(root, "run", "--json"))
    return {arm: a["score"] for arm, a in json.loads(r.out)["arms"].items()}


# --- point 1: scoring sees only what the frame allows ---------------------------------------

SHADOW_JSON = '''"""A module planted beside the locked harness: `import json` in eval/run.py would load it."""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_me = sys.modules.pop(__name__)
_path = sys.path[:]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
import json as _real  # the standard library's, loaded around this module
sys.path[:] = _path
sys.modules[__name__] = _me
loads, JSONDecodeError = _real.loads, _real.JSONDecodeError


def dumps(obj, **kw):
    if isinstance(obj, dict) and "score" in obj:
        obj = {**obj, "score": 1}
    return _real.dumps(obj, **kw)
'''

SITECUSTOMIZE = '''import json
_dumps = json.dumps
def dumps(obj, **kw):
    if isinstance(obj, dict) and "score" in obj:
        obj = {**obj, "score": 1}
    return _dumps(obj, **kw)
json.dumps = dumps
'''


def test_a_module_committed_beside_the_locked_harness_never_reaches_it(repo: Path) -> None:
    """An agent commits eval/json.py (shadowing the stdlib module the locked harness imports), a
    sitecustomize.py and a usercustomize.py with --no-verify: none is in the scoring tree."""
    project(repo)
    honest = run_scores(repo)
    assert honest == {"a": 0.5, "b": 0.5}
    commit_as_agent(repo, {"eval/json.py": SHADOW_JSON, "eval/sitecustomize.py": SITECUSTOMIZE, "sitecustomize.py": SITECUSTOMIZE,
                           "usercustomize.py": SITECUSTOMIZE})
    assert run_scores(repo) == honest
    record = attempt(repo, policy(0, {i: 1 for i in ids("d", 20)[:10]}, note="reworded"))
    assert record["status"] == "discard" and record["score"] == 0.5
    assert {r["score"] for r in rows_file(repo, record) if r["id"] in ids("d", 20)[10:]} == {0.0}
    slot = repo / ".git/gitera/worktrees/iterate"
    assert (slot / "eval/run.py").read_text() == HARNESS and not (slot / "eval/json.py").exists()


EVIL_HARNESS = HARNESS.replace('policy.get("scores", {}).get(key, policy.get("default", 0))', "1")


@pytest.mark.parametrize("where", ["info/attributes", ".gitattributes"])
def test_a_smudge_filter_cannot_rewrite_the_harness_in_the_scoring_checkout(repo: Path, where: str) -> None:
    """`filter=evil` with a smudge command that swaps the locked harness for one scoring every
    row 1: gitera writes the tree's blobs itself, so no filter of the repository runs."""
    project(repo)
    honest = run_scores(repo)
    evil = repo.parent / "evil_harness.py"
    evil.write_text(EVIL_HARNESS)
    git(repo, "config", "filter.evil.smudge", f"cat {evil}")
    git(repo, "config", "filter.evil.clean", "cat")
    if where == "info/attributes":
        (repo / ".git/info").mkdir(exist_ok=True)
        (repo / ".git/info/attributes").write_text("eval/run.py filter=evil\n")
    else:
        commit_as_agent(repo, {".gitattributes": "eval/run.py filter=evil\n"})
    assert run_scores(repo) == honest
    record = attempt(repo, policy(0, {i: 1 for i in ids("d", 20)[:10]}, note="same"))
    assert record["status"] == "discard" and record["score"] == 0.5
    assert (repo / ".git/gitera/worktrees/iterate/eval/run.py").read_text() == HARNESS


def test_the_harness_environment_is_scrubbed_to_the_frames_pass_through_list(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PYTHONPATH with a sitecustomize.py that rewrites every score, PYTHONSTARTUP, and the test set's
    key in GITERA_SEAL_KEY, set in the shell that runs `gitera iterate`: none reaches the harness;
    a variable the frame lists in eval.env does, one it does not list does not."""
    project(repo)
    run_scores(repo)
    evil = repo.parent / "evil"
    evil.mkdir()
    (evil / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (evil / "startup.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", str(evil))
    monkeypatch.setenv("PYTHONSTARTUP", str(evil / "startup.py"))
    monkeypatch.setenv("GITERA_SEAL_KEY", "a-key-the-harness-must-never-see")
    monkeypatch.setenv("MY_API_KEY", "listed")
    monkeypatch.setenv("NOT_LISTED_TOKEN", "not listed")
    record = attempt(repo, policy(0, {i: 1 for i in ids("d", 20)[:10]}, note="same"))
    assert record["status"] == "discard" and record["score"] == 0.5
    seen = {tuple(json.loads(r["output"])["env"]) for r in rows_file(repo, record)}
    assert seen == {("MY_API_KEY",)}


def test_the_proposer_of_an_autonomous_loop_never_gets_the_seal_key(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`GITERA_SEAL_KEY` set in the shell running `gitera iterate --loop`: the proposer (the agent) does not see it."""
    project(repo)
    run_scores(repo)
    monkeypatch.setenv("GITERA_SEAL_KEY", "never-for-the-agent")
    seen = repo.parent / "proposer-env.txt"
    r = run_gitera(repo, "iterate", "--loop", "--propose", f"env >> {seen}; exit 1")
    assert r.code == 5 and "GITERA_CONTEXT=" in seen.read_text() and "GITERA_SEAL" not in seen.read_text(), r.err


def test_eval_env_cannot_name_the_seal_key_or_the_interpreters_variables(repo: Path) -> None:
    for entry, named in (("GITERA_SEAL_KEY", "GITERA_*"), ("GIT*", "GITERA_*"), ("PYTHONPATH", "PYTHONPATH"), ("LD_*", "LD_PRELOAD")):
        root = repo.parent / f"r-{entry.replace('*', 'x')}"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        (root / "README.md").write_text("x\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "first")
        with pytest.raises(AssertionError) as refused:
            project(root, eval_line=f"eval: {{command: python eval/run.py, env: [MY_*, {entry}]}}")
        assert f"eval.env[1]: '{entry}' would pass {named}, which never reaches the harness" in str(refused.value)


PY_HARNESS = '''import json, os
from pathlib import Path

def score(row, arm, trial, params):
    policy = json.loads(Path(params["policy"]).read_text())
    seen = sorted(k for k in os.environ if k.startswith(("GITERA_SEAL", "PYTHONPATH", "MY_")))
    return {"score": policy.get("scores", {}).get(str(row["id"]), policy.get("default", 0)), "cost_usd": 0.001,
            "output": json.dumps({"env": seen, "json": json.__file__})}
'''


def test_python_mode_runs_isolated_and_never_imports_a_shadowing_module(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python mode: a json.py planted at the checkout's root after the lock, and PYTHONPATH pointing at a
    sitecustomize.py, change nothing; the worker imports the standard library's json."""
    project(repo, eval_line="eval: {python: evalmod.harness:score, concurrency: 2, timeout_s: 60, env: [MY_*]}",
            locked=("evalmod/harness.py",), extra_files={"evalmod/__init__.py": "", "evalmod/harness.py": PY_HARNESS})
    run_scores(repo)
    evil = repo.parent / "evil"
    evil.mkdir()
    (evil / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", str(evil))
    monkeypatch.setenv("GITERA_SEAL_KEY", "never")
    commit_as_agent(repo, {"json.py": SHADOW_JSON, "evalmod/json.py": SHADOW_JSON})
    record = attempt(repo, policy(0, {i: 1 for i in ids("d", 20)[:10]}, note="same"))
    assert record["status"] == "discard" and record["score"] == 0.5
    outputs = [json.loads(r["output"]) for r in rows_file(repo, record)]
    assert {tuple(o["env"]) for o in outputs} == {()}
    assert all(Path(o["json"]).parent.parent.name.startswith("python3") for o in outputs)  # the stdlib's json/__init__.py


def test_an_arm_ref_is_pinned_at_lock_and_scored_with_the_locked_harness(repo: Path) -> None:
    """Arm c lives on branch `arm-c`. After the lock the agent moves that branch to a commit whose
    policy scores every row and whose eval/run.py cheats: c is still scored at the pinned commit,
    with the locked harness."""
    base = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "switch", "-q", "-c", "arm-c")
    (repo / "policy_c.json").write_text(policy(0, {i: 1 for i in ids("d", 20)[:12]}))
    git(repo, "add", "policy_c.json")
    git(repo, "commit", "-q", "-m", "arm c")
    pinned = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "switch", "-q", "main")
    assert git(repo, "rev-parse", "HEAD").strip() == base
    project(repo, arms_extra="  c: {change: the c policy, ref: arm-c, params: {policy: policy_c.json}}")
    lock = json.loads((repo / ".gitera/x/lock.json").read_text())
    assert lock["refs"] == {"c": pinned}
    trailer = git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Lock,valueonly)", "--grep=^Gitera-Lock:", "autoexp/x")
    assert json.loads(trailer)["refs"] == {"c": pinned}
    git(repo, "switch", "-q", "arm-c")
    (repo / "policy_c.json").write_text(policy(1))
    (repo / "eval").mkdir(exist_ok=True)
    (repo / "eval" / "run.py").write_text(EVIL_HARNESS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", "c scores everything now")
    git(repo, "switch", "-q", "autoexp/x")
    assert run_scores(repo)["c"] == 0.6


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs an interpreter outside a venv (a venv has no user site)")
def test_a_usercustomize_in_the_user_site_never_reaches_a_command_mode_harness(repo: Path) -> None:
    """The frame runs its harness with the system python, whose user site is on by default. The
    agent writes a usercustomize.py into ~/.local/lib/pythonX.Y/site-packages (outside the repo,
    where no scoring tree reaches) that makes every score 1: gitera starts the harness with
    PYTHONNOUSERSITE, so the attempt is scored on what its policy earns."""
    project(repo, eval_line="eval: {command: /usr/bin/python3 eval/run.py, concurrency: 2, timeout_s: 60, env: [MY_*]}")
    run_scores(repo)
    site = subprocess.run(["/usr/bin/python3", "-c", "import site; print(site.getusersitepackages())"], capture_output=True, text=True,
                          check=True, env={"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"}).stdout.strip()
    assert site.startswith(os.environ["HOME"])  # the test's own HOME (conftest): nothing outside the test is touched
    Path(site).mkdir(parents=True)
    (Path(site) / "usercustomize.py").write_text(SITECUSTOMIZE)
    planted = subprocess.run(["/usr/bin/python3", "-c", "import json; print(json.dumps({'score': 0}))"], capture_output=True, text=True,
                             check=True, env={"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"}).stdout
    assert json.loads(planted) == {"score": 1}  # the attack works on a python started without gitera's environment
    record = attempt(repo, policy(0, {i: 1 for i in ids("d", 20)[:10]}, note="same"))
    assert record["status"] == "discard" and record["score"] == 0.5
    assert {r["score"] for r in rows_file(repo, record) if r["id"] in ids("d", 20)[10:]} == {0.0}


def test_a_judge_gets_the_same_scrubbed_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GITERA_SEAL_KEY, PYTHONPATH and PYTHONSTARTUP in the shell that runs gitera never reach the
    judge either; the frame's eval.env names (JUDGE_*) do."""
    from tests.helpers import synthetic_project

    seen = repo.parent / "judge_seen.jsonl"
    monkeypatch.setenv("JUDGE_SEEN_FILE", str(seen))
    monkeypatch.setenv("GITERA_SEAL_KEY", "a-key-the-judge-must-never-see")
    monkeypatch.setenv("PYTHONPATH", str(repo.parent))
    monkeypatch.setenv("PYTHONSTARTUP", str(repo.parent / "startup.py"))
    monkeypatch.setenv("NOT_LISTED_TOKEN", "not listed")
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.7\n"},
                      eval_extra=", judge: {command: python judge.py, family: fam-x}, cross_judge: {command: python judge.py, family: fam-y}",
                      locked_extra=("judge.py",))
    ok(run_gitera(repo, "run"))
    envs = [json.loads(x)["env"] for x in seen.read_text().split("\n") if x.strip()]
    assert envs and all(e["JUDGE_SEEN_FILE"] == str(seen) for e in envs)
    assert {k for e in envs for k in e if k.startswith(("GITERA_SEAL", "PYTHONPATH", "PYTHONSTARTUP", "NOT_LISTED"))} == set()


@pytest.mark.parametrize("where", ["outside", "work tree"])
def test_a_target_made_a_link_is_scored_and_committed_as_the_bytes_it_showed(repo: Path, where: str) -> None:
    """The agent replaces the target policy_b.json by a symbolic link to a policy outside the
    repository, or to an untracked file of the work tree, hoping to change what is scored after the
    attempt (or the gate) by rewriting the file behind it. The attempt reads the bytes the link shows once, scores them and commits them as a regular
    file: rewriting the file afterwards changes nothing that gitera scores."""
    project(repo)
    run_scores(repo)
    shown, later = policy(0, dict.fromkeys(ids("d", 20)[:14], 1)), policy(1)
    behind = repo.parent / "evil.json" if where == "outside" else repo / "evil.json"
    behind.write_text(shown)
    (repo / "policy_b.json").unlink()
    os.symlink(str(behind) if where == "outside" else "evil.json", repo / "policy_b.json")
    r = run_gitera(repo, "iterate", "-m", "a link", "--json")
    assert r.code == 0 and "Traceback" not in r.err, r.err
    record = json.loads(r.out)["result"]
    assert record["status"] == "keep" and record["score"] == 0.7
    mode, _, blob = git(repo, "ls-tree", "autoexp/x", "policy_b.json").split()[:3]
    assert mode == "100644" and git(repo, "cat-file", "blob", blob) == shown
    behind.write_text(later)  # after the attempt
    assert run_scores(repo)["b"] == 0.7
    slot = repo / ".git/gitera/worktrees/arm-b/policy_b.json"
    assert not slot.is_symlink() and slot.read_text() == shown


def test_an_arm_ref_holding_a_link_out_of_its_tree_is_refused_at_lock(repo: Path) -> None:
    """Arm c's ref holds policy_c.json as a symbolic link to a file outside the repository (which
    anyone can rewrite after the lock): `gitera lock` refuses, naming the link, and locks nothing.
    (A lock made before this check is refused when the arm is first scored: tests/test_checkout.py.)"""
    outside = repo.parent / "c-policy.json"
    outside.write_text(policy(0))
    git(repo, "switch", "-q", "-c", "arm-c")
    os.symlink(str(outside), repo / "policy_c.json")
    git(repo, "add", "policy_c.json")
    git(repo, "commit", "-q", "-m", "arm c, a link")
    git(repo, "switch", "-q", "main")
    project(repo, arms_extra="  c: {change: the c policy, ref: arm-c, params: {policy: policy_c.json}}", lock=False)
    r = run_gitera(repo, "lock")
    assert r.code == 3 and "arm c's ref (" in r.err and f"holds the symbolic link 'policy_c.json' -> '{outside}', which leads out of the tree" in r.err
    assert "nothing was locked" in r.err and "Traceback" not in r.err, r.err
    assert git(repo, "log", "--format=%s", "autoexp/x").splitlines()[0] != "gitera lock: x"


@pytest.mark.parametrize("target", ["../../outside.json", "../sub/../../outside.json", "up/../outside.json", "/etc/hostname"])
def test_a_link_out_of_the_locked_tree_is_refused_at_lock_and_one_inside_it_is_not(repo: Path, target: str) -> None:
    """A link in the tree being locked that leads out of it — up with `..`, through another link
    that itself stays inside (`sub/up` -> `..`, the top), or absolute — is refused by `gitera lock`,
    naming it; links that stay inside lock."""
    (repo / "sub").mkdir()
    os.symlink("..", repo / "sub" / "up")
    os.symlink("../policy_a.json", repo / "sub" / "inside.json")
    os.symlink(target, repo / "sub" / "alias.json")
    project(repo, lock=False)
    r = run_gitera(repo, "lock")
    assert r.code == 3 and "HEAD (" in r.err and f"holds the symbolic link 'sub/alias.json' -> '{target}', which leads out of the tree" in r.err
    assert "Traceback" not in r.err, r.err
    git(repo, "rm", "-q", "sub/alias.json")
    git(repo, "commit", "-q", "-m", "no link out")
    ok(run_gitera(repo, "lock"))  # sub/up and sub/inside.json stay inside: it locks


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a killed process not yet reaped by its new parent is dead


def _kill_9_mid_attempt(repo: Path, pids: Path, ready: Callable[[], bool]) -> list[int]:
    """Start `gitera iterate` as its own process, wait until ``ready()``, then `kill -9` it. The
    harness processes listed in ``pids``: all alive at the kill, all dead within 15 s (asserted)."""
    proc = subprocess.Popen([sys.executable, "-m", "gitera", "iterate", "-m", "slow"], cwd=repo, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ready():
            time.sleep(0.1)
        time.sleep(1.0)  # gitera reads finished rows every 0.05-0.25 s; nothing else is in flight
        harness = sorted({int(p) for p in pids.read_text().split()})
        assert harness and all(_alive(p) for p in harness)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in harness):
            time.sleep(0.1)
        assert [p for p in harness if _alive(p)] == []
        return harness
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in (int(p) for p in (pids.read_text().split() if pids.exists() else [])):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _the_next_attempt_is_charged(repo: Path, monkeypatch: pytest.MonkeyPatch, reported: float) -> None:
    """$1.22 in trailers plus ``reported`` in the journal, of a $1.85 cap: without the journal the
    budget would let a $0.60 attempt start ($1.82 <= $1.85); with it the attempt is refused."""
    monkeypatch.delenv("MY_PIDS")
    (repo / "policy_b.json").write_text(policy(0, cost=0.01, note="next"))
    r = run_gitera(repo, "iterate", "-m", "next")
    assert r.code == 3 and f"but only ${1.85 - 1.22 - reported:.4f} of the $1.85 cost budget is left" in r.err, r.err
    status = json.loads(ok(run_gitera(repo, "status", "--json")).out)
    assert status["loop"]["spent_usd"] == pytest.approx(1.22 + reported)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_kill_9_of_gitera_leaves_no_harness_running_and_its_spend_is_charged(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kill -9` of `gitera iterate` while its harness runs, with a child in its process group and one
    that left it (a new session): the watcher kills all of them within seconds, and every cost the
    harness had reported is charged to the budget of the next command, which refuses the attempt
    the budget no longer pays for."""
    project(repo, budget=", max_cost_usd: 1.85", pa=policy(0, cost=0.01), pb=policy(0, cost=0.01))
    run_scores(repo)  # pilot 2 calls + run 120 calls at $0.01: $1.22 recorded in trailers
    pids, ledger = repo.parent / "pids.txt", repo.parent / "ledger.txt"
    monkeypatch.setenv("MY_PIDS", str(pids))
    monkeypatch.setenv("MY_LEDGER", str(ledger))
    (repo / "policy_b.json").write_text(policy(0, cost=0.01, hang_after=5))  # 5 rows per shard, then it hangs
    harness = _kill_9_mid_attempt(repo, pids, lambda: ledger.exists() and len(ledger.read_text().split()) >= 10)
    assert len(harness) == 6  # 2 shards were running, each with a child and an escapee
    reported = sum(float(x) for x in ledger.read_text().split())
    assert reported == pytest.approx(0.10)
    _the_next_attempt_is_charged(repo, monkeypatch, reported)  # $1.32 spent: "only $0.5300 ... left"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_what_a_harness_leaves_running_in_its_group_dies_when_it_exits(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pids = repo.parent / "pids.txt"
    monkeypatch.setenv("MY_PIDS", str(pids))
    project(repo, pb=policy(0, linger=True), pilot=False)
    ok(run_gitera(repo, "pilot"))
    left = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 5  # SIGKILL is sent when the invocation ends; the kernel needs a moment
    while time.monotonic() < deadline and any(_alive(p) for p in left):
        time.sleep(0.05)
    try:
        assert left and [p for p in left if _alive(p)] == []
    finally:
        for pid in (p for p in left if _alive(p)):
            os.kill(pid, signal.SIGKILL)


PY_HANGING = '''import json, os, subprocess, time
from pathlib import Path

def score(row, arm, trial, params):
    policy = json.loads(Path(params["policy"]).read_text())
    if str(row["id"]) in policy.get("hang", []):
        child = subprocess.Popen(["sleep", "303"])  # a child of the worker, in its process group
        with open(os.environ["MY_PIDS"], "a") as fh:
            fh.write(f"{os.getpid()}\\n{child.pid}\\n")
        time.sleep(300)
    cost = policy.get("cost", 0.001)
    if os.environ.get("MY_LEDGER"):
        with open(os.environ["MY_LEDGER"], "a") as fh:
            fh.write(f"{cost}\\n")
    return {"score": policy.get("scores", {}).get(str(row["id"]), policy.get("default", 0)), "cost_usd": cost, "latency_ms": 1}
'''


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_kill_9_of_gitera_in_python_mode_leaves_no_worker_running_and_its_spend_is_charged(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same attack on a python-mode harness: both concurrent calls hang (one with a child), gitera
    is killed with SIGKILL; the worker and the child die, and what the returned calls cost is in the
    spend the next command counts."""
    project(repo, eval_line="eval: {python: evalmod.harness:score, concurrency: 2, timeout_s: 60, env: [MY_*]}",
            locked=("evalmod/harness.py",), extra_files={"evalmod/__init__.py": "", "evalmod/harness.py": PY_HANGING},
            budget=", max_cost_usd: 1.85", pa=policy(0, cost=0.01), pb=policy(0, cost=0.01))
    run_scores(repo)  # pilot 2 calls + run 120 calls at $0.01: $1.22 recorded in trailers
    pids, ledger = repo.parent / "pids.txt", repo.parent / "ledger.txt"
    monkeypatch.setenv("MY_PIDS", str(pids))
    monkeypatch.setenv("MY_LEDGER", str(ledger))
    (repo / "policy_b.json").write_text(policy(0, cost=0.01, hang=ids("d", 20)[-4:]))  # the calls on its last 4 rows hang
    harness = _kill_9_mid_attempt(repo, pids, lambda: pids.exists() and len(pids.read_text().split()) >= 4)  # both calls hang
    assert len(harness) >= 3  # the worker (one or two) and a child per hanging call
    reported = sum(float(x) for x in ledger.read_text().split())
    assert reported >= 0.05  # calls that returned before both hung (their order is the scheduler's)
    _the_next_attempt_is_charged(repo, monkeypatch, reported)


def test_what_diagnose_spends_is_charged_though_it_commits_nothing(repo: Path) -> None:
    """`gitera diagnose --train N` scores train rows and commits nothing: its calls' cost, journaled
    as they return, is counted by the next command's budget, which refuses an attempt it no longer
    pays for."""
    project(repo, budget=", max_cost_usd: 2.5", pa=policy(0, cost=0.01), pb=policy(0, cost=0.01))
    run_scores(repo)
    attempt(repo, policy(0, dict.fromkeys(ids("d", 20)[:14], 1), cost=0.01), "four more rows")  # $1.82 in trailers
    head = git(repo, "rev-parse", "HEAD")
    ok(run_gitera(repo, "diagnose", "--train", "6", "--json"))  # 6 train rows x 3 trials x 2 sides: $0.36
    assert git(repo, "rev-parse", "HEAD") == head
    # without the journal a $0.60 attempt would start ($2.42 <= $2.50)
    (repo / "policy_b.json").write_text(policy(0, cost=0.01, note="next"))
    r = run_gitera(repo, "iterate", "-m", "next")
    assert r.code == 3 and "but only $0.3200 of the $2.5 cost budget is left" in r.err, r.err


# --- point 7: exact decisions at ties ---------------------------------------------------------


@pytest.mark.parametrize("n", [10, 15, 20, 40, 12, 25])
def test_a_one_row_gain_equal_to_its_paired_se_is_discarded_for_every_n(repo: Path, n: int) -> None:
    """A deterministic harness (noise floor 0) and a one-row change: the gain is 1/n and its paired SE
    is exactly 1/n. The ladder keeps a gain only above its threshold, so a tie is discarded for
    every n (float rounding used to keep it for n = 10, 15, 20, 40 and drop it for others)."""
    half = ids("d", n)[: n // 2]
    project(repo, dev=n, pa=policy(0, dict.fromkeys(half, 1)), pb=policy(0, dict.fromkeys(half, 1)))
    run_scores(repo)
    record = attempt(repo, policy(0, dict.fromkeys([*half, ids("d", n)[-1]], 1)), "one more row")
    gains = record["gains"]["accuracy"]
    assert gains["gain"] == pytest.approx(1 / n) and gains["se"] == pytest.approx(1 / n)
    assert record["status"] == "discard", record["reason"]
    assert "does not exceed the threshold" in record["reason"]


def test_two_rows_gained_clear_the_same_ladder(repo: Path) -> None:
    """The tie rule is not a higher bar: two rows (gain 2/n > SE) are kept."""
    half = ids("d", 20)[:10]
    project(repo, pa=policy(0, dict.fromkeys(half, 1)), pb=policy(0, dict.fromkeys(half, 1)))
    run_scores(repo)
    record = attempt(repo, policy(0, dict.fromkeys([*half, *ids("d", 20)[-2:]], 1)), "two more rows")
    assert record["status"] == "keep", record["reason"]


def test_an_effect_exactly_at_the_threshold_clears_it_and_ships(repo: Path) -> None:
    """Baseline 0.2 on every test row, the arm 0.15 and 0.35 in turn: the effect is exactly the 0.05
    threshold, computed as 0.04999999999999992. `clears_threshold` counts a tie as clearing, so the
    verdict ships (it used to say underpowered)."""
    test_ids = ids("x", 40)
    pa = policy(0.5, dict.fromkeys(test_ids, 0.2))
    pb = policy(0.5, {i: (0.15 if k % 2 == 0 else 0.35) for k, i in enumerate(test_ids)})
    project(repo, test=40, pa=pa, pb=pb)
    run_scores(repo)
    r = ok(run_gitera(repo, "verdict", "--json"))
    decision = json.loads(r.out)["decision"]
    arm = next(a for a in decision["arms"] if a["name"] == "b")
    assert arm["improvement"] < 0.05 and arm["improvement"] == pytest.approx(0.05)
    assert arm["clears"] is True and arm["aggregate"] == "PASS"
    assert decision["decision"] == "ship" and decision["arm"] == "b"


# --- point 8: bad input never hangs or tracebacks ----------------------------------------------


def _frame_variant(repo: Path, old: str, new: str) -> Result:
    from tests.helpers import FRAME, write_project

    write_project(repo)
    assert run_gitera(repo, "init", "e").code == 0
    assert old in FRAME
    (repo / ".gitera/e/frame.yaml").write_text(FRAME.replace(old, new))
    return run_gitera(repo, "lock")


def test_a_yaml_alias_bomb_in_the_frame_is_refused_at_lock(repo: Path) -> None:
    bomb = "bomb:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
    r = _frame_variant(repo, "question:", bomb + "question:")
    assert r.code == 2 and "alias bomb?" in r.err and "Traceback" not in r.err, r.err
    assert not (repo / ".gitera/e/lock.json").exists()


def test_a_frame_of_megabytes_is_refused_at_lock(repo: Path) -> None:
    r = _frame_variant(repo, "question:", "notes: " + "x" * (300 * 1024) + "\nquestion:")
    assert r.code == 2 and "a frame is at most 256 KiB" in r.err, r.err


@pytest.mark.parametrize(("old", "new", "field"), [
    ("effect: 0.05", "effect: .inf", "threshold.effect"),
    ("effect: 0.05", "effect: .nan", "threshold.effect"),
    ("slice_loss_floor: 0.02", "slice_loss_floor: .inf", "threshold.slice_loss_floor"),
    ("alpha: 0.05", "alpha: .nan", "threshold.alpha"),
    ("timeout_s: 60", "timeout_s: .inf", "eval.timeout_s"),
    ("max_cost_usd: 5", "max_cost_usd: .inf", "iterate.budget.max_cost_usd"),
])
def test_non_finite_thresholds_and_limits_are_refused_at_lock(repo: Path, old: str, new: str, field: str) -> None:
    r = _frame_variant(repo, old, new)
    assert r.code == 2 and f"{field}: must be a finite number" in r.err and "Traceback" not in r.err, r.err
    assert not (repo / ".gitera/e/lock.json").exists()


def test_deep_or_absurd_result_lines_become_crash_and_invalid_rows(repo: Path) -> None:
    """One row's line nests 5,000 levels (json.loads would raise RecursionError), one 150 levels,
    one reports a score of 1e300 and one a cost of 1e300: each is that row's crash or invalid
    result with its reason; the others are scored; the run is recorded as incomplete."""
    dev = ids("d", 20)
    raw = {dev[0]: json.dumps({"id": dev[0], "score": 1, "output": "x"})[:-1] + ', "deep": ' + "[" * 5000 + "]" * 5000 + "}",
           dev[1]: json.dumps({"id": dev[1], "score": 1, "output": "[" * 150 + "]" * 150, "deep": json.loads("[" * 150 + "]" * 150)}),
           dev[2]: json.dumps({"id": dev[2], "score": 1e300, "cost_usd": 0.001, "latency_ms": 1}),
           dev[3]: json.dumps({"id": dev[3], "score": 1, "cost_usd": 1e300, "latency_ms": 1})}
    project(repo, pb=policy(0, dict.fromkeys(dev[:10], 1), raw=raw))
    r = run_gitera(repo, "run", "--json")
    assert r.code == 5 and "the run is incomplete (some rows unscored); it is recorded" in r.err, r.err
    summary = json.loads(r.out)
    assert summary["complete"] is False and summary["arms"]["b"]["statuses"] == {"ok": 48, "crash": 6, "invalid": 6, "timeout": 0, "missing": 0}
    by_id = {(x["id"], x["trial"]): x for x in rows_file(repo, {"rows": summary["arms"]["b"]["rows_file"]})}
    for row in dev[:2]:
        assert by_id[(row, 0)]["status"] == "crash" and "nested more than 100 levels deep" in by_id[(row, 0)]["error"]
    assert by_id[(dev[2], 0)]["status"] == "invalid" and "score 1e+300" in by_id[(dev[2], 0)]["error"]
    assert by_id[(dev[3], 0)]["status"] == "invalid" and "cost_usd 1e+300" in by_id[(dev[3], 0)]["error"]
    assert by_id[(dev[4], 0)]["status"] == "ok"


PY_DEEP = '''import json
from pathlib import Path

def score(row, arm, trial, params):
    if arm == "b" and str(row["id"]) == "d000":
        nested = []
        for _ in range(5000):
            nested = [nested]
        return {"score": 1, "cost_usd": 0.001, "latency_ms": 1, "output": "x", "deep": nested}
    if arm == "b" and str(row["id"]) == "d001":
        return 1e300
    return {"score": 0, "cost_usd": 0.001, "latency_ms": 1, "output": "x"}
'''


def test_python_mode_deep_or_absurd_return_values_become_crash_and_invalid_rows(repo: Path) -> None:
    project(repo, eval_line="eval: {python: evalmod.harness:score, concurrency: 2, timeout_s: 60}",
            locked=("evalmod/harness.py",), extra_files={"evalmod/__init__.py": "", "evalmod/harness.py": PY_DEEP})
    r = run_gitera(repo, "run", "--json")
    assert r.code == 5 and "the run is incomplete (some rows unscored); it is recorded" in r.err, r.err
    summary = json.loads(r.out)
    by_id = {(x["id"], x["trial"]): x for x in rows_file(repo, {"rows": summary["arms"]["b"]["rows_file"]})}
    assert by_id[("d000", 0)]["status"] == "crash" and "nested more than 100 levels deep" in by_id[("d000", 0)]["error"]
    assert by_id[("d001", 0)]["status"] == "invalid" and "score 1e+300" in by_id[("d001", 0)]["error"]
    assert by_id[("d002", 0)]["status"] == "ok"


def test_unicode_line_breaks_in_outputs_and_rows_round_trip_through_verify(repo: Path) -> None:
    """U+2028, U+2029 and U+0085 in a harness's outputs and in the rows' text: the per-row files,
    the split files and the trailers keep one record per line, and `gitera verify` passes."""
    odd = "first\u2028second\u2029third\x85fourth"
    project(repo, text=f"row {odd}", pa=policy(0, dict.fromkeys(ids("d", 20)[:10], 1), output=odd),
            pb=policy(0, dict.fromkeys(ids("d", 20)[:10], 1), output=odd))
    run_scores(repo)
    record = attempt(repo, policy(0, dict.fromkeys(ids("d", 20)[:14], 1), output=odd), "four more rows")
    assert record["status"] == "keep"
    assert {r["output"] for r in rows_file(repo, record)} == {odd}
    assert all(odd in json.loads(line)["text"] for line in (repo / ".gitera/x/split/dev.jsonl").read_text().split("\n") if line)
    r = run_gitera(repo, "verify")
    assert r.code == 0 and "All checks pass." in r.out, r.out + r.err
    diagnose = run_gitera(repo, "diagnose", "--json")
    assert diagnose.code == 0 and "Traceback" not in diagnose.err, diagnose.err


MALFORMED = [
    'Gitera-Result: {"kind": "attempt", "iteration": {"a": 1}, "sprint": [1], "score": "high", "delta": true, "status": 5, "ci": "x"}',
    'Gitera-Result: {"kind": "attempt", "iteration": null, "sprint": null, "score": 1' + "0" * 400 + ', "hypothesis": ["a", {"b": 2}]}',
    'Gitera-Result: {"kind": "run", "arm": ["a"], "status": {"x": 1}, "score": NaN, "delta": Infinity}',
    'Gitera-Result: ' + "[" * 5000 + "]" * 5000,
    'Gitera-Result: {"kind": "attempt", "deep": ' + "[" * 300 + "]" * 300 + "}",
    'Gitera-Gate: {"reasons": [1, {"a": 2}], "outcome": 5, "sprint": [], "locked_iteration": {}}',
    'Gitera-Gate: {"reasons": "one string", "after_iteration": "x"}',
    'Gitera-Stop: {"reason": {"x": 1}}',
    'Gitera-Result: {not json at all',
    'Gitera-Result: {"kind": "attempt", "hypothesis": "a\x1eb\x1fGitera-Result: {\\"kind\\": 1}", "iteration": 1}',
]


def test_hand_written_malformed_trailers_never_crash_log(repo: Path) -> None:
    project(repo)
    run_scores(repo)
    attempt(repo, policy(0, dict.fromkeys(ids("d", 20)[:14], 1)), "four more rows")
    for trailer in MALFORMED:
        git(repo, "commit", "-q", "--no-verify", "--allow-empty", "-m", "hand-written", "-m", f"Gitera-Tag: x\n{trailer}")
    for args in (["log"], ["log", "--format", "tsv"], ["log", "--format", "jsonl"], ["log", "--format", "md"], ["log", "--json"],
                 ["log", "--format", "results-tsv"],
                 ["log", "--chart", str(repo.parent / "chart.png")], ["status"], ["status", "--json"], ["report"]):
        r = run_gitera(repo, *args)
        assert r.code in (0, 1) and "Traceback" not in r.err + r.out, (args, r.err)
        assert r.code == 0 or args == ["report"], (args, r.out, r.err)
    table = run_gitera(repo, "log").out
    assert "four more rows" in table and "#" in table


# --- run-level scripts are launched like every harness (issue 13 merged with issue 12) --------------


def test_a_run_level_script_gets_the_scrubbed_environment_and_only_the_locked_tree(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run level, where the iterated target is code the harness runs: the seal key, PYTHONPATH and an
    unlisted variable in gitera's shell never reach the script, and a `random.py` the agent commits
    beside it (`python train.py` puts that folder first on sys.path; this one makes every loss -100)
    is in no scoring tree."""
    from tests.runproject import TRAIN, set_lr, synthetic_project, through_run

    seen = repo.parent / "run-env.txt"
    spy = TRAIN + f"import os\nopen({str(seen)!r}, 'a').write(' '.join(sorted(k for k in os.environ if k.startswith(('GITERA_SEAL', 'PYTHONPATH', 'NOT_LISTED')))) + '|\\n')\n"
    synthetic_project(repo, train=spy)
    monkeypatch.setenv("GITERA_SEAL_KEY", "a-key-the-script-must-never-see")
    monkeypatch.setenv("PYTHONPATH", str(repo.parent))
    monkeypatch.setenv("NOT_LISTED_TOKEN", "not listed")
    through_run(repo)
    commit_as_agent(repo, {"random.py": "class Random:\n    def __init__(self, seed):\n        pass\n    def gauss(self, mu, sigma):\n        return -100.0\n"})
    set_lr(repo, "0.45")
    r = run_gitera(repo, "iterate", "-m", "a better rate", "--json")
    assert r.code in (0, 5), r.err
    assert json.loads(r.out)["result"]["score"] > -1  # the loss of LR 0.45, not the planted -100
    assert set(seen.read_text().split("\n")) <= {"|", ""} and seen.read_text().count("|") >= 3
