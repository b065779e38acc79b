"""gitera split: real rows → train / dev / sealed gate / sealed test, audited and sized, in one commit.

The gate and test rows are written in plaintext only to a private temporary directory under
.git/gitera/ and sealed from there (the test rows with the test key, the gate rows with the
local gate key); no git object ever holds them. The Split trailer pins every split file
(gitera/domain/splitfiles.py). The local key files are written last, just before the commit:
a split that stops after that (the commit refused, an interruption) leaves keys no committed
seal uses, which the next split sets aside. After the commit the source data file leaves the
work tree (moved into the key store, or deleted with --remove-source).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import tempfile
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.adapters.repolock import exclusive, state_dir
from gitera.core.errors import RefusedError
from gitera.core.trailers import build_message
from gitera.domain.experiment import Experiment, frame_hash, require_intact, require_on_branch, resolve
from gitera.domain.splitplan import plan_split

SPLIT_DIR = "split"
# .gitera/<tag>/.gitattributes: the files gitera writes row by row are generated data — a pull request
# folds them (linguist-generated) and `git diff` shows them as changed, not line by line (-diff);
# the frame, the lock, manifests, gate records and verdict.json stay reviewable (docs/pull-requests.md)
GENERATED_ATTRIBUTES = (
    b"# written by `gitera split`: per-row files are generated data (docs/pull-requests.md)\n"
    b"split/*.jsonl linguist-generated -diff\n"
    b"split/leak.json linguist-generated -diff\n"
    b"runs/**/*.jsonl linguist-generated -diff\n"
    b"runs/iterate.json linguist-generated -diff\n"
)


def _pp(value: float) -> str:
    return "∞" if value == float("inf") else f"{value:.3f}"


def _tallied(parts: Iterator[tuple[str, dict[str, Any]]], tally: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows as they go by, the test rows' columns counted for the leak index's text columns."""
    for label, row in parts:
        if label == "test":
            tally.add(row)
        yield label, row


def _sha256_of(path: Path) -> str:
    """The sha256 of a file read in 1 MiB chunks (the pin of an open split file, without holding it)."""
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _leak_index(paths: Mapping[str, Path], columns: Sequence[str]) -> tuple[int, Any]:
    """The leak index of the test texts that no open row holds too, read from the
    part files; open texts are kept as 64-bit digests of their normalized form (8 bytes a text)."""
    import hashlib

    import numpy as np

    from gitera.adapters import datasource
    from gitera.core import leak
    from gitera.domain import splitfiles

    def digest(text: str) -> int:
        return int.from_bytes(hashlib.blake2b(leak.normalize(text).encode("utf-8"), digest_size=8).digest(), "little")

    seen = array("Q")
    for part in splitfiles.OPEN_PARTS:  # the gate rows are sealed too: their texts are secret
        for row in datasource.read_jsonl(paths[part]):
            seen.extend(digest(t) for t in leak.row_texts([row], columns))
    open_digests = np.unique(np.frombuffer(seen, dtype=np.uint64)) if seen else np.zeros(0, dtype=np.uint64)
    del seen
    shared = [0]

    def secret_texts() -> Iterator[str]:
        for row in datasource.read_jsonl(paths["test"]):
            for text in leak.row_texts([row], columns):
                d = np.uint64(digest(text))
                at = int(np.searchsorted(open_digests, d))
                if at < len(open_digests) and open_digests[at] == d:
                    shared[0] += 1
                else:
                    yield text

    index = leak.LeakIndex.build(secret_texts(), secrets.token_bytes(16))
    return shared[0], index


def split(tag: str | None, data: Path | None, accept_underpowered: bool, recipient: str | None, out: Output,
          remove_source: bool = False) -> int:
    repo = Repo.find()
    exp = resolve(repo, tag)
    with exclusive(repo.common_dir, "split"):
        return _split(repo, exp, data, accept_underpowered, recipient, out, remove_source)


def committed_seal_keys(repo: Repo, exp: Experiment) -> dict[str, str]:
    """key id -> commit, for every seal (test or gate) of this experiment committed in any branch, tag or reflog entry."""
    rel = exp.rel(f"{SPLIT_DIR}/manifest.json")
    commits = repo.git("log", "--all", "--reflog", "--format=%H", "--", rel).split()
    found: dict[str, str] = {}
    for commit, raw in zip(commits, repo.cat_blobs([f"{c}:{rel}" for c in commits])):
        try:
            doc = json.loads(raw or b"")
            for part in ("seal", "gate_seal"):
                if isinstance(doc.get(part), dict):
                    found.setdefault(str(doc[part]["key_id"]), commit)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return found


