"""The seal format with real encryption: round trips, the tamper matrix, binding, fuzzing, commitment."""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.adapters.seal import (
    AES_256_GCM,
    CHACHA20_POLY1305,
    COMMITMENT_DOMAIN,
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    Binding,
    DataKey,
    Header,
    check_commitment,
    commit_plaintext,
    new_salt,
    open_seal,
    read_header,
    seal_file,
)
from gitera.core.errors import Exit, SealError

CS = MIN_CHUNK_SIZE
FRAME = hashlib.sha256(b"frame").hexdigest()
BINDING = Binding("exp1", FRAME, ".gitera/exp1/split/test.seal")
KEY = DataKey(bytes(range(32)))


def make(tmp: Path, data: bytes, *, key: DataKey = KEY, binding: Binding = BINDING, chunk_size: int = CS, algorithm: int = AES_256_GCM) -> Path:
    src = tmp / "plain.jsonl"
    src.write_bytes(data)
    dst = tmp / "test.seal"
    seal_file(src, dst, key, binding, chunk_size=chunk_size, algorithm=algorithm)
    return dst


def expect_refusal(seal: Path, kind: str, *, key: DataKey = KEY, binding: Binding = BINDING) -> SealError:
    out_dir = seal.parent / "out"
    out_dir.mkdir(exist_ok=True)
    dst = out_dir / "opened.jsonl"
    with pytest.raises(SealError) as info:
        open_seal(seal, key, binding, dst)
    err = info.value
    assert getattr(err, "kind", None) == kind, (kind, err)
    assert err.exit_code == Exit.SEAL
    msg = str(err)
    assert "\n" not in msg and msg.endswith(".") and len(msg) < 400
    assert not dst.exists()
    assert list(out_dir.iterdir()) == [], "a partial plaintext file was left behind"
    return err


def chunk_offsets(seal: Path) -> tuple[Header, list[tuple[int, int]]]:
    h = read_header(seal)
    offs, pos, left = [], len(h.raw), h.plaintext_size
    for _ in range(h.chunk_count):
        n = min(CS, left) + TAG_SIZE
        offs.append((pos, pos + n))
        pos += n
        left -= n - TAG_SIZE
    return h, offs


