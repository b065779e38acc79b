"""The docs cover every command and hook id, and the generated reference is current."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def all_docs() -> str:
    return "\n".join(p.read_text() for p in DOCS.rglob("*.md"))


def test_every_command_is_documented() -> None:
    spec = importlib.util.spec_from_file_location("gen_commands", DOCS / "gen_commands.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    from gitera.cli import cli

    text = all_docs()
    missing = [" ".join(p) for p, _ in gen.walk(cli, []) if p and f"gitera {' '.join(p)}" not in text]
    assert missing == [], f"commands missing from docs/: {missing}"
    current = (DOCS / "commands.md").read_text()
    assert gen.render(current) == current, "docs/commands.md is stale: run `python docs/gen_commands.py`"


def test_every_hook_id_is_documented() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    text = all_docs()
    # as a whole word: `gitera-locked-system` must not count as documenting `gitera-locked`
    missing = [h["id"] for h in hooks if not re.search(rf"(?<![\w-]){re.escape(h['id'])}(?![\w-])", text)]
    assert missing == []


def test_every_exit_code_is_documented() -> None:
    from gitera.core.errors import Exit

    table = (DOCS / "commands.md").read_text()
    for code in Exit:
        assert f"| {int(code)} |" in table, code


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```sh\n")[1:3]]
    demo, test_command = blocks
    assert demo.endswith("gitera demo")
    assert "pytest" in test_command
    assert (ROOT / ".ci/run").read_text().strip().splitlines()[-1] == test_command
