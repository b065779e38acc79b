"""Key custody for the seal: where a seal's data key lives and who can release it.

Three custody modes (docs/seal.md, "Key custody"):

* **local key file** — ``<git-common-dir>/gitera/keys/<tag>.key`` (base64 text of the
  32-byte data key), directory 0700, file 0600, written atomically and never
  overwritten. A key file or directory readable by group or other is refused
  (``permissive_key_file``), as is a symlinked one. Outside every git object.
* **environment** — ``GITERA_SEAL_KEY`` holds the data key as 64 hex characters or
  base64 (standard or URL-safe, padding optional) of 32 bytes.
* **public-key recipient** — at split time a random data key seals the test set and only
  ``wrap_key(key, recipient, tag)`` is stored, in a small committed ``key.wrapped`` file
  (JSON: ephemeral X25519 ECDH with the recipient, HKDF-SHA256, AES-256-GCM). The
  private key stays with a custodian (for example the CI secret
  ``GITERA_SEAL_PRIVATE_KEY``), so whoever iterates in the repository cannot decrypt.

Public API::

    new_data_key() -> DataKey
    key_path(git_common_dir, tag) -> Path
    store_key(git_common_dir, tag, key) -> Path          (key_exists, permissive_key_file)
    key_id_at(path) -> str | None                        a local key file's key id, no secret
    set_aside_at(path, key_id) -> Path                   retire a key no committed seal uses
    encode_data_key(key) -> str / parse_data_key(text, source) -> DataKey  (malformed_key)
    RecipientKeypair(private, public); generate_recipient_keypair() -> RecipientKeypair
    public_from_private(private) -> str                  (malformed_key)
    wrap_key(key, recipient, tag) -> bytes               the content of key.wrapped
    read_wrapped(data, source) -> WrappedKey             recipient, tag, key id; no secret
    unwrap_key(data, private, tag, source) -> DataKey    (wrong_key, tampered, malformed_key)
    custody_mode(git_common_dir, tag, wrapped_path, env) -> str   which mode applies; releases nothing
    unwrap_for_verdict(*, git_common_dir, tag, wrapped_path, env, private_key) -> DataKey

The **gate key** seals the gate rows (``split/gate.seal``). The gate opens them while the loop
runs, where a recipient's private key is absent by design, so the gate key is always a local
key file (``keys/gate/<tag>.key``, same rules as the test key file); in recipient mode it is
also wrapped to the recipient (``split/gate.key.wrapped``) so that the verdict, run by the
custodian, can release it. The reusable holdout's noise seed lives with it (derived from it).
A source data file moved out of the work tree by ``gitera split`` goes to
``keys/source/<tag>/``.

    gate_key_path / store_gate_key / read_gate_key(git_common_dir, tag)
    holdout_seed(git_common_dir, tag) -> int      derived from the gate key (or a legacy seed file)
    release_gate_key(*, git_common_dir, tag, wrapped_path, env, private_key) -> DataKey | None
    stash_source(git_common_dir, tag, src) -> Path; source_record / record_source

``unwrap_for_verdict`` is the ONE function that resolves a usable data key, and only the
verdict code path may call it (a test greps the package for other callers).
``unwrap_key`` is public for custodian tooling and tests; package code calls it only
through ``unwrap_for_verdict``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitera.adapters.seal import (
    DataKey,
    SealKeyExists,
    SealMalformedKey,
    SealMissingKey,
    SealPermissiveKeyFile,
    SealTampered,
    SealWrongKey,
)

ENV_DATA_KEY = "GITERA_SEAL_KEY"
ENV_PRIVATE_KEY = "GITERA_SEAL_PRIVATE_KEY"
PRIVATE_PREFIX = "gitera-seal-sk1:"
PUBLIC_PREFIX = "gitera-seal-pk1:"
WRAP_FORMAT = "gitera-wrapped-key"
WRAP_VERSION = 1
WRAP_ALG = "X25519-HKDF-SHA256-AES-256-GCM"
_WRAP_INFO = b"gitera seal key wrap v1"
_ZERO_NONCE = bytes(12)


def new_data_key() -> DataKey:
    """A fresh random 32-byte data key."""
    return DataKey.generate()


def key_path(git_common_dir: Path, tag: str) -> Path:
    """Where the local key file of experiment ``tag`` lives (the caller finds the git dir)."""
    if not tag or "/" in tag or tag.startswith("."):
        raise ValueError(f"not an experiment tag: {tag!r}")
    return git_common_dir / "gitera" / "keys" / f"{tag}.key"


# --- data key text -----------------------------------------------------------------


def encode_data_key(key: DataKey) -> str:
    """Standard base64 of the 32 key bytes (the key file's content, and GITERA_SEAL_KEY's)."""
    return base64.b64encode(key.secret).decode("ascii")


def parse_data_key(text: str, source: str) -> DataKey:
    """Read a data key written as 64 hex characters or base64 of 32 bytes; ``source`` names it in errors."""
    value = text.strip()
    raw: bytes | None = None
    if len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value):
        raw = bytes.fromhex(value)
    else:
        padded = value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)
        try:
            raw = base64.b64decode(padded.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raw = None
    if raw is None or len(raw) != 32:
        raise SealMalformedKey(
            f"{source} is not a 32-byte seal key in base64 or hex; set it to the exact key text "
            "(64 hex characters or 44 base64 characters)."
        )
    return DataKey(raw)


# --- local key file ----------------------------------------------------------------


def _check_private(path: Path, is_dir: bool) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise SealPermissiveKeyFile(
            f"{path} is a symlink, which gitera refuses for seal keys; replace it with the real "
            f"{'directory' if is_dir else 'file'} and run `chmod {'700' if is_dir else '600'} {path}`."
        )
    if os.name != "nt" and st.st_mode & 0o077:
        mode = oct(stat.S_IMODE(st.st_mode))
        raise SealPermissiveKeyFile(
            f"{path} is accessible by group or other users (mode {mode}); "
            f"run `chmod {'700' if is_dir else '600'} {path}` and try again."
        )


def _read_key_file(path: Path) -> DataKey:
    _check_private(path.parent, is_dir=True)
    _check_private(path, is_dir=False)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as f:
        return parse_data_key(f.read(), f"the key file {path}")


def _private_dirs(top: Path, leaf: Path) -> None:
    """Make ``leaf`` and every directory between ``top`` and it, each 0700, and check them."""
    chain = [leaf, *[p for p in leaf.parents if p == top or top in p.parents]]
    for d in reversed(chain):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
    for d in chain:
        if d != top:
            _check_private(d, is_dir=True)


def store_key(git_common_dir: Path, tag: str, key: DataKey) -> Path:
    """Write the key file atomically (dir 0700, file 0600); never overwrite a different key."""
    return _store_at(key_path(git_common_dir, tag), git_common_dir, tag, key)


def _store_at(path: Path, git_common_dir: Path, tag: str, key: DataKey) -> Path:
    _private_dirs(git_common_dir / "gitera", path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{tag}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(encode_data_key(key) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic and refuses to clobber
        except FileExistsError:
            existing = _read_key_file(path)
            if not hmac.compare_digest(existing.secret, key.secret):
                raise SealKeyExists(
                    f"{path} already holds a different seal key for '{tag}' and replacing it would make "
                    "the existing seal unreadable; keep it, or delete it only when resealing fresh data."
                ) from None
    finally:
        os.unlink(tmp)
    return path


def key_id_at(path: Path) -> str | None:
    """The key id of the local key file ``path`` (a test or gate key; None when there is none)."""
    if not os.path.lexists(path):
        return None
    return _read_key_file(path).key_id


def set_aside_at(path: Path, key_id: str) -> Path:
    """Rename the key file ``path`` to ``<name>.unused-<key id>`` and return the new path.

    For a key that no committed seal uses (a split stopped after storing it): it no longer
    blocks the next split, and it is not destroyed. The caller checks that no seal needs it.
    The name carries the full key id, so an earlier file of that name held the same key.
    """
    target = path.with_name(f"{path.name}.unused-{key_id}")
    os.replace(path, target)
    return target


def retire(git_common_dir: Path, tag: str, suffix: str) -> list[Path]:
    """Rename ``tag``'s key file, holdout seed, gate key, gate-record key and moved source to
    ``<name>.abandoned-<suffix>`` (an abandoned experiment): kept, never released or destroyed, and out
    of the way of a new experiment that reuses the tag."""
    moved = []
    held = (key_path(git_common_dir, tag), key_path(git_common_dir, tag).with_suffix(".holdout"),
            gate_key_path(git_common_dir, tag), record_key_path(git_common_dir, tag), source_dir(git_common_dir, tag),
            _record_path(git_common_dir, tag))
    for path in held:
        if os.path.lexists(path):
            target = path.with_name(f"{path.name}.abandoned-{suffix}")
            if os.path.lexists(target):
                raise FileExistsError(f"{target} exists already")
            os.replace(path, target)
            moved.append(target)
    return moved


# --- public-key recipient ----------------------------------------------------------


@dataclass(frozen=True)
class RecipientKeypair:
    """Text forms ``gitera-seal-sk1:<base64>`` (secret, for the custodian) and ``gitera-seal-pk1:<base64>``."""

    private: str = field(repr=False)
    public: str


@dataclass(frozen=True)
class WrappedKey:
    """The public facts of a ``key.wrapped`` file."""

    recipient: str
    tag: str
    key_id: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode_prefixed(text: str, prefix: str, source: str, what: str) -> bytes:
    value = text.strip()
    raw = b""
    if value.startswith(prefix):
        try:
            raw = base64.b64decode(value[len(prefix) :], validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != 32:
        raise SealMalformedKey(
            f"{source} is not an X25519 {what} key of the form {prefix}<base64>; "
            "use the exact text printed by `gitera seal keygen`."
        )
    return raw


def generate_recipient_keypair() -> RecipientKeypair:
    """A new X25519 keypair for a custodian (the future ``gitera seal keygen``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    sk = X25519PrivateKey.generate()
    raw_sk = sk.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    raw_pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return RecipientKeypair(private=PRIVATE_PREFIX + _b64(raw_sk), public=PUBLIC_PREFIX + _b64(raw_pk))


def public_from_private(private: str, source: str = ENV_PRIVATE_KEY) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    sk = X25519PrivateKey.from_private_bytes(_decode_prefixed(private, PRIVATE_PREFIX, source, "private"))
    return PUBLIC_PREFIX + _b64(sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def _kek(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_WRAP_INFO).derive(shared)


def _aad(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


def wrap_key(key: DataKey, recipient: str, tag: str) -> bytes:
    """Wrap ``key`` to the X25519 public key ``recipient`` for experiment ``tag``: the bytes of key.wrapped."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    pk_raw = _decode_prefixed(recipient, PUBLIC_PREFIX, "the recipient", "public")
    eph = X25519PrivateKey.generate()
    eph_raw = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        shared = eph.exchange(X25519PublicKey.from_public_bytes(pk_raw))
    except ValueError:
        raise SealMalformedKey(f"the recipient {recipient} is not a usable X25519 public key; check it.") from None
    fields: dict[str, Any] = {
        "format": WRAP_FORMAT,
        "version": WRAP_VERSION,
        "alg": WRAP_ALG,
        "tag": tag,
        "recipient": PUBLIC_PREFIX + _b64(pk_raw),
        "ephemeral": _b64(eph_raw),
        "key_id": key.key_id,
    }
    ct = AESGCM(_kek(shared, eph_raw, pk_raw)).encrypt(_ZERO_NONCE, key.secret, _aad(fields))
    return (json.dumps({**fields, "ciphertext": _b64(ct)}, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _parse_wrapped(data: bytes, source: str) -> dict[str, Any]:
    bad = SealTampered(f"{source} is not a valid gitera wrapped key; restore it from git (git checkout -- {source}).")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad from None
    want = {"format", "version", "alg", "tag", "recipient", "ephemeral", "key_id", "ciphertext"}
    if not isinstance(doc, dict) or set(doc) != want or doc["format"] != WRAP_FORMAT:
        raise bad
    if doc["version"] != WRAP_VERSION or doc["alg"] != WRAP_ALG:
        raise SealTampered(
            f"{source} uses wrapping {doc['alg']!r} version {doc['version']!r}, which this gitera does not read; "
            "upgrade gitera or restore the file from git."
        )
    if not all(isinstance(doc[k], str) for k in want - {"version"}):
        raise bad
    return doc


def read_wrapped(data: bytes, source: str = "key.wrapped") -> WrappedKey:
    """The recipient, tag and key id of a wrapped key, without any secret (for ``seal status``)."""
    doc = _parse_wrapped(data, source)
    return WrappedKey(recipient=doc["recipient"], tag=doc["tag"], key_id=doc["key_id"])


def unwrap_key(data: bytes, private: str, tag: str, source: str = "key.wrapped") -> DataKey:
    """Recover the data key from ``key.wrapped`` with the custodian's private key text."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    doc = _parse_wrapped(data, source)
    sk = X25519PrivateKey.from_private_bytes(_decode_prefixed(private, PRIVATE_PREFIX, ENV_PRIVATE_KEY, "private"))
    mine = public_from_private(private)
    if not hmac.compare_digest(mine, doc["recipient"]):
        raise SealWrongKey(
            f"{source} is wrapped to {doc['recipient']} but the private key supplied belongs to {mine}; "
            "supply the custodian's private key for this experiment."
        )
    if doc["tag"] != tag:
        raise SealWrongKey(
            f"{source} holds the key of experiment '{doc['tag']}', not '{tag}'; "
            "it was copied from another experiment: restore this experiment's own key.wrapped from git."
        )
    tampered = SealTampered(
        f"{source} failed authentication: it was altered; restore it from git (git checkout -- {source})."
    )
    try:
        eph_raw = base64.b64decode(doc["ephemeral"], validate=True)
        shared = sk.exchange(X25519PublicKey.from_public_bytes(eph_raw))
        pk_raw = base64.b64decode(doc["recipient"][len(PUBLIC_PREFIX) :], validate=True)
        ct = base64.b64decode(doc["ciphertext"], validate=True)
        fields = {k: v for k, v in doc.items() if k != "ciphertext"}
        secret = AESGCM(_kek(shared, eph_raw, pk_raw)).decrypt(_ZERO_NONCE, ct, _aad(fields))
    except (binascii.Error, ValueError, InvalidTag):
        raise tampered from None
    key = DataKey(secret)
    if not hmac.compare_digest(key.key_id, doc["key_id"]):
        raise tampered
    return key


# --- resolution --------------------------------------------------------------------


def custody_mode(
    git_common_dir: Path, tag: str, wrapped_path: Path | None, env: Mapping[str, str] | None = None
) -> str:
    """Which custody applies — "recipient", "env", "file" or "none" — without reading any secret."""
    environ = os.environ if env is None else env
    if wrapped_path is not None and wrapped_path.exists():
        return "recipient"
    if environ.get(ENV_DATA_KEY):
        return "env"
    if os.path.lexists(key_path(git_common_dir, tag)):
        return "file"
    return "none"


def unwrap_for_verdict(
    *,
    git_common_dir: Path,
    tag: str,
    wrapped_path: Path | None,
    env: Mapping[str, str] | None = None,
    private_key: str | None = None,
) -> DataKey:
    """Release the data key of experiment ``tag``. ONLY the verdict code path may call this.

    Order: a committed ``wrapped_path`` (recipient mode) needs the custodian's private key
    (``private_key`` or ``GITERA_SEAL_PRIVATE_KEY``); otherwise ``GITERA_SEAL_KEY``;
    otherwise the local key file. Raises ``missing_key``, ``malformed_key``,
    ``permissive_key_file``, ``wrong_key`` or ``tampered``.
    """
    environ = os.environ if env is None else env
    mode = custody_mode(git_common_dir, tag, wrapped_path, environ)
    if mode == "recipient":
        assert wrapped_path is not None
        private = private_key if private_key is not None else environ.get(ENV_PRIVATE_KEY)
        if not private:
            raise SealMissingKey(
                f"the seal key of '{tag}' is wrapped to a custodian's public key ({wrapped_path}); "
                f"set {ENV_PRIVATE_KEY} to the custodian's private key (for example as a CI secret) to run the verdict."
            )
        return unwrap_key(wrapped_path.read_bytes(), private, tag, str(wrapped_path))
    if mode == "env":
        return parse_data_key(environ[ENV_DATA_KEY], ENV_DATA_KEY)
    path = key_path(git_common_dir, tag)
    if mode == "file":
        return _read_key_file(path)
    raise SealMissingKey(
        f"no seal key for experiment '{tag}': neither {path} nor {ENV_DATA_KEY} exists; "
        "supply the key made at split time (if it is lost the seal cannot be opened: reseal fresh data)."
    )


def holdout_seed_path(common_dir: Path, tag: str) -> Path:
    """Where the holdout seed is kept once a gate used it: in the key store, outside git."""
    return key_path(common_dir, tag).with_suffix(".holdout")


_HOLDOUT_INFO = b"gitera holdout seed v1"


def derive_holdout_seed(gate_key: DataKey) -> int:
    """The reusable holdout's noise seed, derived from the gate key (62 bits): it lives with that key."""
    return int.from_bytes(hmac.digest(gate_key.secret, _HOLDOUT_INFO, "sha256")[:8], "big") >> 2


def holdout_seed(common_dir: Path, tag: str) -> int:
    """The reusable holdout's noise seed: a secret kept outside git until the verdict records it.

    A public seed would let anyone subtract the noise and read the gate rows' scores. It is
    derived from the gate key, and kept beside it once a gate used it (a seed file written
    before, by an older gitera or to fix the seed, wins); an experiment split before gate keys
    existed gets a random one.
    """
    import secrets

    path = holdout_seed_path(common_dir, tag)
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        gate = gate_key_path(common_dir, tag)
        seed = derive_holdout_seed(_read_key_file(gate)) if os.path.lexists(gate) else secrets.randbits(62)
        _private_dirs(common_dir / "gitera", path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{seed}\n")
        return seed


# --- the gate-record key: authenticates the Gitera-Gate records (gitera.core.recordmac) ---


def record_key_path(common_dir: Path, tag: str) -> Path:
    """Where the gate-record key lives: beside the seal key, outside git."""
    return key_path(common_dir, tag).with_suffix(".recordkey")


def record_key(common_dir: Path, tag: str, *, create: bool = False) -> bytes | None:
    """Experiment ``tag``'s gate-record key (32 random bytes), made by its first gate when ``create``;
    None when there is none yet. Kept like a seal key file (0600 in a 0700 directory)."""
    path = record_key_path(common_dir, tag)
    if not os.path.lexists(path):
        if not create:
            return None
        path.parent.parent.mkdir(mode=0o700, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{tag}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(encode_data_key(new_data_key()) + "\n")
            try:
                os.link(tmp, path)  # never replaces a key another gate made meanwhile
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return _read_key_file(path).secret


def wrap_record_key(key: bytes, wrapped_seal_key: bytes, tag: str) -> bytes:
    """The gate-record key wrapped to the recipient the seal key is wrapped to (recipient mode), so the
    custodian who runs the verdict elsewhere can check the gates."""
    return wrap_key(DataKey(key), read_wrapped(wrapped_seal_key).recipient, tag)


def unwrap_record_key_for_verdict(data: bytes, tag: str, source: str, private_key: str | None, env: Mapping[str, str]) -> bytes | None:
    """The custodian's copy of the gate-record key; None without the private key. Only the verdict calls this."""
    private = private_key if private_key is not None else env.get(ENV_PRIVATE_KEY)
    return unwrap_key(data, private, tag, source).secret if private else None


# --- the gate key --------------------------------------------------------------------


def gate_key_path(git_common_dir: Path, tag: str) -> Path:
    """The local key file of experiment ``tag``'s gate seal (a folder of its own: tags may hold dots)."""
    return key_path(git_common_dir, tag).parent / "gate" / f"{tag}.key"


def store_gate_key(git_common_dir: Path, tag: str, key: DataKey) -> Path:
    """Write the gate key file (as ``store_key``: 0700 folders, a 0600 file, never overwritten)."""
    return _store_at(gate_key_path(git_common_dir, tag), git_common_dir, tag, key)


def read_gate_key(git_common_dir: Path, tag: str) -> DataKey:
    """The gate key, for the gate (and the verdict's release); ``missing_key`` when it is not here."""
    path = gate_key_path(git_common_dir, tag)
    if not os.path.lexists(path):
        raise SealMissingKey(
            f"the gate key of experiment '{tag}' ({path}) is not on this machine, so the sealed gate rows cannot be "
            "opened here; run the gate where `gitera split` ran, or restore that key file from there."
        )
    return _read_key_file(path)


def release_gate_key(
    *,
    git_common_dir: Path,
    tag: str,
    wrapped_path: Path | None,
    env: Mapping[str, str] | None = None,
    private_key: str | None = None,
) -> DataKey | None:
    """The gate key for the verdict to release: the local key file, else ``gate.key.wrapped``
    unwrapped with the custodian's private key; None when neither is at hand."""
    path = gate_key_path(git_common_dir, tag)
    if os.path.lexists(path):
        return _read_key_file(path)
    environ = os.environ if env is None else env
    private = private_key if private_key is not None else environ.get(ENV_PRIVATE_KEY)
    if wrapped_path is not None and wrapped_path.exists() and private:
        return unwrap_key(wrapped_path.read_bytes(), private, tag, str(wrapped_path))
    return None


# --- the source data file, moved out of the work tree ---------------------------------


def source_dir(git_common_dir: Path, tag: str) -> Path:
    return key_path(git_common_dir, tag).parent / "source" / tag


def stash_source(git_common_dir: Path, tag: str, src: Path) -> Path:
    """Move ``src`` into the key store (folders 0700, the file 0600), never over another file."""
    import shutil

    folder = source_dir(git_common_dir, tag)
    _private_dirs(git_common_dir / "gitera", folder)
    target = folder / src.name
    n = 1
    while os.path.lexists(target):
        target = folder / f"{src.name}.{n}"
        n += 1
    shutil.move(str(src), str(target))
    os.chmod(target, 0o600)
    return target


def _record_path(git_common_dir: Path, tag: str) -> Path:
    return source_dir(git_common_dir, tag).with_suffix(".json")


def record_source(git_common_dir: Path, tag: str, record: Mapping[str, Any]) -> None:
    """Remember (outside git) the source file's path, size and sha256, so `status` knows a copy."""
    path = _record_path(git_common_dir, tag)
    _private_dirs(git_common_dir / "gitera", path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dict(record), fh, sort_keys=True)


def source_record(git_common_dir: Path, tag: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(_record_path(git_common_dir, tag).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
