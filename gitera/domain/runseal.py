"""Sealed files of a run-level experiment: `gitera split` seals declared files instead of rows.

``data.seal`` (the verdict's test files) and ``data.gate_seal`` (the gate's replication shard)
are packed into a deterministic tar each and sealed with two different keys: the test key has
the seal's usual custody (local key file, or wrapped to a recipient) and is released only by
the verdict; the gate key stays in the local key store, because the gate runs at every sprint's
end. The plaintext files are then removed from the work tree, so an agent iterating in the
repository cannot read them; they come back only inside the verdict's (or the gate's)
checkouts, for the runs that need them. Text lines of the sealed files feed the leak index,
so the leak hook and `gitera verify` refuse a commit that copies one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import state_dir
from gitera.core.errors import RefusedError
from gitera.core.frame import Frame
from gitera.core.trailers import build_message
from gitera.domain.experiment import Experiment, frame_hash

if TYPE_CHECKING:
    from gitera.adapters.seal import DataKey

TEST_SEAL = "test.seal"
GATE_SEAL = "gate.seal"
MIN_LINE = 20  # shorter lines of a sealed text file are too common to guard (e.g. "import numpy as np")


def pack(files: Mapping[str, bytes]) -> bytes:
    """A deterministic tar of ``files`` (sorted names, no times, no owners): the same files, the same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def unpack(data: bytes, expected: Sequence[str]) -> dict[str, bytes]:
    """The files of a sealed tar; refuses anything but exactly the ``expected`` regular files."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            if not member.isfile() or member.name not in expected or member.name in out:
                raise RefusedError(f"the sealed archive holds {member.name!r}, which the frame does not declare; the seal is not this experiment's.")
            fh = tar.extractfile(member)
            out[member.name] = fh.read() if fh is not None else b""
    missing = sorted(set(expected) - set(out))
    if missing:
        raise RefusedError(f"the sealed archive lacks {', '.join(missing)}; the seal is not this experiment's.")
    return out


def _text_lines(content: bytes) -> list[str]:
    if b"\0" in content[:8192]:
        return []
    text = content.decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if len(line.strip()) >= MIN_LINE]


def check_sealable(repo: Repo, paths: Sequence[str]) -> dict[str, bytes]:
    """The files' contents; refuses a file that is missing, tracked, or in any commit (it is not secret)."""
    out: dict[str, bytes] = {}
    tracked = repo.tracked(list(paths))
    for path in paths:
        target = repo.root / path
        if path in tracked or repo.git("rev-list", "-1", "--all", "--", path).strip():
            raise RefusedError(f"{path} is in git history, so it is not secret and cannot be sealed; held-out data never enters git — "
                               "use fresh files (and remove this one from the history) in a new experiment.")
        if not target.is_file() or target.is_symlink():
            raise RefusedError(f"{path} (declared in data.seal / data.gate_seal) is not a file in the work tree; put the held-out file there "
                               "(untracked, e.g. listed in .gitignore) and run `gitera split` again.")
        out[path] = target.read_bytes()
    return out


def _set_aside_gate_key(repo: Repo, exp: Experiment) -> None:
    """A gate key no committed manifest uses (a split that stopped before its commit) is renamed away."""
    from gitera.adapters import keys

    path = keys.gate_key_path(repo.common_dir, exp.tag)
    if os.path.lexists(path):
        keys.set_aside_at(path, keys.read_gate_key(repo.common_dir, exp.tag).key_id)


def _seal(plain: bytes, workdir: Path, name: str, key: DataKey, binding_path: str, exp: Experiment, fhash: str) -> tuple[bytes, Any]:
    from gitera.adapters import seal

    src = workdir / f"{name}.tar"
    src.write_bytes(plain)
    info = seal.seal_file(src, workdir / name, key, seal.Binding(exp.tag, fhash, binding_path),
                          commitment_salt=seal.derive_commitment_salt(key.secret))
    src.unlink()
    return (workdir / name).read_bytes(), info


