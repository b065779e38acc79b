"""The seal: the sealed test set's file format, streamed encryption, and the commitment.

This module and ``gitera.adapters.keys`` are the crypto adapter: nothing else in the package
imports ``cryptography``. The byte format, the construction and the threat model are
documented in docs/seal.md; keep the two in step.

Public API::

    DataKey(secret)                       a 32-byte data key; .key_id is derived, never the raw hash
    DataKey.generate() -> DataKey
    Binding(tag, frame_hash, path, pins=None)
                                          what a seal is bound to (experiment, frame, repo path and,
                                          from format version 2, the digest of the split's pinned files)
    seal_file(src, dst, key, binding, *, commitment_salt=None, chunk_size=DEFAULT_CHUNK_SIZE,
              algorithm=AES_256_GCM) -> SealInfo
    open_seal(src, key, binding, dst, *, commitment=None) -> None
                                          authenticates everything (and the commitment) or releases nothing
    read_header(src) -> Header                    no key needed (for ``gitera seal status``)
    header_of(data, name) -> Header               the same, for a seal's bytes (a blob read from git)
    new_salt() -> bytes
    commit_plaintext(path, salt) -> str           salted SHA-256 over the plaintext (hex)
    check_commitment(path, salt, expected) -> None

Every failure is a ``SealError`` subclass with a ``kind``: ``not_a_seal``,
``unsupported_version``, ``truncated``, ``tampered``, ``wrong_experiment``,
``wrong_key``, ``missing_key``, ``malformed_key``, ``permissive_key_file``,
``key_exists``, ``commitment_mismatch``. Plaintext is never released (written to the
destination or returned) unless every byte of the seal authenticated: ``open_seal``
decrypts into a 0600 temporary file next to ``dst`` and renames it only on full success.

Construction: the STREAM online AE scheme of Hoang, Reyhanitabar, Rogaway and Vizár
(CRYPTO 2015) over AES-256-GCM (or ChaCha20-Poly1305). A per-file chunk key is derived
with HKDF-SHA256 from the data key and a random 16-byte file id; chunk ``i`` uses the
nonce ``prefix(7) || uint32_be(i) || final(1)`` and the whole header as associated
data, so reordering, duplication, dropping, truncation at a chunk boundary, and moving
the seal to another experiment, frame or path all fail authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, ClassVar, Protocol

from gitera.core.errors import SealError

MAGIC = b"GITERASEAL"
VERSION = 1  # the header without split pins
VERSION_PINNED = 2  # the header binds the digest of the split's pinned files as well
VERSIONS = (VERSION, VERSION_PINNED)
AES_256_GCM = 1
CHACHA20_POLY1305 = 2
ALGORITHMS = {AES_256_GCM: "AES-256-GCM", CHACHA20_POLY1305: "ChaCha20-Poly1305"}
MIN_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 1024 * 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024
KEY_SIZE = 32
KEY_ID_SIZE = 16
FILE_ID_SIZE = 16
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
SALT_SIZE = 32
MAX_TAG_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_CHUNKS = 2**32
COMMITMENT_DOMAIN = b"gitera-commitment-v1\x00"
_KEY_ID_INFO = b"gitera seal key id v1"
_CHUNK_KEY_INFO = b"gitera seal chunk key v1"
# magic, version, algorithm, chunk size, key id, file id, nonce prefix, plaintext size
_FIXED = struct.Struct(">10sBBI16s16s7sQ")
_DIGEST_SIZE = 32
_HEX = frozenset("0123456789abcdef")
_READ_BLOCK = 1024 * 1024


# --- errors ------------------------------------------------------------------------


class SealNotASeal(SealError):
    kind: ClassVar[str] = "not_a_seal"


class SealUnsupportedVersion(SealError):
    kind: ClassVar[str] = "unsupported_version"


class SealTruncated(SealError):
    kind: ClassVar[str] = "truncated"


class SealTampered(SealError):
    kind: ClassVar[str] = "tampered"


class SealWrongExperiment(SealError):
    kind: ClassVar[str] = "wrong_experiment"


class SealWrongKey(SealError):
    kind: ClassVar[str] = "wrong_key"


class SealMissingKey(SealError):
    kind: ClassVar[str] = "missing_key"


class SealMalformedKey(SealError):
    kind: ClassVar[str] = "malformed_key"


class SealPermissiveKeyFile(SealError):
    kind: ClassVar[str] = "permissive_key_file"


class SealKeyExists(SealError):
    kind: ClassVar[str] = "key_exists"


class SealCommitmentMismatch(SealError):
    kind: ClassVar[str] = "commitment_mismatch"


# --- values ------------------------------------------------------------------------


def _hkdf(ikm: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


@dataclass(frozen=True)
class DataKey:
    """A 32-byte symmetric data key. ``repr`` never shows the secret."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_SIZE:
            raise ValueError(f"a data key is exactly {KEY_SIZE} bytes")

    @classmethod
    def generate(cls) -> DataKey:
        return cls(os.urandom(KEY_SIZE))

    @property
    def key_id(self) -> str:
        """HKDF-SHA256(key, info="gitera seal key id v1")[:16] in hex: names the key, reveals nothing."""
        return _hkdf(self.secret, None, _KEY_ID_INFO, KEY_ID_SIZE).hex()


