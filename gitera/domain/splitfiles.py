"""The split's files once `gitera split` made them: the pins, the sealed held-out rows, the source.

* **Pins.** The Gitera-Split trailer records the sha256 of ``train.jsonl`` and ``dev.jsonl`` and
  the salted commitments of the gate and test plaintexts; their digest (``core.split.pins_digest``)
  is bound into the header of both seals. ``read_open_split`` refuses a split file that differs
  from its pin (a relabelled ``dev.jsonl``), the gate and the verdict open a seal only with the
  digest of the files in front of them, and ``gitera verify`` re-checks it all from git.
* **Held-out rows.** The test rows are sealed with the test key, the gate rows with a separate
  local gate key (the gate runs while the loop runs, where a recipient's private key is absent
  by design). ``seal_part`` is the one sealing step, for any part or declared file.
  ``gate_rows`` opens the gate rows in a private work folder that is removed at once.
* **The source file.** ``check_source`` refuses a source that git holds; ``secure_source`` moves
  an untracked one out of the work tree into the key store (or deletes it); ``source_copies``
  tells `status` and `verify` when a copy is back in the work tree.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import state_dir
from gitera.core.errors import RefusedError
from gitera.core.results import jsonl_lines
from gitera.domain.experiment import Experiment

if TYPE_CHECKING:
    from gitera.adapters.history import Record
    from gitera.adapters.seal import DataKey, SealInfo

SPLIT_DIR = "split"
TEST_SEAL = "test.seal"
GATE_SEAL = "gate.seal"
WRAPPED = "key.wrapped"
GATE_WRAPPED = "gate.key.wrapped"
OPEN_PARTS = ("train", "dev")
SCAN_LIMIT = 8 * 1024 * 1024  # a source file found again larger than this is reported without reading it


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- pins ------------------------------------------------------------------------


def split_record(exp: Experiment, use_cache: bool = True, rev: str | None = None) -> Record | None:
    """The experiment's Gitera-Split record (through the history cache unless ``use_cache`` is False:
    what decides from the pins against a tampering user reads git itself), in the history of ``rev``
    when given (`verify` in a CI clone, detached, with no autoexp/ branch), else of the branch."""
    from gitera.adapters.history import read

    return next((r for r in read(exp.repo, exp.branch, exp.tag, use_cache=use_cache, rev=rev) if r.kind == "Split"), None)


def pins_of(record: Record | None) -> dict[str, str] | None:
    """The pins a Split record carries (None for a split made before pins existed)."""
    pins = record.data.get("pins") if record is not None else None
    if not isinstance(pins, dict) or not all(isinstance(v, str) for v in pins.values()):
        return None
    return {str(k): str(v) for k, v in pins.items()}


def digest_of(pins: Mapping[str, str] | None) -> str | None:
    from gitera.core.split import pins_digest

    if pins is None:
        return None
    try:
        return pins_digest(pins)
    except ValueError:
        return None


def read_open_split(exp: Experiment, name: str) -> list[dict[str, Any]]:
    """The rows of ``split/<name>.jsonl`` (train or dev), refused when the file is not the one the split pinned."""
    path = exp.path(f"{SPLIT_DIR}/{name}.jsonl")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RefusedError(f"experiment {exp.tag} has no split yet; run `gitera split` first.") from None
    record = split_record(exp)
    pins = pins_of(record)
    if record is not None and pins is not None and name in pins and sha256(data) != pins[name]:
        rel = exp.rel(f"{SPLIT_DIR}/{name}.jsonl")
        raise RefusedError(
            f"{rel} differs from the file the split committed in {record.commit[:10]} (its sha256 is pinned in the "
            f"Gitera-Split trailer and in both seals): split files never change after the split; restore it with "
            f"`git checkout {record.commit[:10]} -- {rel}`."
        )
    return [json.loads(line) for line in jsonl_lines(data.decode("utf-8"))]


# --- sealing ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    """One sealed part: its repo path, the sealed file on disk (committed from there, never held in
    memory: scale, issue 15), the seal's facts, the salted commitment."""

    rel: str
    path: Path
    info: SealInfo
    commitment: str


def commitment_of(plain: Path, key: DataKey) -> str:
    """The salted commitment of a plaintext file; the salt is derived from its key."""
    from gitera.adapters import seal

    return seal.commit_plaintext(plain, seal.derive_commitment_salt(key.secret))


