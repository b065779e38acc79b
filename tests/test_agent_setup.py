"""`gitera init --agent` (issue 13): program.md and an AGENTS.md section, short and generated from the
frame, telling a coding agent the loop — and everything they tell it to read exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project


def test_init_agent_writes_the_loop_from_the_drafted_frame_and_keeps_the_users_agents_md(repo: Path) -> None:
    (repo / "AGENTS.md").write_text("# House rules\n\nRun the linters before committing.\n")
    (repo / "train.py").write_text("print('val_bpb: 1.0')\n")
    (repo / "prepare.py").write_text("# the fixed evaluation\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a training project")
    r = run_gitera(repo, "init", "bpb", "--agent", "-q", "Does a wider MLP lower val_bpb?", "--target", "train.py",
                   "--locked", "prepare.py", "--eval-command", "python prepare.py", "--metric", "val_bpb", "--direction", "lower")
    assert r.code == 0, r.err
    program = (repo / ".gitera/bpb/program.md").read_text()
    assert "Only `train.py`. One change per attempt." in program
    assert "runs `python prepare.py` on the dev rows (3 trials)" in program and "the best val_bpb so far (lower is better)" in program
    assert "Never edit `.gitera/bpb/frame.yaml`, `.gitera/bpb/lock.json`, `prepare.py`: they are locked." in program
    assert "Never run `gitera verdict`" in program and len(program.splitlines()) <= 40
    agents = (repo / "AGENTS.md").read_text()
    assert agents.startswith("# House rules\n\nRun the linters before committing.\n\n<!-- gitera:bpb begin")
    assert "edit only `train.py`; run `gitera iterate -m \"HYPOTHESIS\"`; read `gitera status --json`" in agents
    assert git(repo, "status", "--porcelain").strip() == ""  # both committed with the experiment's first commit
    assert "AGENTS.md" in git(repo, "show", "--name-only", "--format=", "HEAD")


def test_init_agent_regenerates_from_the_locked_frame_and_what_it_names_exists(repo: Path) -> None:
    synthetic_project(repo, rows=150)
    (repo / "AGENTS.md").write_text("Keep it short.\n\n<!-- gitera:other begin (x) -->\nold experiment\n<!-- gitera:other end -->\n")
    git(repo, "add", "AGENTS.md")
    git(repo, "commit", "-qm", "agents file")
    r = run_gitera(repo, "init", "--agent")
    assert r.code == 0 and "point your coding agent at .gitera/syn/program.md" in r.out, r.out + r.err
    program = (repo / ".gitera/syn/program.md").read_text()
    assert "Only `policy_b.txt`." in program and "`python harness.py`" in program and "`harness.py`: they are locked" in program
    assert "counts the\n   attempts of 30" in program and "Every 3 attempts the generalization gate" in program
    agents = (repo / "AGENTS.md").read_text()
    assert agents.startswith("Keep it short.\n\n<!-- gitera:other begin (x) -->\nold experiment\n<!-- gitera:other end -->\n")
    assert agents.count("<!-- gitera:syn begin") == 1
    r = run_gitera(repo, "init", "--agent")
    assert r.code == 0 and "already match the frame" in r.out  # nothing changed: no commit
    assert run_gitera(repo, "verify").code == 0

    # an agent follows the program: every `status --json` field it names is really there
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    assert run_gitera(repo, "iterate", "-m", "as the program says").code == 0
    status = json.loads(run_gitera(repo, "status", "--json").out)
    fields = set(re.findall(r"`((?:loop|stage)[\w.]*)`", program))
    assert {"stage", "loop.status", "loop.iteration", "loop.best.score", "loop.stop_reason"} <= fields
    for path in fields:
        value: object = status
        for part in path.split("."):
            assert isinstance(value, dict) and part in value, (path, status)
            value = value[part]
    assert status["loop"]["status"] == "active"


def test_init_agent_leaves_uncommitted_agents_md_edits_alone(repo: Path) -> None:
    synthetic_project(repo, rows=150)
    (repo / "AGENTS.md").write_text("committed\n")
    git(repo, "add", "AGENTS.md")
    git(repo, "commit", "-qm", "agents")
    (repo / "AGENTS.md").write_text("committed\nand my edit in progress\n")
    before = git(repo, "rev-parse", "HEAD")
    r = run_gitera(repo, "init", "--agent")
    assert r.code == 3 and "AGENTS.md has uncommitted changes; commit or stash them first" in r.err
    assert (repo / "AGENTS.md").read_text() == "committed\nand my edit in progress\n" and git(repo, "rev-parse", "HEAD") == before
    assert run_gitera(repo, "init").code == 2  # neither a tag nor --agent


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gitera.core.scaffold import AgentBrief, agents_section, merge_agents_md  # noqa: E402

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@given(TEXT, TEXT, st.sampled_from(["syn", "other", "a.b-c"]))
def test_merging_the_section_keeps_the_users_text_and_is_idempotent(before: str, after: str, tag: str) -> None:
    brief = AgentBrief(tag, "Q?", ("t.txt",), ("e.py",), "python e.py", "acc", "higher", 3)
    section = agents_section(brief)
    once = merge_agents_md(before, tag, section)
    assert once.startswith(before) and once.count(section) == 1
    assert merge_agents_md(once, tag, section) == once  # regenerating changes nothing
    changed = agents_section(AgentBrief(tag, "Q?", ("u.txt",), (), "python e.py", "acc", "higher", 3))
    edited = merge_agents_md(once + after, tag, changed)
    assert edited.count(f"gitera:{tag} begin") == once.count(f"gitera:{tag} begin") and changed.rstrip("\n") in edited
    assert edited.startswith(before) and edited.endswith(after)