# --- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CS - 1, CS, 3 * CS, 3 * CS + 17])
@pytest.mark.parametrize("algorithm", [AES_256_GCM, CHACHA20_POLY1305])
def test_round_trip(tmp_path: Path, size: int, algorithm: int) -> None:
    data = os.urandom(size)
    seal = make(tmp_path, data, algorithm=algorithm)
    h = read_header(seal)
    assert (h.plaintext_size, h.chunk_count, h.algorithm) == (size, max(1, -(-size // CS)), algorithm)
    assert seal.stat().st_size == h.sealed_size
    assert h.binding == BINDING and h.key_id == KEY.key_id
    dst = tmp_path / "opened.jsonl"
    open_seal(seal, KEY, BINDING, dst)
    assert dst.read_bytes() == data
    assert dst.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opened.jsonl", "plain.jsonl", "test.seal"]


def test_ciphertext_hides_plaintext_and_is_fresh_each_time(tmp_path: Path) -> None:
    data = b'{"id": 1, "text": "secret test row"}\n' * 5000
    a = make(tmp_path, data).read_bytes()
    b = make(tmp_path, data).read_bytes()
    assert b"secret test row" not in a
    assert a != b and read_header(tmp_path / "test.seal").seal_id != a[32:48].hex()


def test_key_id_is_derived_not_a_plain_hash() -> None:
    assert len(KEY.key_id) == 32
    assert KEY.key_id not in (hashlib.sha256(KEY.secret).hexdigest()[:32], KEY.secret.hex()[:32])
    assert KEY.key_id != DataKey.generate().key_id
    assert KEY.secret.hex() not in repr(KEY)


def test_sealing_streams_in_constant_memory(tmp_path: Path) -> None:
    src = tmp_path / "big"
    with open(src, "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(32))
    tracemalloc.start()
    try:
        seal_file(src, tmp_path / "big.seal", KEY, BINDING)
        open_seal(tmp_path / "big.seal", KEY, BINDING, tmp_path / "big.out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * (1 << 20), peak
    assert (tmp_path / "big.out").stat().st_size == 32 << 20


def test_bad_arguments_are_programming_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Binding("t", "not-a-hash", "a.seal")
    with pytest.raises(ValueError):
        Binding("t", FRAME, "../outside.seal")
    with pytest.raises(ValueError):
        Binding("t", FRAME, "/abs.seal")
    with pytest.raises(ValueError):
        DataKey(b"short")
    with pytest.raises(ValueError):
        make(tmp_path, b"x", chunk_size=1024)


# --- the tamper matrix: header ----------------------------------------------------

HEADER_FIELDS = [
    # name, offset, expected kind when one byte of it is flipped
    ("magic", 0, "not_a_seal"),
    ("magic_end", 9, "not_a_seal"),
    ("version", 10, "unsupported_version"),
    ("algorithm", 11, "tampered"),
    ("chunk_size", 12, "tampered"),
    ("chunk_size_low", 15, "tampered"),
    ("key_id", 16, "tampered"),
    ("file_id", 32, "tampered"),
    ("nonce_prefix", 48, "tampered"),
    ("plaintext_size", 55, "tampered"),
    ("plaintext_size_low", 62, "tampered"),
    ("tag_length", 63, "tampered"),
    ("tag", 64, "tampered"),
]


def flip(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]


def header_layout(h: Header) -> dict[str, int]:
    tag_len = len(h.binding.tag.encode())
    frame = 64 + tag_len
    path_len = frame + 32
    return {"frame_hash": frame, "path_length": path_len, "path": path_len + 2, "digest": len(h.raw) - 32}


@pytest.fixture
def multi(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(3 * CS + 1000)
    return make(tmp_path, data), data


@pytest.mark.parametrize(("name", "offset", "kind"), HEADER_FIELDS)
@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_flipped_fixed_header_byte(multi: tuple[Path, bytes], name: str, offset: int, kind: str, mask: int) -> None:
    seal, _ = multi
    seal.write_bytes(flip(seal.read_bytes(), offset, mask))
    expect_refusal(seal, kind)


@pytest.mark.parametrize("name", ["frame_hash", "path_length", "path", "digest"])
@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_flipped_variable_header_byte(multi: tuple[Path, bytes], name: str, mask: int) -> None:
    seal, _ = multi
    h = read_header(seal)
    for delta in (0, 1):
        pos = header_layout(h)[name] + delta
        original = seal.read_bytes()
        seal.write_bytes(flip(original, pos, mask))
        expect_refusal(seal, "tampered")
        seal.write_bytes(original)


def test_every_header_byte_is_protected(multi: tuple[Path, bytes]) -> None:
    seal, _ = multi
    original = seal.read_bytes()
    n = len(read_header(seal).raw)
    for pos in range(n):
        seal.write_bytes(flip(original, pos, 0x10))
        with pytest.raises(SealError):
            read_header(seal)
        expect_refusal(seal, "not_a_seal" if pos < 10 else "unsupported_version" if pos == 10 else "tampered")


def reforge(raw: bytes, header_len: int) -> bytes:
    """An attacker who rewrites header fields and recomputes the unkeyed header digest."""
    body = raw[: header_len - 32]
    return body + hashlib.sha256(body).digest() + raw[header_len:]


@pytest.mark.parametrize(
    ("offset", "kinds"),
    [
        (11, {"tampered", "unsupported_version"}),  # algorithm: AES -> ChaCha or unknown
        (32, {"tampered"}),  # file id -> another chunk key
        (48, {"tampered"}),  # nonce prefix
        (54, {"tampered"}),  # last prefix byte
        (16, {"wrong_key"}),  # key id: indistinguishable from a seal made with another key
    ],
)
def test_reforged_header_digest_still_fails_authentication(
    multi: tuple[Path, bytes], offset: int, kinds: set[str]
) -> None:
    seal, _ = multi
    h = read_header(seal)
    forged = reforge(flip(seal.read_bytes(), offset), len(h.raw))
    seal.write_bytes(forged)
    err = None
    for kind in kinds:
        try:
            expect_refusal(seal, kind)
            return
        except AssertionError as e:
            err = e
    raise AssertionError(err)


def test_reforged_size_cannot_drop_the_last_chunk(multi: tuple[Path, bytes]) -> None:
    """STREAM: a truncation at a chunk boundary with a matching size in a re-forged header still fails."""
    seal, _ = multi
    h, offs = chunk_offsets(seal)
    raw = seal.read_bytes()
    size_pos = 55
    shorter = raw[:size_pos] + struct.pack(">Q", 3 * CS) + raw[size_pos + 8 :]
    forged = reforge(shorter, len(h.raw))[: offs[2][1]]
    seal.write_bytes(forged)
    expect_refusal(seal, "tampered")


def test_reforged_binding_still_fails_authentication(tmp_path: Path) -> None:
    """Rewriting the header's binding to match another experiment fails: the header is every chunk's AAD."""
    seal = make(tmp_path, os.urandom(CS + 5))
    other = Binding("exp2", FRAME, ".gitera/exp1/split/test.seal")
    h = read_header(seal)
    raw = seal.read_bytes()
    forged = raw[:64] + b"exp2" + raw[68:]
    seal.write_bytes(reforge(forged, len(h.raw)))
    assert read_header(seal).binding == other
    expect_refusal(seal, "tampered", binding=other)


# --- the tamper matrix: chunks, truncation, reordering -----------------------------


@pytest.mark.parametrize("which", ["first", "middle", "last"])
@pytest.mark.parametrize("where", ["start", "inside", "tag"])
def test_flipped_chunk_byte(multi: tuple[Path, bytes], which: str, where: str) -> None:
    seal, _ = multi
    _, offs = chunk_offsets(seal)
    start, end = offs[{"first": 0, "middle": 1, "last": -1}[which]]
    pos = {"start": start, "inside": (start + end) // 2, "tag": end - 1}[where]
    seal.write_bytes(flip(seal.read_bytes(), pos))
    err = expect_refusal(seal, "tampered")
    assert "chunk" in str(err)


@pytest.mark.parametrize("boundary", [0, 1, 2, 3])
def test_truncated_at_chunk_boundary(multi: tuple[Path, bytes], boundary: int) -> None:
    seal, _ = multi
    h, offs = chunk_offsets(seal)
    cut = len(h.raw) if boundary == 0 else offs[boundary - 1][1]
    seal.write_bytes(seal.read_bytes()[:cut])
    expect_refusal(seal, "truncated")


@pytest.mark.parametrize("cut", [5, 12, 40, 100])
def test_truncated_inside_header(multi: tuple[Path, bytes], cut: int) -> None:
    seal, _ = multi
    seal.write_bytes(seal.read_bytes()[:cut])
    expect_refusal(seal, "truncated")


def test_truncated_mid_chunk_and_by_one_byte(multi: tuple[Path, bytes]) -> None:
    seal, _ = multi
    original = seal.read_bytes()
    _, offs = chunk_offsets(seal)
    for cut in ((offs[1][0] + offs[1][1]) // 2, len(original) - 1):
        seal.write_bytes(original[:cut])
        expect_refusal(seal, "truncated")


def test_empty_file_is_not_a_seal(tmp_path: Path) -> None:
    seal = tmp_path / "test.seal"
    seal.write_bytes(b"")
    expect_refusal(seal, "not_a_seal")
    seal.write_bytes(b'{"id": 1}\n')
    expect_refusal(seal, "not_a_seal")
    expect_refusal(tmp_path / "absent.seal", "not_a_seal")


def test_appended_byte(multi: tuple[Path, bytes]) -> None:
    seal, _ = multi
    seal.write_bytes(seal.read_bytes() + b"\x00")
    expect_refusal(seal, "tampered")


def test_swapped_duplicated_and_dropped_chunks(multi: tuple[Path, bytes]) -> None:
    seal, _ = multi
    raw = seal.read_bytes()
    h, offs = chunk_offsets(seal)
    head = raw[: len(h.raw)]
    c = [raw[a:b] for a, b in offs]
    cases = {
        "swapped": (head + c[1] + c[0] + c[2] + c[3], "tampered"),
        "duplicated": (head + c[0] + c[0] + c[1] + c[2] + c[3], "tampered"),
        "duplicated_over": (head + c[0] + c[0] + c[2] + c[3], "tampered"),
        "dropped": (head + c[0] + c[2] + c[3], "truncated"),
        "dropped_last": (head + c[0] + c[1] + c[2], "truncated"),
        "last_moved": (head + c[0] + c[1] + c[3] + c[2], "tampered"),
    }
    for name, (data, kind) in cases.items():
        seal.write_bytes(data)
        err = expect_refusal(seal, kind)
        assert str(err), name


def test_chunk_from_another_seal_with_same_key(tmp_path: Path) -> None:
    a = make(tmp_path, os.urandom(2 * CS))
    raw_a = a.read_bytes()
    (tmp_path / "b").mkdir()
    b = make(tmp_path / "b", os.urandom(2 * CS))
    _, offs = chunk_offsets(b)
    raw_b = b.read_bytes()
    spliced = raw_a[: offs[0][0]] + raw_b[offs[0][0] : offs[0][1]] + raw_a[offs[0][1] :]
    a.write_bytes(spliced)
    expect_refusal(a, "tampered")


# --- binding and keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("other", "field"),
    [
        (Binding("exp2", FRAME, BINDING.path), "experiment tag"),
        (Binding("exp1", hashlib.sha256(b"other").hexdigest(), BINDING.path), "frame hash"),
        (Binding("exp1", FRAME, ".gitera/exp2/split/test.seal"), "path"),
    ],
)
def test_seal_copied_to_another_experiment(multi: tuple[Path, bytes], other: Binding, field: str) -> None:
    seal, _ = multi
    err = expect_refusal(seal, "wrong_experiment", binding=other)
    assert field in str(err)


def test_wrong_key(multi: tuple[Path, bytes]) -> None:
    seal, _ = multi
    err = expect_refusal(seal, "wrong_key", key=DataKey.generate())
    assert KEY.key_id in str(err)


def test_failure_leaves_an_existing_destination_untouched(multi: tuple[Path, bytes]) -> None:
    seal, _ = multi
    dst = seal.parent / "keep.jsonl"
    dst.write_text("mine\n")
    seal.write_bytes(flip(seal.read_bytes(), len(seal.read_bytes()) - 1))
    with pytest.raises(SealError):
        open_seal(seal, KEY, BINDING, dst)
    assert dst.read_text() == "mine\n"
    assert sorted(p.name for p in seal.parent.iterdir()) == ["keep.jsonl", "plain.jsonl", "test.seal"]


def test_every_kind_is_distinct() -> None:
    import gitera.adapters.seal as seal_mod

    kinds = [
        cls.kind  # type: ignore[attr-defined]
        for cls in vars(seal_mod).values()
        if isinstance(cls, type) and issubclass(cls, SealError) and cls is not SealError
    ]
    assert len(kinds) == len(set(kinds))
    assert {
        "tampered",
        "truncated",
        "wrong_key",
        "missing_key",
        "wrong_experiment",
        "permissive_key_file",
        "not_a_seal",
        "unsupported_version",
        "commitment_mismatch",
    } <= set(kinds)


# --- mutation fuzzing ---------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_seal(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    tmp = tmp_path_factory.mktemp("fuzz")
    data = os.urandom(2 * CS + 333)
    return make(tmp, data).read_bytes(), data


Mutation = Callable[[bytes], bytes]


@st.composite
def mutations(draw: st.DrawFn, length: int) -> list[tuple[str, int, int]]:
    ops = st.one_of(
        st.tuples(st.just("flip"), st.integers(0, length - 1), st.integers(1, 255)),
        st.tuples(st.just("insert"), st.integers(0, length), st.integers(0, 255)),
        st.tuples(st.just("delete"), st.integers(0, length - 1), st.integers(1, 64)),
        st.tuples(st.just("truncate"), st.integers(0, length - 1), st.just(0)),
    )
    return draw(st.lists(ops, min_size=1, max_size=3))


def apply(raw: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    for op, pos, arg in ops:
        pos = min(pos, len(raw))
        if op == "flip" and pos < len(raw):
            raw = flip(raw, pos, arg)
        elif op == "insert":
            raw = raw[:pos] + bytes([arg]) + raw[pos:]
        elif op == "delete":
            raw = raw[:pos] + raw[pos + arg :]
        elif op == "truncate":
            raw = raw[:pos]
    return raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_mutation_releases_different_plaintext(fuzz_seal: tuple[bytes, bytes], data: st.DataObject) -> None:
    raw, plain = fuzz_seal
    # bias half the positions into the header and chunk boundaries, where parsing decisions live
    ops = data.draw(st.one_of(mutations(len(raw)), mutations(200)))
    mutated = apply(raw, ops)
    with tempfile.TemporaryDirectory() as d:
        seal, dst = Path(d) / "test.seal", Path(d) / "out" / "opened"
        dst.parent.mkdir()
        seal.write_bytes(mutated)
        try:
            open_seal(seal, KEY, BINDING, dst)
        except SealError as err:
            assert getattr(err, "kind", None) in {
                "tampered",
                "truncated",
                "not_a_seal",
                "unsupported_version",
                "wrong_key",
                "wrong_experiment",
            }
            assert not dst.exists() and list(dst.parent.iterdir()) == []
        else:
            assert mutated == raw and dst.read_bytes() == plain


# --- commitment ---------------------------------------------------------------------


def test_commitment_opens_only_with_the_right_salt_and_plaintext(tmp_path: Path) -> None:
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b'{"id": 1}\n{"id": 2}\n')
    salt = new_salt()
    c = commit_plaintext(src, salt)
    assert c == hashlib.sha256(COMMITMENT_DOMAIN + salt + src.read_bytes()).hexdigest()
    assert c != hashlib.sha256(src.read_bytes()).hexdigest()
    check_commitment(src, salt, c)
    check_commitment(src, salt, c.upper())
    failures = [
        (src, new_salt(), c),
        (src, salt[:-1], c),
        (src, salt, c[:-1] + ("0" if c[-1] != "0" else "1")),
        (src, salt, ""),
    ]
    for path, s, expected in failures:
        with pytest.raises(SealError) as info:
            check_commitment(path, s, expected)
        assert getattr(info.value, "kind", None) == "commitment_mismatch"
    src.write_bytes(b'{"id": 1}\n{"id": 3}\n')
    with pytest.raises(SealError):
        check_commitment(src, salt, c)


def test_seal_file_computes_the_same_commitment_in_one_pass(tmp_path: Path) -> None:
    data = os.urandom(2 * CS + 9)
    salt = new_salt()
    src = tmp_path / "p"
    src.write_bytes(data)
    info = seal_file(src, tmp_path / "s", KEY, BINDING, commitment_salt=salt, chunk_size=CS)
    assert info.commitment == commit_plaintext(src, salt)
    assert seal_file(src, tmp_path / "s2", KEY, BINDING).commitment is None
    assert info.key_id == KEY.key_id and info.plaintext_size == len(data)
    assert info.sealed_size == (tmp_path / "s").stat().st_size
    open_seal(tmp_path / "s", KEY, BINDING, tmp_path / "o")
    check_commitment(tmp_path / "o", salt, info.commitment)


def test_open_checks_the_commitment_in_the_same_pass_before_release(tmp_path: Path) -> None:
    data = os.urandom(CS + 77)
    salt = new_salt()
    src = tmp_path / "plain.jsonl"
    src.write_bytes(data)
    expected = seal_file(src, tmp_path / "test.seal", KEY, BINDING, commitment_salt=salt, chunk_size=CS).commitment
    assert expected is not None
    open_seal(tmp_path / "test.seal", KEY, BINDING, tmp_path / "ok", commitment=(salt, expected))
    assert (tmp_path / "ok").read_bytes() == data
    # the key holder resealing other rows under the same key and binding is caught by the commitment
    src.write_bytes(os.urandom(CS + 77))
    seal_file(src, tmp_path / "test.seal", KEY, BINDING, chunk_size=CS)
    for opening in ((salt, expected), (new_salt(), expected), (salt[:5], expected)):
        (tmp_path / "out").mkdir(exist_ok=True)
        with pytest.raises(SealError) as info:
            open_seal(tmp_path / "test.seal", KEY, BINDING, tmp_path / "out" / "x", commitment=opening)
        assert getattr(info.value, "kind", None) == "commitment_mismatch"
        assert list((tmp_path / "out").iterdir()) == []


def test_sealed_file_is_plain_ciphertext_mode_and_opened_file_private(tmp_path: Path) -> None:
    seal = make(tmp_path, b"row\n")
    assert seal.stat().st_mode & 0o777 == 0o644
    open_seal(seal, KEY, BINDING, tmp_path / "o")
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o600