@dataclass(frozen=True)
class Binding:
    """What a seal belongs to: experiment tag, frame hash (hex sha256), repo-relative path, and
    ``pins``: the hex sha256 digest of the split's pinned files (train, dev, gate, test), so a
    relabelled dev.jsonl no longer matches the seals made with it (None: a version-1 seal)."""

    tag: str
    frame_hash: str
    path: str
    pins: str | None = None

    def __post_init__(self) -> None:
        if self.pins is not None and (len(self.pins) != 64 or not set(self.pins) <= _HEX):
            raise ValueError("binding pins must be a lowercase hex sha256 (64 characters)")
        tag_bytes = self.tag.encode("utf-8")
        if not 0 < len(tag_bytes) <= MAX_TAG_BYTES:
            raise ValueError(f"binding tag must be 1..{MAX_TAG_BYTES} UTF-8 bytes")
        if len(self.frame_hash) != 64 or not set(self.frame_hash) <= _HEX:
            raise ValueError("binding frame_hash must be a lowercase hex sha256 (64 characters)")
        pure = PurePosixPath(self.path)
        path_bytes = self.path.encode("utf-8")
        if (
            not 0 < len(path_bytes) <= MAX_PATH_BYTES
            or pure.is_absolute()
            or ".." in pure.parts
            or "\\" in self.path
            or str(pure) != self.path
        ):
            raise ValueError(f"binding path must be a normalized repo-relative POSIX path, got {self.path!r}")


