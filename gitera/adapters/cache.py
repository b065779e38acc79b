"""On-disk cache of scored rows, so re-running an unchanged arm makes no eval calls.

Layout: ``<root>/<d[:2]>/<d>.jsonl`` where ``d`` digests the run-level part of the key
(arm tree id, canonical params JSON, harness id, split). Each line is one scored row:
``{"id": row key, "h": row content hash, "t": trial, "r": {score, cost_usd, ...}}``.
Lines are appended with one ``write`` per finished shard; a process killed mid-write
leaves at most a half line, which reading skips (and the next append starts on a fresh
line), so an interrupted run resumes where it stopped. Only "ok" results are stored; a
line whose score is null is a tombstone that removes an earlier entry (a row streamed
as ok whose shard later turned out to write it twice).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIELDS = ("score", "cost_usd", "latency_ms", "tokens", "output", "finding", "output_full")  # "score" first


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(row: Mapping[str, Any]) -> str:
    """Content hash of an input row: an edited row with the same id is a cache miss."""
    return hashlib.sha256(canonical_json(row).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheKey:
    """The run-level part of a cached row's key; rows add (row id, row hash, trial)."""

    tree_id: str
    params_json: str  # canonical_json(params)
    harness: str  # EvalSpec.cache_id
    split: str

    @property
    def digest(self) -> str:
        blob = canonical_json([self.tree_id, self.params_json, self.harness, self.split])
        return hashlib.sha256(blob.encode()).hexdigest()


Entry = tuple[str, str, int]  # (row key, row hash, trial)


def _record(result: Mapping[str, Any]) -> dict[str, Any]:
    """The stored fields; absent ones read back as None (a null score is a tombstone)."""
    return {n: result.get(n) for n in FIELDS if n == "score" or result.get(n) is not None}


class Cache:
    """Thread-safe within a process; appends from several processes do not corrupt lines."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def path(self, key: CacheKey) -> Path:
        digest = key.digest
        return self.root / digest[:2] / f"{digest}.jsonl"

    def load(self, key: CacheKey) -> dict[Entry, dict[str, Any]]:
        try:
            text = self.path(key).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return {}
        found: dict[Entry, dict[str, Any]] = {}
        for line in text.split("\n"):
            try:
                obj = json.loads(line)
                entry = (str(obj["id"]), str(obj["h"]), int(obj["t"]))
                record = {name: obj["r"].get(name) for name in FIELDS}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a half-written line from a killed process, or foreign junk
            if isinstance(record["score"], (int, float)):
                found[entry] = record
            else:  # a tombstone: the row's final result was not ok after all
                found.pop(entry, None)
        return found

    def put(self, key: CacheKey, entries: Sequence[tuple[Entry, Mapping[str, Any]]]) -> None:
        if not entries:
            return
        body = "".join(
            json.dumps({"id": e[0], "h": e[1], "t": e[2], "r": _record(r)}, ensure_ascii=False) + "\n"
            for e, r in entries
        ).encode()
        path = self.path(key)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    body = b"\n" + body  # the previous writer was killed mid-line
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