def seal_part(plain: Path, rel: str, key: DataKey, tag: str, frame_hash: str, pins: str | None, commitment: str) -> Sealed:
    """Seal ``plain`` as the repo file ``rel``, bound to the experiment, frame and pins digest."""
    from gitera.adapters import seal

    dst = plain.with_name(plain.name + ".seal")
    info = seal.seal_file(plain, dst, key, seal.Binding(tag, frame_hash, rel, pins),
                          commitment_salt=seal.derive_commitment_salt(key.secret))
    if info.commitment != commitment:
        raise RefusedError(f"{plain.name} changed while it was being sealed; run `gitera split` again.")
    return Sealed(rel, dst, info, commitment)


def seal_manifest(sealed: Sealed, custody: str, recipient: str | None) -> dict[str, Any]:
    info = sealed.info
    return {"path": sealed.rel, "seal_id": info.seal_id, "key_id": info.key_id, "algorithm": info.algorithm,
            "chunk_size": info.chunk_size, "plaintext_size": info.plaintext_size, "sealed_size": info.sealed_size,
            "custody": custody, "recipient": recipient}


def gate_rows(exp: Experiment, frame_hash: str) -> list[dict[str, Any]]:
    """The gate rows, opened with the local gate key for the gate only.

    The plaintext exists only in a 0600 file inside a private work folder under .git/gitera/work
    (swept by the next gitera command if this one is killed) and is removed before returning.
    A split made before gate rows were sealed keeps its plaintext gate.jsonl: read that.
    """
    from gitera.adapters import keys, seal

    repo = exp.repo
    try:
        manifest = json.loads(exp.path(f"{SPLIT_DIR}/manifest.json").read_text())
    except FileNotFoundError:
        raise RefusedError(f"experiment {exp.tag} has no split yet; run `gitera split` first.") from None
    info = manifest.get("gate_seal")
    if not isinstance(info, dict):
        legacy = exp.path(f"{SPLIT_DIR}/gate.jsonl")
        return [json.loads(x) for x in jsonl_lines(legacy.read_text(encoding="utf-8"))] if legacy.exists() else []
    record = split_record(exp, use_cache=False)
    pins = pins_of(record)
    if pins is None or "gate" not in pins:
        raise RefusedError(f"the Gitera-Split trailer of {exp.tag} has no pins, but its manifest names a gate seal: "
                           "the split commit was rewritten; restore the branch from the split commit.")
    key = keys.read_gate_key(repo.common_dir, exp.tag)
    (state_dir(repo.common_dir) / "work").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gate-rows-", dir=state_dir(repo.common_dir) / "work"))
    try:
        plain = work / "gate.jsonl"
        seal.open_seal(repo.root / str(info["path"]), key, seal.Binding(exp.tag, frame_hash, str(info["path"]), digest_of(pins)),
                       plain, commitment=(seal.derive_commitment_salt(key.secret), pins["gate"]))
        return [json.loads(x) for x in jsonl_lines(plain.read_text(encoding="utf-8"))]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def expected_pins(exp: Experiment, rev: str = "HEAD") -> str | None:
    """The pins digest of the split files as they are at ``rev``: train/dev hashed from git, gate and
    test commitments from the Split trailer. A seal opens only with this digest, so a split file
    changed after the split (and the trailer forged to match) leaves it shut. None: no pins (old split)."""
    pins = pins_of(split_record(exp, use_cache=False, rev=rev))
    if pins is None:
        return None
    rels = [exp.rel(f"{SPLIT_DIR}/{p}.jsonl") for p in OPEN_PARTS]
    now = exp.repo.cat_blobs([f"{rev}:{r}" for r in rels])
    return digest_of({**pins, **{p: sha256(b or b"") for p, b in zip(OPEN_PARTS, now)}})


# --- the source data file --------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The data source file of a split: its path, path in the repository, SHA-256 and size."""
    path: Path  # absolute
    rel: str | None  # the path inside the work tree, None when outside it
    sha256: str
    size: int


def _inside(repo: Repo, path: Path) -> str | None:
    root = repo.root.resolve()
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    return None if rel.parts[:1] == (".git",) else rel.as_posix()