@dataclass(frozen=True)
class Header:
    """A seal's header, readable without any key."""

    version: int
    algorithm: int
    chunk_size: int
    key_id: str
    seal_id: str
    nonce_prefix: bytes = field(repr=False)
    plaintext_size: int
    binding: Binding
    raw: bytes = field(repr=False)

    @property
    def algorithm_name(self) -> str:
        return ALGORITHMS[self.algorithm]

    @property
    def chunk_count(self) -> int:
        return max(1, -(-self.plaintext_size // self.chunk_size))

    @property
    def sealed_size(self) -> int:
        """The exact byte length a well-formed seal with this header has."""
        return len(self.raw) + self.plaintext_size + TAG_SIZE * self.chunk_count


@dataclass(frozen=True)
class SealInfo:
    """What ``seal_file`` made. ``commitment`` is set only when a salt was given."""

    seal_id: str
    key_id: str
    algorithm: str
    chunk_size: int
    plaintext_size: int
    sealed_size: int
    commitment: str | None


class _Aead(Protocol):
    def encrypt_into(self, nonce: bytes, data: memoryview, associated_data: bytes, buf: memoryview) -> int: ...

    def decrypt_into(self, nonce: bytes, data: memoryview, associated_data: bytes, buf: memoryview) -> int: ...


# --- header ------------------------------------------------------------------------


def _encode_header(
    algorithm: int, chunk_size: int, key_id: str, file_id: bytes, prefix: bytes, size: int, binding: Binding
) -> bytes:
    tag = binding.tag.encode("utf-8")
    path = binding.path.encode("utf-8")
    pins = b"" if binding.pins is None else bytes.fromhex(binding.pins)
    version = VERSION if binding.pins is None else VERSION_PINNED
    body = (
        _FIXED.pack(MAGIC, version, algorithm, chunk_size, bytes.fromhex(key_id), file_id, prefix, size)
        + struct.pack(">B", len(tag))
        + tag
        + bytes.fromhex(binding.frame_hash)
        + pins
        + struct.pack(">H", len(path))
        + path
    )
    return body + hashlib.sha256(body).digest()


def _read_exact(f: BinaryIO, n: int, src: Path) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise SealTruncated(
            f"{src} ends inside its header: the seal is truncated; restore it from git (git checkout -- {src})."
        )
    return data


def _parse_header(f: BinaryIO, src: Path) -> Header:
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        if magic and MAGIC.startswith(magic):
            raise SealTruncated(
                f"{src} ends inside its header: the seal is truncated; restore it from git (git checkout -- {src})."
            )
        raise SealNotASeal(f"{src} is not a gitera seal (no GITERASEAL magic); check the path you passed.")
    first = magic + _read_exact(f, 1, src)
    version = first[len(MAGIC)]
    if version not in VERSIONS:
        raise SealUnsupportedVersion(
            f"{src} is seal format version {version} but this gitera reads versions {VERSION} and {VERSION_PINNED}; "
            "upgrade gitera (or restore the file from git if it was altered)."
        )
    rest = _read_exact(f, _FIXED.size - len(first), src)
    fixed = first + rest
    _, _, algorithm, chunk_size, key_id, file_id, prefix, size = _FIXED.unpack(fixed)
    (tag_len,) = struct.unpack(">B", tag_len_b := _read_exact(f, 1, src))
    tag_b = _read_exact(f, tag_len, src)
    frame_b = _read_exact(f, 32, src)
    pins_b = _read_exact(f, 32, src) if version == VERSION_PINNED else b""
    (path_len,) = struct.unpack(">H", path_len_b := _read_exact(f, 2, src))
    if path_len > MAX_PATH_BYTES:
        raise _header_tampered(src)
    path_b = _read_exact(f, path_len, src)
    body = fixed + tag_len_b + tag_b + frame_b + pins_b + path_len_b + path_b
    digest = _read_exact(f, _DIGEST_SIZE, src)
    if not hmac.compare_digest(digest, hashlib.sha256(body).digest()):
        raise _header_tampered(src)
    if algorithm not in ALGORITHMS:
        raise SealUnsupportedVersion(
            f"{src} uses cipher id {algorithm}, which this gitera does not know; upgrade gitera."
        )
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE or -(-size // chunk_size) > MAX_CHUNKS:
        raise _header_tampered(src)
    try:
        binding = Binding(tag_b.decode("utf-8"), frame_b.hex(), path_b.decode("utf-8"), pins_b.hex() if pins_b else None)
    except (UnicodeDecodeError, ValueError):
        raise _header_tampered(src) from None
    return Header(
        version=version,
        algorithm=algorithm,
        chunk_size=chunk_size,
        key_id=key_id.hex(),
        seal_id=file_id.hex(),
        nonce_prefix=prefix,
        plaintext_size=size,
        binding=binding,
        raw=body + digest,
    )


def _header_tampered(src: Path) -> SealTampered:
    return SealTampered(
        f"{src} has a corrupted or altered header; restore it from git (git checkout -- {src}) "
        "and do not edit seal files."
    )


def read_header(src: Path) -> Header:
    """Parse and integrity-check a seal's header without any key (cheap: reads only the header)."""
    try:
        with open(src, "rb") as f:
            return _parse_header(f, src)
    except FileNotFoundError:
        raise SealNotASeal(f"{src} does not exist; run `gitera split` to create the sealed test set.") from None


def header_of(data: bytes, name: str) -> Header:
    """``read_header`` for a seal's bytes (a blob read from git); ``name`` names it in errors."""
    return _parse_header(io.BytesIO(data), Path(name))


# --- chunked AEAD ------------------------------------------------------------------


def _aead(key: DataKey, header_algorithm: int, file_id: bytes) -> _Aead:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    chunk_key = _hkdf(key.secret, file_id, _CHUNK_KEY_INFO + bytes([header_algorithm]), KEY_SIZE)
    if header_algorithm == AES_256_GCM:
        return AESGCM(chunk_key)
    return ChaCha20Poly1305(chunk_key)


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if final else 0)


def _commitment_hasher(salt: bytes) -> hashlib._Hash:
    if len(salt) != SALT_SIZE:
        raise ValueError(f"a commitment salt is exactly {SALT_SIZE} bytes")
    h = hashlib.sha256()
    h.update(COMMITMENT_DOMAIN)
    h.update(salt)
    return h


def seal_file(
    src: Path,
    dst: Path,
    key: DataKey,
    binding: Binding,
    *,
    commitment_salt: bytes | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    algorithm: int = AES_256_GCM,
) -> SealInfo:
    """Encrypt ``src`` into the seal ``dst`` (written atomically), streaming in constant memory.

    With ``commitment_salt`` the salted commitment of the plaintext is computed in the
    same pass and returned in ``SealInfo.commitment`` (same value as ``commit_plaintext``).
    """
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm id {algorithm}")
    hasher = _commitment_hasher(commitment_salt) if commitment_salt is not None else None
    file_id = os.urandom(FILE_ID_SIZE)
    prefix = os.urandom(NONCE_PREFIX_SIZE)
    key_id = key.key_id
    aead = _aead(key, algorithm, file_id)
    with open(src, "rb") as inp:
        size = os.fstat(inp.fileno()).st_size
        if -(-size // chunk_size) > MAX_CHUNKS:
            raise ValueError("file too large for one seal")
        header = _encode_header(algorithm, chunk_size, key_id, file_id, prefix, size, binding)
        count = max(1, -(-size // chunk_size))
        inbuf = bytearray(chunk_size)
        outbuf = bytearray(chunk_size + TAG_SIZE)
        in_view, out_view = memoryview(inbuf), memoryview(outbuf)
        changed = SealError(f"{src} changed while it was being sealed; run the command again.")
        with _AtomicWriter(dst, public=True) as out:
            out.write(header)
            for i in range(count):
                final = i == count - 1
                want = chunk_size if not final else size - chunk_size * (count - 1)
                got = _readinto_full(inp, in_view[:want])
                if got != want:
                    raise changed
                if hasher is not None:
                    hasher.update(in_view[:want])
                n = aead.encrypt_into(_nonce(prefix, i, final), in_view[:want], header, out_view[: want + TAG_SIZE])
                out.write(out_view[:n])
            if inp.read(1):
                raise changed
    return SealInfo(
        seal_id=file_id.hex(),
        key_id=key_id,
        algorithm=ALGORITHMS[algorithm],
        chunk_size=chunk_size,
        plaintext_size=size,
        sealed_size=len(header) + size + TAG_SIZE * count,
        commitment=hasher.hexdigest() if hasher is not None else None,
    )


def _readinto_full(f: io.BufferedIOBase, view: memoryview) -> int:
    total = 0
    while total < len(view):
        n = f.readinto(view[total:])
        if not n:
            break
        total += n
    return total


def open_seal(
    src: Path, key: DataKey, binding: Binding, dst: Path, *, commitment: tuple[bytes, str] | None = None
) -> None:
    """Authenticate and decrypt the seal ``src`` into ``dst``; on any failure ``dst`` is untouched.

    Checks, in order: header (``not_a_seal``, ``unsupported_version``, ``truncated``,
    ``tampered``), binding (``wrong_experiment``), key id (``wrong_key``), length
    (``truncated``/``tampered``), then every chunk's tag (``tampered``/``truncated``).
    With ``commitment=(salt, expected)`` the plaintext must also open the split-time
    commitment (``commitment_mismatch``), checked in the same pass before release.
    """
    try:
        f = open(src, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise SealNotASeal(f"{src} does not exist; run `gitera split` to create the sealed test set.") from None
    with f:
        header = _parse_header(f, src)
        _check_binding(header, binding, src)
        if not hmac.compare_digest(header.key_id, key.key_id):
            raise SealWrongKey(
                f"{src} was sealed with key {header.key_id} but the key supplied has id {key.key_id}; "
                f"supply the key of experiment '{binding.tag}'."
            )
        actual = os.fstat(f.fileno()).st_size
        if actual < header.sealed_size:
            raise _truncated(src, actual, header.sealed_size)
        if actual > header.sealed_size:
            raise SealTampered(
                f"{src} has {actual - header.sealed_size} unexpected bytes after its last chunk: it was altered; "
                f"restore it from git (git checkout -- {src})."
            )
        _decrypt_to(f, header, key, src, dst, commitment)


def _truncated(src: Path, actual: int, expected: int) -> SealTruncated:
    return SealTruncated(
        f"{src} is {actual} bytes but its header says {expected}: the seal is truncated; "
        f"restore it from git (git checkout -- {src})."
    )


def _check_binding(header: Header, binding: Binding, src: Path) -> None:
    got = header.binding
    if got.pins != binding.pins and (got.tag, got.frame_hash, got.path) == (binding.tag, binding.frame_hash, binding.path):
        raise SealWrongExperiment(
            f"{src} was sealed with split files whose pins digest is {got.pins or 'absent (format 1)'}, but this "
            f"experiment's split files give {binding.pins or 'none'}: a split file (train/dev/gate/test) was changed "
            "after the split; restore the split files from the split commit."
        )
    for name, have, want in (
        ("experiment tag", got.tag, binding.tag),
        ("frame hash", got.frame_hash, binding.frame_hash),
        ("path", got.path, binding.path),
    ):
        if have != want:
            raise SealWrongExperiment(
                f"{src} is bound to {name} '{have}', not '{want}': it belongs to another experiment; "
                "run `gitera split` for this experiment instead of copying a seal."
            )


def _decrypt_to(
    f: io.BufferedIOBase, header: Header, key: DataKey, src: Path, dst: Path, commitment: tuple[bytes, str] | None
) -> None:
    file_id = bytes.fromhex(header.seal_id)
    aead = _aead(key, header.algorithm, file_id)
    cs = header.chunk_size
    count = header.chunk_count
    inbuf = bytearray(cs + TAG_SIZE)
    outbuf = bytearray(cs)
    in_view, out_view = memoryview(inbuf), memoryview(outbuf)
    from cryptography.exceptions import InvalidTag

    if commitment is not None and len(commitment[0]) != SALT_SIZE:
        raise _commitment_mismatch(src)
    hasher = _commitment_hasher(commitment[0]) if commitment is not None else None
    with _AtomicWriter(dst) as out:
        for i in range(count):
            final = i == count - 1
            plen = cs if not final else header.plaintext_size - cs * (count - 1)
            got = _readinto_full(f, in_view[: plen + TAG_SIZE])
            if got != plen + TAG_SIZE:
                raise _truncated(src, len(header.raw) + cs * i + TAG_SIZE * i + got, header.sealed_size)
            try:
                n = aead.decrypt_into(
                    _nonce(header.nonce_prefix, i, final), in_view[: plen + TAG_SIZE], header.raw, out_view[:plen]
                )
            except InvalidTag:
                raise SealTampered(
                    f"{src} chunk {i + 1} of {count} failed authentication: the seal was altered "
                    f"(or its chunks reordered); restore it from git (git checkout -- {src})."
                ) from None
            out.write(out_view[:n])
            if hasher is not None:
                hasher.update(out_view[:n])
        if f.read(1):
            raise SealTampered(
                f"{src} grew while it was being opened: it was altered; restore it from git (git checkout -- {src})."
            )
        if (
            commitment is not None
            and hasher is not None
            and not hmac.compare_digest(hasher.hexdigest(), commitment[1].lower())
        ):
            raise _commitment_mismatch(src)


class _AtomicWriter:
    """A 0600 temporary file next to ``dst``, renamed onto ``dst`` only if the block succeeds.

    ``public`` makes the finished file 0644 (a seal is ciphertext, committed to git).
    """

    def __init__(self, dst: Path, public: bool = False) -> None:
        self.dst = dst
        self.public = public
        self.tmp: Path | None = None
        self.f: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        import tempfile

        fd, name = tempfile.mkstemp(dir=self.dst.parent, prefix=f".{self.dst.name}.", suffix=".partial")
        self.tmp = Path(name)
        self.f = os.fdopen(fd, "wb", buffering=0)
        return self.f

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        assert self.f is not None and self.tmp is not None
        try:
            if exc_type is None:
                if self.public and hasattr(os, "fchmod"):
                    os.fchmod(self.f.fileno(), 0o644)
                os.fsync(self.f.fileno())
            self.f.close()
            if exc_type is None:
                os.replace(self.tmp, self.dst)
        finally:
            self.f.close()
            self.tmp.unlink(missing_ok=True)


# --- commitment --------------------------------------------------------------------


def new_salt() -> bytes:
    """A fresh random 32-byte commitment salt (kept secret until the verdict reveals it)."""
    return os.urandom(SALT_SIZE)


def commit_plaintext(path: Path, salt: bytes) -> str:
    """hex SHA-256("gitera-commitment-v1\\0" || salt || plaintext), streamed."""
    h = _commitment_hasher(salt)
    with open(path, "rb") as f:
        while block := f.read(_READ_BLOCK):
            h.update(block)
    return h.hexdigest()


def check_commitment(path: Path, salt: bytes, expected: str) -> None:
    """Raise ``commitment_mismatch`` unless ``path`` opens the commitment ``expected`` with ``salt``."""
    got = commit_plaintext(path, salt) if len(salt) == SALT_SIZE else ""
    if not hmac.compare_digest(got, expected.lower()):
        raise _commitment_mismatch(path)


def _commitment_mismatch(path: Path) -> SealCommitmentMismatch:
    return SealCommitmentMismatch(
        f"{path} does not match the commitment recorded at split time: the test set differs "
        "from the one that was sealed; do not trust this verdict and reseal fresh data."
    )


_COMMITMENT_SALT_INFO = b"gitera commitment salt v1"


def derive_commitment_salt(secret: bytes) -> bytes:
    """The commitment's salt is derived from the data key, so releasing the key opens it."""
    return hmac.new(secret, _COMMITMENT_SALT_INFO, hashlib.sha256).digest()
