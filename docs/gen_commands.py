"""Regenerate the command reference in docs/commands.md from `--help`: python docs/gen_commands.py

tests/test_docs.py fails when the reference is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

BEGIN = "<!-- BEGIN GENERATED: python docs/gen_commands.py -->"
END = "<!-- END GENERATED -->"
DOC = Path(__file__).with_name("commands.md")


def walk(cmd: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    out = [(path, cmd)]
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            out += walk(cmd.commands[name], [*path, name])
    return out


def reference() -> str:
    from gitera.cli import cli

    parts = []
    for path, cmd in walk(cli, []):
        if not path:
            continue
        # the command's own context settings (-h): click caches the help option on first use
        settings = {**cmd.context_settings, "terminal_width": 100, "max_content_width": 100}
        ctx = click.Context(cmd, info_name="gitera " + " ".join(path), **settings)
        help_text = cmd.get_help(ctx)
        parts.append(f"### gitera {' '.join(path)}\n\n```\n{help_text}\n```\n")
    return "\n".join(parts)


def render(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{reference()}\n{END}{tail}"


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
    sys.exit(0)
