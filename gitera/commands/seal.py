"""gitera seal status / gitera seal keygen: look at the seal without opening it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.core.errors import ConfigError, Exit, GiteraError, RefusedError
from gitera.domain.experiment import Experiment, resolve


def seal_status(tag: str | None, out: Output) -> int:
    from gitera.adapters import keys, seal

    repo = Repo.find()
    exp = resolve(repo, tag)
    manifest_path = exp.path("split/manifest.json")
    if not manifest_path.exists():
        raise RefusedError(f"experiment {exp.tag} has no seal yet; run `gitera split` first.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        raise ConfigError(f"{exp.rel('split/manifest.json')} is not valid JSON; restore it with `git checkout`.") from None
    seal_path = repo.root / manifest["seal"]["path"]
    header = seal.read_header(seal_path)
    wrapped = exp.path("split/key.wrapped")
    mode = keys.custody_mode(repo.common_dir, exp.tag, wrapped if wrapped.exists() else None, os.environ)
    info: dict[str, Any] = {
        "tag": exp.tag,
        "seal": manifest["seal"]["path"],
        "seal_id": header.seal_id,
        "key_id": header.key_id,
        "algorithm": header.algorithm_name,
        "plaintext_size": header.plaintext_size,
        "bound_to": {"tag": header.binding.tag, "frame_hash": header.binding.frame_hash, "path": header.binding.path},
        "commitment": manifest["commitment"]["value"],
        "custody": mode,
        "key_available": mode in ("file", "env") or (mode == "recipient" and bool(os.environ.get(keys.ENV_PRIVATE_KEY))),
        "matches_manifest": header.seal_id == manifest["seal"]["seal_id"] and header.key_id == manifest["seal"]["key_id"],
        "opened": exp.is_concluded,
    }
    problems = _structure_problems(exp, seal_path, header, manifest, wrapped, info)
    where = {
        "file": f"local key file {keys.key_path(repo.common_dir, exp.tag)}",
        "env": f"${keys.ENV_DATA_KEY}",
        "recipient": f"wrapped to a custodian's public key ({exp.rel('split/key.wrapped')})",
        "none": "no key here (the verdict will need it)",
    }[mode]
    out.result(
        info,
        "\n".join(
            [
                f"seal {info['seal']}  ({header.algorithm_name}, {header.plaintext_size:,} bytes of test rows)",
                f"  seal id {header.seal_id}  key id {header.key_id}",
                f"  bound to experiment {header.binding.tag}, frame {header.binding.frame_hash[:16]}…",
                f"  commitment {info['commitment']}",
                f"  key custody: {where}",
                f"  header matches manifest: {'yes' if info['matches_manifest'] else 'NO — the seal was replaced'}",
                f"  opened: {'yes (by the verdict)' if info['opened'] else 'no'}",
                f"  structure: {info['structure']['file_size']:,} bytes, {info['structure']['chunks']} chunk(s) of "
                f"{header.chunk_size:,} bytes; its header says {info['structure']['expected_size']:,}",
                *([f"  PROBLEM: {p}" for p in problems] or ["  structure: ok (size, header, manifest and binding agree; checked without the key)"]),
            ]
        ),
    )
    return Exit.SEAL if problems else Exit.OK


def _structure_problems(exp: Experiment, path: Path, header: Any, manifest: dict[str, Any], wrapped: Path, info: dict[str, Any]) -> list[str]:
    """What can be checked without the key: the file's size against the header's (a truncated or
    extended seal), the header against the manifest and the experiment's lock, and key.wrapped's
    public fields. Chunk contents need the key: the verdict authenticates every one."""
    from gitera.adapters import keys

    size = path.stat().st_size
    info["structure"] = {"file_size": size, "expected_size": header.sealed_size, "chunks": header.chunk_count, "ok": True}
    problems = []
    if size < header.sealed_size:
        problems.append(f"truncated: {header.sealed_size - size:,} bytes missing (the file is {size:,} bytes, its header says "
                        f"{header.sealed_size:,}); restore it: `git checkout -- {info['seal']}`")
    elif size > header.sealed_size:
        problems.append(f"{size - header.sealed_size:,} bytes appended after its last chunk; restore it: `git checkout -- {info['seal']}`")
    recorded = manifest.get("seal") or {}
    for field, have in (("seal_id", header.seal_id), ("key_id", header.key_id), ("algorithm", header.algorithm_name),
                        ("chunk_size", header.chunk_size), ("plaintext_size", header.plaintext_size), ("sealed_size", header.sealed_size)):
        if field in recorded and recorded[field] != have:
            problems.append(f"the header's {field} {have} is not the manifest's {recorded[field]}")
    lock = exp.read_lock() if exp.is_locked else {}
    want = {"tag": exp.tag, "path": info["seal"], "frame hash": (lock.get("frame") or {}).get("sha256", header.binding.frame_hash)}
    have_binding = {"tag": header.binding.tag, "path": header.binding.path, "frame hash": header.binding.frame_hash}
    problems += [f"bound to {k} {have_binding[k]!r}, not this experiment's {v!r}" for k, v in want.items() if have_binding[k] != v]
    if wrapped.exists():
        try:
            facts = keys.read_wrapped(wrapped.read_bytes(), exp.rel("split/key.wrapped"))
            if facts.tag != exp.tag or facts.key_id != header.key_id:
                problems.append(f"key.wrapped holds the key {facts.key_id} of {facts.tag!r}, not the seal's {header.key_id}")
        except GiteraError as exc:
            problems.append(exc.message)
    info["structure"]["ok"] = not problems
    info["problems"] = problems
    return problems


def keygen(private_out: Path | None, out: Output) -> int:
    from gitera.adapters import keys

    pair = keys.generate_recipient_keypair()
    if private_out is not None:
        if private_out.exists():
            raise RefusedError(f"{private_out} already exists; choose another path so no key is overwritten.")
        fd = os.open(private_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pair.private + "\n")
    out.result(
        {"public": pair.public, **({"private_file": str(private_out)} if private_out else {"private": pair.private})},
        f"public key (give to `gitera split --recipient`):\n  {pair.public}\n"
        + (
            f"private key written to {private_out} (0600): give it to the custodian, e.g. as the CI secret "
            f"{keys.ENV_PRIVATE_KEY}, and keep it out of this repository."
            if private_out
            else f"private key (store it as the CI secret {keys.ENV_PRIVATE_KEY}; never commit it):\n  {pair.private}"
        ),
    )
    return 0