def set_aside_unused_key(repo: Repo, exp: Experiment, out: Output) -> str | None:
    """Retire stored keys (test and gate) that no committed seal uses; return the commit whose seal uses one, if one does."""
    from gitera.adapters import keys

    found = [(path, keys.key_id_at(path)) for path in (keys.key_path(repo.common_dir, exp.tag), keys.gate_key_path(repo.common_dir, exp.tag))]
    stored = [(path, kid) for path, kid in found if kid is not None]
    if not stored:
        return None
    used = committed_seal_keys(repo, exp)
    for _, kid in stored:
        if kid in used:
            return used[kid]
    for path, kid in stored:
        where = keys.set_aside_at(path, kid)
        out.info(f"set aside the seal key of a split that did not finish (no committed seal uses it): {where}")
    return None


def _split(repo: Repo, exp: Experiment, data: Path | None, accept_underpowered: bool, recipient: str | None, out: Output,
           remove_source: bool = False) -> int:
    from gitera.adapters import datasource, keys
    from gitera.core import leak
    from gitera.core import split as splitting
    from gitera.domain import splitfiles

    require_on_branch(exp)
    lock = require_intact(exp)
    if exp.path(f"{SPLIT_DIR}/manifest.json").exists():
        raise RefusedError(
            f"experiment {exp.tag} is already split; a different split needs a new experiment (`gitera init NEW_TAG`)."
        )
    sealed_in = set_aside_unused_key(repo, exp, out)
    if sealed_in is not None:
        raise RefusedError(
            f"the seal key of experiment {exp.tag} belongs to the seal committed in {sealed_in[:10]}, which is no longer on "
            f"{exp.branch}; bring that commit back (`git reset --hard {sealed_in[:10]}`) — a different split needs a new "
            "experiment (`gitera init NEW_TAG`)."
        )
    frame = exp.load_frame()
    if frame.metric.level == "run":  # declared files are sealed instead of rows (docs/run-level.md)
        from gitera.domain.runseal import seal_files

        return seal_files(repo, exp, frame, lock, recipient, out)
    fd = frame.data
    source = data if data is not None else (repo.root / fd.source if fd.source else None)
    # before any work, so a refusal costs nothing (no source: plan_split says so)
    held = splitfiles.check_source(repo, source, bool(recipient), remove_source) if source is not None else None
    fhash = frame_hash(lock)
    plan = plan_split(exp, frame, fhash, data)  # the assignment (shared with `gitera lock --check`); the rows stay in the file
    result = plan.result
    audit = splitting.audit(plan.columns, list(result.labels), list(fd.slices), fd.label, dict(fd.production) or None)
    counts = result.counts()
    n_dev = counts["dev"] + counts["gate"]
    sizing = splitting.sizing(n_dev, counts["test"], frame.threshold.effect, frame.threshold.alpha)
    note = splitting.check_sizing(sizing, accept_underpowered)

    split_rel = exp.rel(SPLIT_DIR)
    files: dict[str, bytes | Path | None] = {}
    key_where = ""
    custody = "recipient" if recipient else "file"
    key, gate_key = keys.new_data_key(), keys.new_data_key()
    pins: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="split-", dir=state_dir(repo.common_dir)))
    try:  # the parts are streamed to files and committed from disk
        paths = {part: workdir / f"{part}.jsonl" for part in ("train", "dev", "gate", "test")}
        tally = leak.TextColumnTally([fd.id or "id", "id", *(fd.slices), *([fd.label] if fd.label else []), *fd.stratify])
        datasource.write_parts(_tallied(plan.parts(), tally), paths)
        columns = tally.columns()
        if frame.metric.severity:  # here, in the clear: the verdict would find a bad weight only after opening the test set
            from gitera.core.rules import severity_weights

            with paths["test"].open(encoding="utf-8") as fh:
                severity_weights([json.loads(line) for line in fh if line.strip()], frame.metric.severity)
        shared, index = _leak_index(paths, columns)
        for part in splitfiles.OPEN_PARTS:
            files[f"{split_rel}/{part}.jsonl"] = paths[part]
            pins[part] = _sha256_of(paths[part])
        part_keys = {"gate": gate_key, "test": key}
        for part, part_key in part_keys.items():
            pins[part] = splitfiles.commitment_of(paths[part], part_key)
        digest = splitting.pins_digest(pins)
        sealed_parts = {}
        for part, seal_name in (("test", splitfiles.TEST_SEAL), ("gate", splitfiles.GATE_SEAL)):
            sealed_parts[part] = splitfiles.seal_part(paths[part], f"{split_rel}/{seal_name}", part_keys[part], exp.tag, fhash, digest, pins[part])
            paths[part].unlink()  # the plaintext held-out rows go as soon as they are sealed
        test_sealed, gate_sealed = sealed_parts["test"], sealed_parts["gate"]
        for sealed in (test_sealed, gate_sealed):
            files[sealed.rel] = sealed.path
        if recipient:
            files[f"{split_rel}/{splitfiles.WRAPPED}"] = keys.wrap_key(key, recipient, exp.tag)
            # the gate key stays here for the gate; wrapped, the custodian's verdict can release it too
            files[f"{split_rel}/{splitfiles.GATE_WRAPPED}"] = keys.wrap_key(gate_key, recipient, exp.tag)
        info, seal_rel = test_sealed.info, test_sealed.rel

        leak_doc = index.to_dict()
        files[f"{split_rel}/leak.json"] = (json.dumps(leak_doc, sort_keys=True) + "\n").encode()
        files[f"{split_rel}/.gitattributes"] = b"*.seal binary\n*.wrapped binary\n"
        files[exp.rel(".gitattributes")] = GENERATED_ATTRIBUTES  # issue 14: a PR shows the changes that matter
        manifest: dict[str, Any] = {
            "version": 1,
            "tag": exp.tag,
            "frame_hash": fhash,
            "source": {"path": held.rel if held is not None and held.rel else str(data) if data is not None else fd.source,
                       "rows": len(plan.ids), "format": plan.scan.format},
            "split": result.to_dict(),
            "audit": audit.to_dict(),
            "sizing": {**sizing.to_dict(), "accepted_underpowered": bool(note), "note": note},
            "seal": splitfiles.seal_manifest(test_sealed, custody, recipient),
            # the gate key is always a local key file: the gate opens the gate rows while the loop runs
            "gate_seal": splitfiles.seal_manifest(gate_sealed, "file", recipient),
            "pins": pins,
            "pins_digest": digest,
            "commitment": {"scheme": "sha256(domain || salt || plaintext); salt = HMAC-SHA256(key, 'gitera commitment salt v1')", "value": info.commitment},
            "leak": {"path": f"{split_rel}/leak.json", "columns": columns, "indexed": len(index.fingerprints), "shared_with_open_splits": shared},
        }
        files[f"{split_rel}/manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        trailer = {
            "counts": counts,
            "mode": result.mode,
            "commitment": info.commitment,
            "seal_id": info.seal_id,
            "key_id": info.key_id,
            "custody": custody,
            "accepted_underpowered": bool(note),
            "frame": fhash,
            "gate_seal_id": gate_sealed.info.seal_id,
            "pins": pins,
        }
        message = build_message(
            f"gitera split: {exp.tag} ({counts['train']} train / {counts['dev']} dev / {counts['gate']} gate / {counts['test']} test sealed)",
            [("Tag", exp.tag), ("Split", trailer)],
            body=note or "",
        )
        if custody == "file":
            key_where = str(keys.store_key(repo.common_dir, exp.tag, key))
        keys.store_gate_key(repo.common_dir, exp.tag, gate_key)
        try:
            commit = repo.commit_files(exp.branch, files, message)
        except BaseException:
            with contextlib.suppress(Exception):  # if this fails too, the next split sets the keys aside
                set_aside_unused_key(repo, exp, out)
            raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    kept = splitfiles.secure_source(repo, exp, held, remove_source, bool(recipient), out)
    text = [
        audit.format_table(),
        "",
        f"Sizing (paired, alpha {frame.threshold.alpha}, power 80 %, discordance {sizing.discordance:g}): "
        f"minimum detectable effect {_pp(sizing.mde_test)} on test, {_pp(sizing.mde_dev)} on dev; "
        f"threshold {frame.threshold.effect:g}.",
    ]
    if note:
        text.append(f"Recorded: {note}")
    if shared:
        text.append(f"Note: {shared} test text(s) also occur in train/dev; they are not secret and are not leak-guarded.")
    text.append(
        f"Split {exp.tag} ({commit[:10]}): {counts['train']} train, {counts['dev']} dev, {counts['gate']} gate, "
        f"{counts['test']} test rows sealed in {seal_rel} (seal {info.seal_id[:12]}, key {info.key_id[:12]}, "
        + ("wrapped to the recipient)" if custody == "recipient" else f"key kept in {key_where})")
        + f"; the gate rows sealed in {gate_sealed.rel} (gate key kept in {keys.gate_key_path(repo.common_dir, exp.tag)})."
    )
    if kept.get("note"):
        text.append(str(kept["note"]))
    text.append("Next: `gitera pilot`.")
    out.result({"tag": exp.tag, "commit": commit, "counts": counts, "manifest": manifest, "source": kept}, "\n".join(text))
    return 0
