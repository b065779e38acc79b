"""The house rules of docs/architecture.md, checked on the import graph (every import, at module
level or inside a function, read with ast): layers import downwards only, commands never import
each other, nothing below the commands imports them, there is no import circle, and the pure
core never reaches an outside thing."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gitera"
DATA_DIRS = {"demo_project", "demo_autoresearch", "templates"}  # package data: files copied into users' repositories

#: lower number = lower layer; a module may import its own layer and the ones below
LAYERS = {"core": 0, "adapters": 1, "domain": 2, "commands": 3}
ENTRY_POINTS = {"gitera", "gitera.__main__", "gitera.cli", "gitera.api"}  # above every layer

#: third-party packages the pure core may use (numerics); nothing that reaches outside
CORE_THIRD_PARTY = {"numpy", "scipy"}
#: standard-library modules that reach outside the process or the file system
OUTSIDE_STDLIB = {"subprocess", "os", "shutil", "tempfile", "socket", "http", "urllib", "pathlib", "io", "threading",
                  "multiprocessing", "signal", "select", "sys"}
#: where a subprocess may be started: the adapters; and the demo, which drives git and gitera
#: as a user would, in a temporary repository of its own
SUBPROCESS_ALLOWED = {"gitera.commands.demo"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if not DATA_DIRS & set(p.relative_to(PACKAGE).parts)}


MODULES = modules()


def imported(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(module imported, line) for every import in the file, resolved to a module name where it is one of ours."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno


def graph() -> dict[str, set[str]]:
    return {name: {m for m, _ in imported(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_is_in_a_layer_or_is_an_entry_point() -> None:
    loose = [m for m in MODULES if layer(m) is None and m not in ENTRY_POINTS]
    assert loose == [], f"modules outside core/, adapters/, domain/, commands/: {loose}"


def test_layers_import_only_their_own_layer_or_lower() -> None:
    bad = []
    for name, deps in graph().items():
        mine = layer(name)
        for dep in deps:
            if dep in ENTRY_POINTS and name not in ENTRY_POINTS:
                bad.append(f"{name} imports the entry point {dep}")
            elif mine is not None and (theirs := layer(dep)) is not None and theirs > mine:
                bad.append(f"{name} imports {dep}, a higher layer")
    assert bad == []


def test_a_command_imports_no_other_command_and_only_cli_imports_commands() -> None:
    bad = []
    for name, deps in graph().items():
        for dep in deps:
            if dep.startswith("gitera.commands.") and name != "gitera.cli":
                bad.append(f"{name} imports {dep}")
    assert bad == []


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: every set of modules that import each other round a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_there_is_no_import_circle() -> None:
    assert strongly_connected(graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    # the check above must be able to fail
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def third_party(name: str, path: Path) -> set[str]:
    return {m.split(".")[0] for m, _ in imported(name, path) if m.split(".")[0] not in ("gitera", "__future__")} - set(sys.stdlib_module_names)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if layer(m) == 0))
def test_the_core_is_pure(name: str) -> None:
    path = MODULES[name]
    assert third_party(name, path) <= CORE_THIRD_PARTY
    outside = {m.split(".")[0] for m, _ in imported(name, path)} & OUTSIDE_STDLIB
    assert outside == set(), f"{name} imports {outside}: an outside effect belongs in gitera/adapters/"


def test_the_verdict_rules_import_only_the_standard_library_their_error_type_and_the_tie_rule() -> None:
    name = "gitera.core.rules"
    ours = {m for m, _ in imported(name, MODULES[name]) if m.startswith("gitera")}
    assert ours == {"gitera.core.errors", "gitera.core.ties"}
    assert {m for m, _ in imported("gitera.core.ties", MODULES["gitera.core.ties"]) if m.startswith("gitera")} == set()
    assert third_party(name, MODULES[name]) == set()


def test_processes_are_started_only_by_the_adapters() -> None:
    bad = [f"{name}:{line}" for name, path in MODULES.items() for m, line in imported(name, path)
           if m.split(".")[0] == "subprocess" and layer(name) != 1 and name not in SUBPROCESS_ALLOWED]
    assert bad == []


@pytest.mark.parametrize("lib", ["click"])
def test_click_stays_in_the_cli(lib: str) -> None:
    users = sorted(name for name, path in MODULES.items() if any(m.split(".")[0] == lib for m, _ in imported(name, path)))
    assert users == ["gitera.cli"]


@pytest.mark.parametrize(("lib", "home"), [("yaml", {"gitera.adapters.yamlio"}), ("cryptography", {"gitera.adapters.seal", "gitera.adapters.keys"}),
                                          ("matplotlib", {"gitera.adapters.charts"})])
def test_each_outside_library_has_one_home(lib: str, home: set[str]) -> None:
    users = {name for name, path in MODULES.items() if any(m.split(".")[0] == lib for m, _ in imported(name, path))}
    assert users <= home, f"{lib} imported outside {home}: {sorted(users - home)}"
