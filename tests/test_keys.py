"""Key custody with real keys and real file modes: key files, GITERA_SEAL_KEY, X25519 recipients."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pytest

from gitera.adapters.keys import (
    ENV_DATA_KEY,
    ENV_PRIVATE_KEY,
    custody_mode,
    encode_data_key,
    generate_recipient_keypair,
    key_path,
    new_data_key,
    parse_data_key,
    public_from_private,
    read_wrapped,
    store_key,
    unwrap_for_verdict,
    unwrap_key,
    wrap_key,
)
from gitera.adapters.seal import Binding, DataKey, open_seal, seal_file
from gitera.core.errors import Exit, SealError

PACKAGE = Path(__file__).resolve().parents[1] / "gitera"
pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


def kind_of(excinfo: pytest.ExceptionInfo[SealError]) -> str:
    err = excinfo.value
    assert err.exit_code == Exit.SEAL
    assert "\n" not in str(err) and str(err).endswith(".")
    return str(getattr(err, "kind", ""))


def release(gitdir: Path, env: dict[str, str] | None = None, wrapped: Path | None = None) -> DataKey:
    return unwrap_for_verdict(git_common_dir=gitdir, tag="exp1", wrapped_path=wrapped, env=env or {})


@pytest.fixture
def gitdir(tmp_path: Path) -> Path:
    d = tmp_path / ".git"
    d.mkdir()
    return d


# --- local key file ----------------------------------------------------------------


def test_store_key_is_private_atomic_and_releasable(gitdir: Path) -> None:
    key = new_data_key()
    path = store_key(gitdir, "exp1", key)
    assert path == gitdir / "gitera" / "keys" / "exp1.key" == key_path(gitdir, "exp1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["exp1.key"]
    assert custody_mode(gitdir, "exp1", None, {}) == "file"
    assert release(gitdir) == key
    assert store_key(gitdir, "exp1", key) == path  # idempotent


def test_store_key_never_overwrites_a_different_key(gitdir: Path) -> None:
    key = new_data_key()
    store_key(gitdir, "exp1", key)
    with pytest.raises(SealError) as info:
        store_key(gitdir, "exp1", new_data_key())
    assert kind_of(info) == "key_exists"
    assert release(gitdir) == key
    assert [p.name for p in key_path(gitdir, "exp1").parent.iterdir()] == ["exp1.key"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666])
def test_permissive_key_file_is_refused(gitdir: Path, mode: int) -> None:
    path = store_key(gitdir, "exp1", new_data_key())
    path.chmod(mode)
    with pytest.raises(SealError) as info:
        release(gitdir)
    assert kind_of(info) == "permissive_key_file"
    assert f"chmod 600 {path}" in str(info.value)


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o755])
def test_permissive_key_directory_is_refused(gitdir: Path, mode: int) -> None:
    path = store_key(gitdir, "exp1", new_data_key())
    path.parent.chmod(mode)
    with pytest.raises(SealError) as info:
        release(gitdir)
    assert kind_of(info) == "permissive_key_file"
    assert f"chmod 700 {path.parent}" in str(info.value)
    with pytest.raises(SealError) as info:
        store_key(gitdir, "exp2", new_data_key())
    assert kind_of(info) == "permissive_key_file"


def test_symlinked_key_file_is_refused(gitdir: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.key"
    real.write_text(encode_data_key(new_data_key()) + "\n")
    real.chmod(0o600)
    path = key_path(gitdir, "exp1")
    path.parent.mkdir(parents=True, mode=0o700)
    path.parent.parent.chmod(0o700)
    path.symlink_to(real)
    with pytest.raises(SealError) as info:
        release(gitdir)
    assert kind_of(info) == "permissive_key_file"


def test_corrupt_key_file_is_malformed(gitdir: Path) -> None:
    path = store_key(gitdir, "exp1", new_data_key())
    path.write_text("not a key\n")
    with pytest.raises(SealError) as info:
        release(gitdir)
    assert kind_of(info) == "malformed_key"


def test_missing_key(gitdir: Path) -> None:
    assert custody_mode(gitdir, "exp1", None, {}) == "none"
    with pytest.raises(SealError) as info:
        release(gitdir)
    assert kind_of(info) == "missing_key"
    assert ENV_DATA_KEY in str(info.value)


# --- GITERA_SEAL_KEY ------------------------------------------------------------------


def test_env_key_in_hex_and_base64(gitdir: Path) -> None:
    key = new_data_key()
    forms = [
        key.secret.hex(),
        key.secret.hex().upper(),
        encode_data_key(key),
        base64.urlsafe_b64encode(key.secret).decode().rstrip("="),
        f"  {encode_data_key(key)}\n",
    ]
    for text in forms:
        assert release(gitdir, {ENV_DATA_KEY: text}) == key
    assert custody_mode(gitdir, "exp1", None, {ENV_DATA_KEY: forms[0]}) == "env"


def test_env_key_takes_precedence_over_the_key_file(gitdir: Path) -> None:
    store_key(gitdir, "exp1", new_data_key())
    key = new_data_key()
    assert release(gitdir, {ENV_DATA_KEY: encode_data_key(key)}) == key


@pytest.mark.parametrize("text", ["nope", "00" * 31, "zz" * 32, base64.b64encode(b"x" * 31).decode(), "é" * 44])
def test_malformed_env_key(gitdir: Path, text: str) -> None:
    with pytest.raises(SealError) as info:
        release(gitdir, {ENV_DATA_KEY: text})
    assert kind_of(info) == "malformed_key"
    assert ENV_DATA_KEY in str(info.value)
    with pytest.raises(SealError):
        parse_data_key(text, "x")


# --- X25519 recipient ---------------------------------------------------------------


def test_wrap_unwrap_round_trip_and_wrapped_file_reveals_no_secret(tmp_path: Path) -> None:
    pair = generate_recipient_keypair()
    assert pair.private.startswith("gitera-seal-sk1:") and pair.public.startswith("gitera-seal-pk1:")
    assert pair.private not in repr(pair)
    assert public_from_private(pair.private) == pair.public
    key = new_data_key()
    wrapped = wrap_key(key, pair.public, "exp1")
    assert key.secret.hex().encode() not in wrapped and base64.b64encode(key.secret) not in wrapped
    assert wrapped != wrap_key(key, pair.public, "exp1")  # fresh ephemeral each time
    info = read_wrapped(wrapped)
    assert (info.recipient, info.tag, info.key_id) == (pair.public, "exp1", key.key_id)
    assert unwrap_key(wrapped, pair.private, "exp1") == key


def test_recipient_custody_end_to_end(gitdir: Path, tmp_path: Path) -> None:
    """Split time: seal with a random key, commit only key.wrapped; the agent cannot open; the custodian can."""
    pair = generate_recipient_keypair()
    key = new_data_key()
    wrapped = tmp_path / "key.wrapped"
    wrapped.write_bytes(wrap_key(key, pair.public, "exp1"))
    binding = Binding("exp1", hashlib.sha256(b"f").hexdigest(), ".gitera/exp1/split/test.seal")
    src = tmp_path / "test.jsonl"
    src.write_bytes(b'{"id": 1}\n' * 10000)
    seal_file(src, tmp_path / "test.seal", key, binding)
    assert custody_mode(gitdir, "exp1", wrapped, {}) == "recipient"

    # the iterating agent: no private key, and a GITERA_SEAL_KEY guess does not bypass the recipient
    for env in ({}, {ENV_DATA_KEY: encode_data_key(new_data_key())}):
        with pytest.raises(SealError) as info:
            release(gitdir, env, wrapped=wrapped)
        assert kind_of(info) == "missing_key"
        assert ENV_PRIVATE_KEY in str(info.value)

    released = release(gitdir, {ENV_PRIVATE_KEY: pair.private}, wrapped=wrapped)
    out = tmp_path / "opened.jsonl"
    open_seal(tmp_path / "test.seal", released, binding, out)
    assert out.read_bytes() == src.read_bytes()
    assert unwrap_for_verdict(git_common_dir=gitdir, tag="exp1", wrapped_path=wrapped, env={}, private_key=pair.private) == key


def test_wrong_private_key_fails_clearly(tmp_path: Path) -> None:
    pair, other = generate_recipient_keypair(), generate_recipient_keypair()
    wrapped = wrap_key(new_data_key(), pair.public, "exp1")
    with pytest.raises(SealError) as info:
        unwrap_key(wrapped, other.private, "exp1")
    assert kind_of(info) == "wrong_key"
    assert pair.public in str(info.value) and other.public in str(info.value)
    assert other.private not in str(info.value)


def test_wrapped_key_from_another_experiment(tmp_path: Path) -> None:
    pair = generate_recipient_keypair()
    wrapped = wrap_key(new_data_key(), pair.public, "exp1")
    with pytest.raises(SealError) as info:
        unwrap_key(wrapped, pair.private, "exp2")
    assert kind_of(info) == "wrong_key"


@pytest.mark.parametrize("field", ["ephemeral", "ciphertext", "key_id", "tag_forged"])
def test_tampered_wrapped_key(field: str) -> None:
    pair = generate_recipient_keypair()
    doc = json.loads(wrap_key(new_data_key(), pair.public, "exp1"))
    tag = "exp1"
    if field == "tag_forged":
        doc["tag"] = tag = "exp2"
    elif field == "key_id":
        doc["key_id"] = new_data_key().key_id
    else:
        raw = bytearray(base64.b64decode(doc[field]))
        raw[0] ^= 1
        doc[field] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SealError) as info:
        unwrap_key(json.dumps(doc).encode(), pair.private, tag)
    assert kind_of(info) == "tampered"


@pytest.mark.parametrize("content", [b"", b"garbage", b"{}", b'{"format": "x"}', b"\xff\xfe"])
def test_garbage_wrapped_file(content: bytes) -> None:
    pair = generate_recipient_keypair()
    with pytest.raises(SealError) as info:
        unwrap_key(content, pair.private, "exp1")
    assert kind_of(info) == "tampered"


@pytest.mark.parametrize("private", ["", "gitera-seal-sk1:short", "gitera-seal-pk1:" + "A" * 43 + "=", "hello"])
def test_malformed_private_key(private: str) -> None:
    pair = generate_recipient_keypair()
    wrapped = wrap_key(new_data_key(), pair.public, "exp1")
    with pytest.raises(SealError) as info:
        unwrap_key(wrapped, private, "exp1")
    assert kind_of(info) == "malformed_key"
    with pytest.raises(SealError) as info:
        wrap_key(new_data_key(), private or "x", "exp1")
    assert kind_of(info) == "malformed_key"


# --- boundaries of the crypto adapter --------------------------------------------


def test_only_the_adapter_imports_cryptography() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("seal.py", "keys.py") and re.search(r"^\s*(from|import)\s+cryptography", p.read_text(), re.MULTILINE)
    ]
    assert offenders == []


def test_unwrap_for_verdict_is_defined_once() -> None:
    defs = [p.name for p in PACKAGE.rglob("*.py") if "def unwrap_for_verdict" in p.read_text()]
    assert defs == ["keys.py"]


def test_only_the_verdict_calls_unwrap_for_verdict() -> None:
    """Rule 10: the verdict is the only code path that releases a seal key."""
    callers = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if re.search(r"\bunwrap_for_verdict\s*\(", p.read_text())
        and p.name != "keys.py"
    ]
    assert callers == ["domain/opening.py"]  # the verdict's opening
