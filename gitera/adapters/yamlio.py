"""YAML reading with the line of every field, so frame errors can name file:line:field.

Bounded (issue 12): a frame is a page of YAML, so more than MAX_BYTES of text, more than
MAX_ALIASES aliases or more than MAX_NODES nodes once aliases are expanded (a "billion
laughs" alias bomb) is refused in milliseconds instead of hanging on the expansion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gitera.core.errors import ConfigError

FieldPath = tuple[str | int, ...]
MAX_BYTES = 256 * 1024
MAX_ALIASES = 100
MAX_NODES = 20_000


class _TooBig(Exception):
    pass


class _Loader(yaml.SafeLoader):
    aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooBig(f"more than {MAX_ALIASES} aliases (*name)")
        return super().compose_node(parent, index)


def _no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate field {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _count(root: yaml.Node) -> None:
    """Refuse a node graph that expands (aliases followed) to more than MAX_NODES nodes."""
    seen, todo = 0, [root]
    while todo:
        node = todo.pop()
        seen += 1
        if seen > MAX_NODES:
            raise _TooBig(f"more than {MAX_NODES} values once its aliases are expanded")
        if isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)


def _lines(node: yaml.Node, path: FieldPath, out: dict[FieldPath, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            _lines(value_node, path + (key,), out)
            out[path + (key,)] = key_node.start_mark.line + 1  # a field's line is its key's
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out)


def load_with_lines(text: str, filename: str) -> tuple[Any, dict[FieldPath, int]]:
    """Parse YAML text; return the data and a map from field path to 1-based line."""
    lines: dict[FieldPath, int] = {}
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{filename}: {len(text) // 1024} KiB of YAML; a frame is at most {MAX_BYTES // 1024} KiB — "
                          "keep data out of it (data.source names the data file).")
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        data = None
        if node is not None:
            _count(node)
            _lines(node, (), lines)
            data = loader.construct_document(node)
    except _TooBig as exc:
        raise ConfigError(f"{filename}: refused: the YAML has {exc} (an alias bomb?); write the frame out plainly.") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(f"{filename}:{line}: invalid YAML: {problem}; fix the syntax and retry.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}:1: invalid YAML: {exc}; fix the syntax and retry.") from None
    except RecursionError:
        raise ConfigError(f"{filename}:1: invalid YAML: nested too deeply to be a frame; fix the file and retry.") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def load_file(path: Path, display: str | None = None) -> tuple[Any, dict[FieldPath, int]]:
    name = display or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{name} does not exist; run `gitera init TAG` to create it.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 (bad byte at offset {exc.start}); save it as UTF-8.") from None
    return load_with_lines(text, name)