def check_source(repo: Repo, source: Path, recipient: bool, remove: bool) -> Source | None:
    """Refuse a source file whose rows git already holds, and, in recipient mode, one that would stay
    in the work tree. None when the file does not exist (reading it says so)."""
    path = source.resolve()
    if not path.is_file():
        return None
    rel = _inside(repo, path)
    shown = rel or str(path)
    if rel is not None and repo.tracked([rel]):
        raise RefusedError(
            f"{rel} is tracked by git, so every row in it — the future test rows included — is readable from git; "
            f"keep data out of git (`git rm --cached {rel}`, add it to .gitignore) and split data that was never committed."
        )
    oid = repo.git("hash-object", "--", str(path)).strip()
    if repo.cat_objects([oid])[0] is not None:
        raise RefusedError(
            f"the exact content of {shown} is already stored in this repository's git objects (it was committed "
            "before, perhaps under another name), so its rows cannot be sealed; split data that was never committed."
        )
    if recipient and rel is not None and not remove:
        raise RefusedError(
            f"{rel} holds every row in the clear and would stay on this machine, where recipient mode means nobody "
            "may read the test rows; keep your own copy with the custodian and run `gitera split --recipient … "
            "--remove-source`."
        )
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return Source(path, rel, digest.hexdigest(), path.stat().st_size)


def secure_source(repo: Repo, exp: Experiment, source: Source | None, remove: bool, recipient: bool, out: Output) -> dict[str, Any]:
    """After the split commit: move the source out of the work tree into the key store, or delete it.

    Returns what happened (``kept``: key store / removed / outside the work tree / in the work
    tree / missing, the ``path``, ``where`` it went, and a ``note`` for the command's text). A
    failure here never undoes the split: it is a warning, and `status` and `verify` keep warning
    while the file is in the work tree."""
    from gitera.adapters import keys

    if source is None:
        return {"kept": "missing"}
    shown = source.rel or str(source.path)
    keys.record_source(repo.common_dir, exp.tag, {"path": shown, "sha256": source.sha256, "size": source.size})
    try:
        if remove:
            source.path.unlink()
            return {"kept": "removed", "path": shown,
                    "note": f"Removed the source {shown} (--remove-source): it held the sealed test rows in the clear."}
        if source.rel is None:
            out.warn(f"the source {shown} is outside the work tree and still holds the sealed test rows in the clear; "
                     + ("recipient mode means nobody here may read them: delete it from this machine."
                        if recipient else "keep it away from whoever iterates (or use --remove-source)."))
            return {"kept": "outside the work tree", "path": shown}
        where = keys.stash_source(repo.common_dir, exp.tag, source.path)
    except OSError as exc:
        out.warn(f"could not move {shown} out of the work tree ({exc.strerror or exc}); it still holds the sealed test rows: "
                 "move it yourself. `gitera status` warns until it is gone.")
        return {"kept": "in the work tree", "path": shown}
    return {"kept": "key store", "path": shown, "where": str(where),
            "note": f"Moved the source {shown} out of the work tree to {where} (it holds the sealed test rows in the clear); "
                    "`gitera status` warns if a copy comes back."}


def source_copies(exp: Experiment, frame_source: str | None) -> list[str]:
    """Warnings for every file at the split's source path still in the work tree holding split rows.

    The file is reported when it is the source (its sha256, remembered outside git at split time),
    or when it holds a row of the sealed test set (leak index); a file over 8 MiB is reported
    without reading it."""
    from gitera.adapters import keys

    try:
        manifest = json.loads(exp.path(f"{SPLIT_DIR}/manifest.json").read_text())
    except (OSError, ValueError):
        return []
    repo = exp.repo
    record = keys.source_record(repo.common_dir, exp.tag) or {}
    named = [(manifest.get("source") or {}).get("path"), frame_source, record.get("path")]
    found: list[str] = []
    for name in dict.fromkeys(n for n in named if isinstance(n, str) and n):
        path = (repo.root / name).resolve()
        rel = _inside(repo, path)
        if rel is None or not path.is_file():
            continue
        why = _holds_rows(exp, path, record)
        if why:
            found.append(f"{rel} is in the work tree and {why}: move it out of the work tree or delete it "
                         "(`gitera split` moves the source into .git/gitera/keys/source/).")
    return found


def _holds_rows(exp: Experiment, path: Path, record: Mapping[str, Any]) -> str | None:
    size = path.stat().st_size
    if size > SCAN_LIMIT:
        return f"may hold the rows experiment {exp.tag} was split from ({size:,} bytes, not read)"
    data = path.read_bytes()
    if record.get("sha256") == sha256(data):
        return f"is the file experiment {exp.tag} was split from, its sealed test rows included"
    from gitera.core.leak import LeakIndex, scan_bytes

    try:
        index = LeakIndex.from_dict(json.loads(exp.path(f"{SPLIT_DIR}/leak.json").read_text()))
    except (OSError, ValueError):
        return None
    hits = scan_bytes(data, index)
    return f"holds {len({h.fingerprint for h in hits})} row(s) of experiment {exp.tag}'s sealed test set" if hits else None