def seal_files(repo: Repo, exp: Experiment, frame: Frame, lock: Mapping[str, Any], recipient: str | None, out: Output) -> int:
    """`gitera split` for a run-level experiment (the caller holds the lock and checked it is not split yet)."""
    from gitera.adapters import keys
    from gitera.core import leak

    d = frame.data
    test = check_sealable(repo, d.seal)
    gate = check_sealable(repo, d.gate_seal)
    _set_aside_gate_key(repo, exp)
    fhash = frame_hash(dict(lock))
    split_rel = exp.rel("split")
    files: dict[str, bytes | None] = {}
    seals: dict[str, dict[str, Any]] = {}
    key, gate_key = keys.new_data_key(), keys.new_data_key()
    workdir = Path(tempfile.mkdtemp(prefix="split-", dir=state_dir(repo.common_dir)))
    try:
        for part, contents, name, k in (("test", test, TEST_SEAL, key), ("gate", gate, GATE_SEAL, gate_key)):
            if not contents:
                continue
            rel = f"{split_rel}/{name}"
            files[rel], info = _seal(pack(contents), workdir, name, k, rel, exp, fhash)
            seals[part] = {"path": rel, "seal_id": info.seal_id, "key_id": info.key_id, "algorithm": info.algorithm,
                           "chunk_size": info.chunk_size, "plaintext_size": info.plaintext_size, "sealed_size": info.sealed_size,
                           "commitment": info.commitment,
                           "files": [{"path": p, "bytes": len(c)} for p, c in sorted(contents.items())]}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    custody = "recipient" if recipient else "file"
    if recipient:
        files[f"{split_rel}/key.wrapped"] = keys.wrap_key(key, recipient, exp.tag)
    open_lines = {leak.normalize(line) for p in d.dev if (repo.root / p).is_file() for line in _text_lines((repo.root / p).read_bytes())}
    secret = [line for c in (*test.values(), *gate.values()) for line in _text_lines(c) if leak.normalize(line) not in open_lines]
    index = leak.LeakIndex.build(secret, secrets.token_bytes(16))
    files[f"{split_rel}/leak.json"] = (json.dumps(index.to_dict(), sort_keys=True) + "\n").encode()
    files[f"{split_rel}/.gitattributes"] = b"*.seal binary\n*.wrapped binary\n"
    t = seals["test"]
    manifest: dict[str, Any] = {
        "version": 1, "level": "run", "tag": exp.tag, "frame_hash": fhash,
        "files": {"test": t["files"], "gate": seals.get("gate", {}).get("files", [])},
        "sizing": {"note": "a run-level experiment is sized in runs per arm once `gitera run` has measured the noise"},
        "seal": {**{k: v for k, v in t.items() if k not in ("files", "commitment")}, "custody": custody, "recipient": recipient},
        "gate_seal": {k: v for k, v in seals["gate"].items() if k != "files"} if "gate" in seals else None,
        "commitment": {"scheme": "sha256(domain || salt || plaintext); salt = HMAC-SHA256(key, 'gitera commitment salt v1'); "
                                 "plaintext = the tar of the sealed files", "value": t["commitment"]},
        "leak": {"path": f"{split_rel}/leak.json", "columns": ["lines"], "indexed": len(index.fingerprints), "shared_with_open_splits": 0},
    }
    files[f"{split_rel}/manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    counts = {"test_files": len(test), "gate_files": len(gate)}
    trailer = {"counts": counts, "mode": "files", "level": "run", "commitment": t["commitment"], "seal_id": t["seal_id"], "key_id": t["key_id"],
               "gate_seal_id": seals["gate"]["seal_id"] if "gate" in seals else None, "custody": custody,
               "accepted_underpowered": False, "frame": fhash}
    message = build_message(f"gitera split: {exp.tag} ({len(test)} test file(s) sealed, {len(gate)} gate file(s) sealed)",
                            [("Tag", exp.tag), ("Split", trailer)])
    key_where = str(keys.store_key(repo.common_dir, exp.tag, key)) if custody == "file" else ""
    if gate:
        keys.store_gate_key(repo.common_dir, exp.tag, gate_key)
    try:
        commit = repo.commit_files(exp.branch, files, message)
    except BaseException:
        with contextlib.suppress(Exception):  # the next split sets unused keys aside
            if custody == "file":
                keys.set_aside_at(keys.key_path(repo.common_dir, exp.tag), key.key_id)
            _set_aside_gate_key(repo, exp)
        raise
    for path in (*test, *gate):  # the held-out plaintext leaves the work tree: only the seal remains
        (repo.root / path).unlink()
    sealed = ", ".join(f"{p} ({len(c):,} bytes)" for p, c in {**test, **gate}.items())
    text = [
        f"Sealed {sealed} and removed them from the work tree: the verdict decrypts the test files "
        f"({', '.join(test)}) into its own checkouts only" + (f", the gate its shard ({', '.join(gate)})." if gate else
                                                              "; no gate shard is declared, so the gate re-runs with fresh seeds."),
        f"Split {exp.tag} ({commit[:10]}): seal {t['seal_id'][:12]}, key {t['key_id'][:12]} "
        + ("wrapped to the recipient." if custody == "recipient" else f"kept in {key_where}."),
        f"Leak guard: {len(index.fingerprints)} line(s) of the sealed files are fingerprinted (the leak hook refuses a commit that copies one).",
        "Sizing happens in runs, once `gitera run` has measured the noise. Next: `gitera pilot`.",
    ]
    out.result({"tag": exp.tag, "commit": commit, "counts": counts, "manifest": manifest}, "\n".join(text))
    return 0


def open_files(repo: Repo, exp: Experiment, manifest: Mapping[str, Any], part: str, key: DataKey, expected: Sequence[str],
               commitment: tuple[bytes, str] | None = None, sealed: bytes | None = None) -> dict[str, bytes]:
    """Decrypt one sealed archive ("seal" or "gate_seal" of the manifest) into memory: path -> bytes.
    ``sealed``: the seal's bytes as git holds them (`gitera verify`), else the work tree's file."""
    from gitera.adapters import seal

    info = manifest[part]
    work = Path(tempfile.mkdtemp(prefix="open-", dir=state_dir(repo.common_dir)))
    try:
        src = repo.root / info["path"]
        if sealed is not None:
            src = work / "sealed"
            src.write_bytes(sealed)
        plain = work / "files.tar"
        seal.open_seal(src, key, seal.Binding(exp.tag, manifest["frame_hash"], info["path"]), plain, commitment=commitment)
        return unpack(plain.read_bytes(), expected)
    finally:
        shutil.rmtree(work, ignore_errors=True)
