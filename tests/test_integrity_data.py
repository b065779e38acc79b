"""Issue 12, the data side, played as attacks: an agent with shell access that wants a better
score tries to read the held-out rows or to change the data it is scored on. Every test runs
the real CLI, real git and (for the hooks) the real pre-commit framework, and ends in a
refusal or a failing `gitera verify`.

Points: 4 (split-file pins), 5 (no plaintext path to held-out rows), 6 (key custody:
recipient mode end to end, and what the local key does and does not stop), 9 (leak hook and
hardcode scan coverage).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitera.adapters import keys, seal
from tests.conftest import git, run_gitera
from tests.helpers import all_blobs, banking_project, read_gate_rows, read_test_rows, synthetic_project
from tests.test_hooks import hooks_repo, use_precommit

SPLIT = ".gitera/syn/split"
SPLIT_UNCHANGED = "the split files are unchanged since the split"
SPLIT_PINS = "the split files match the pins bound into the Split trailer and both seals"


def commit_no_verify(root: Path, message: str, *args: str) -> str:
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", message, *args], cwd=root, check=True, capture_output=True)
    return git(root, "rev-parse", "HEAD").strip()


def verify(root: Path) -> tuple[int, str, dict[str, Any]]:
    r = run_gitera(root, "verify")
    j = run_gitera(root, "verify", "--json")
    assert j.code == r.code, (r.out, j.out)
    return r.code, r.out, json.loads(j.out)


def failed(doc: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["detail"] for c in doc["checks"] if not c["ok"]}


def iterate_sprint(root: Path, accuracies: tuple[str, ...] = ("0.6", "0.7", "0.8")) -> None:
    """One sprint of honest attempts; the third one closes the sprint with its gate."""
    for acc in accuracies:
        (root / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        r = run_gitera(root, "iterate", "-m", f"accuracy {acc}")
        assert r.code == 0, r.out + r.err
    assert git(root, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)").strip(), "the sprint ended with its gate"


def relabel(line: str) -> str:
    row = json.loads(line)
    return json.dumps({**row, "label": "L0"}, sort_keys=True)


# --- point 4: the split files are pinned -------------------------------------------------


def test_a_relabelled_dev_file_committed_with_no_verify_is_refused_everywhere(repo: Path) -> None:
    """The agent relabels dev.jsonl (so its arm's outputs count as right) and commits with
    --no-verify: iterate refuses, verify fails, and the verdict's seal stays shut."""
    synthetic_project(repo, policies={"policy_a.txt": "accuracy: 0.5\n", "policy_b.txt": "accuracy: 0.5\n"})
    assert run_gitera(repo, "run").code == 0
    split_commit = git(repo, "log", "-1", "--format=%H", "--grep=^Gitera-Split:").strip()
    dev = repo / SPLIT / "dev.jsonl"
    dev.write_text("".join(relabel(x) + "\n" for x in dev.read_text().splitlines()))
    git(repo, "add", str(dev))
    bad = commit_no_verify(repo, "fix some labels")
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    r = run_gitera(repo, "iterate", "-m", "a better policy")
    assert r.code == 3, r.out + r.err
    assert f"{SPLIT}/dev.jsonl differs from the file the split committed in {split_commit[:10]}" in r.err
    assert f"git checkout {split_commit[:10]} -- {SPLIT}/dev.jsonl" in r.err
    git(repo, "checkout", "--", "policy_b.txt")
    r = run_gitera(repo, "run")
    assert r.code == 3 and f"{SPLIT}/dev.jsonl differs from the file the split committed" in r.err, r.err
    code, _, doc = verify(repo)
    assert code == 1 and failed(doc).get(SPLIT_UNCHANGED) == f"{SPLIT}/dev.jsonl in {bad[:10]}", doc
    r = run_gitera(repo, "verdict")
    assert r.code == 4 and "a split file (train/dev/gate/test) was changed after the split" in r.err, r.err
    assert not (repo / ".gitera/syn/verdict.json").exists()


def _amend_split(repo: Path, edit: Any) -> None:
    """Rewrite the split commit (the tip) with its pins forged to match: what `rebase -i` would do."""
    message = git(repo, "log", "-1", "--format=%B")
    trailer = json.loads(re.search(r"^Gitera-Split: (.*)$", message, re.M).group(1))  # type: ignore[union-attr]
    pins = edit(trailer["pins"])
    manifest_path = repo / SPLIT / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["pins"] = pins
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    forged = message.replace(json.dumps(trailer, separators=(",", ":"), sort_keys=True),
                             json.dumps({**trailer, "pins": pins}, separators=(",", ":"), sort_keys=True))
    assert forged != message
    git(repo, "add", "-A", SPLIT)
    subprocess.run(["git", "commit", "-q", "--amend", "--no-verify", "-F", "-"], input=forged, text=True, cwd=repo, check=True)


def _relabel_and_pin(repo: Path) -> Any:
    def edit(pins: dict[str, str]) -> dict[str, str]:
        dev = repo / SPLIT / "dev.jsonl"
        dev.write_text("".join(relabel(x) + "\n" for x in dev.read_text().splitlines()))
        return {**pins, "dev": hashlib.sha256(dev.read_bytes()).hexdigest()}
    return edit


def _rewrite_header_pins(path: Path, pins_hex: str) -> None:
    """Patch the pins field of a version-2 seal header and recompute its (unkeyed) digest."""
    data = bytearray(path.read_bytes())
    header = seal.read_header(path)
    tag_len = len(header.binding.tag.encode())
    start = 64 + tag_len + 32  # after the fixed part, the tag and the frame hash
    data[start:start + 32] = bytes.fromhex(pins_hex)
    body_end = len(header.raw) - 32
    data[body_end:body_end + 32] = hashlib.sha256(bytes(data[:body_end])).digest()
    path.write_bytes(bytes(data))


def test_a_rewritten_split_commit_with_forged_pins_fails_verify_and_the_seals_stay_shut(repo: Path) -> None:
    """The agent rewrites the split commit itself: dev.jsonl relabelled, the manifest's and the
    Split trailer's pins forged to match. The seals still bind the split's real pins: verify fails
    keylessly; patching the seal headers too passes that check, but then no seal authenticates."""
    from gitera.core.split import pins_digest

    synthetic_project(repo, pilot=False)
    _amend_split(repo, _relabel_and_pin(repo))
    code, _, doc = verify(repo)
    assert code == 1 and SPLIT_PINS in failed(doc), doc
    assert "binds pins" in failed(doc)[SPLIT_PINS]
    # the gate and the verdict open a seal only with the pins of the files in front of them
    r = run_gitera(repo, "verdict")
    assert r.code == 4 and "was changed after the split" in r.err, r.err
    # ... so the agent patches both seal headers to the forged digest (no key needed for that)
    trailer = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Split,valueonly)"))
    forged = pins_digest(trailer["pins"])
    for name in ("test.seal", "gate.seal"):
        _rewrite_header_pins(repo / SPLIT / name, forged)
    git(repo, "add", "-A", SPLIT)
    subprocess.run(["git", "commit", "-q", "--amend", "--no-verify", "--no-edit"], cwd=repo, check=True)
    code, _, doc = verify(repo)
    assert SPLIT_PINS not in failed(doc), doc  # the keyless check is satisfied now ...
    r = run_gitera(repo, "verdict")
    assert r.code == 4 and "failed authentication" in r.err, r.err  # ... but the header is the seal's associated data
    assert not (repo / ".gitera/syn/verdict.json").exists()


# --- point 5: no plaintext path to held-out rows ------------------------------------------


def test_gate_rows_are_in_no_file_and_no_git_object_even_after_gates_ran(repo: Path) -> None:
    """After the split and after a gate opened them: the gate rows' text is in no work-tree file,
    no file under .git outside the key store, and no git object; the gate's work folder is gone."""
    synthetic_project(repo)
    iterate_sprint(repo)
    gate_texts = [str(r["text"]) for r in read_gate_rows(repo, "syn")]
    assert len(gate_texts) > 40
    assert not (repo / SPLIT / "gate.jsonl").exists() and (repo / SPLIT / "gate.seal").exists()
    blobs = all_blobs(repo)[0]  # every object, decompressed by git
    assert [t for t in gate_texts if t.encode() in blobs] == []
    keystore = repo / ".git/gitera/keys"
    for path in repo.rglob("*"):
        if path.is_file() and keystore not in path.parents:
            data = path.read_bytes()
            assert not [t for t in gate_texts if t.encode() in data], path
    assert list((repo / ".git/gitera/work").glob("*")) == []
    # the library and the gate's own records never hand them out either
    import gitera

    with pytest.raises(ValueError, match="gate and test rows are sealed"):
        gitera.open_experiment(repo).rows("gate")
    record = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)"))
    assert not [t for t in gate_texts if t in json.dumps(record)]


def test_a_source_file_tracked_by_git_is_refused(repo: Path) -> None:
    banking_project(repo, rows=1100)
    (repo / ".gitignore").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "commit the data file")
    head = git(repo, "rev-parse", "HEAD")
    r = run_gitera(repo, "split", "--accept-underpowered")
    assert r.code == 3 and "data/tickets.csv is tracked by git" in r.err and "git rm --cached data/tickets.csv" in r.err, r.err
    # untracking it again does not help: its rows are in git's objects
    git(repo, "rm", "-q", "--cached", "data/tickets.csv")
    (repo / ".gitignore").write_text("data/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "untrack the data")
    r = run_gitera(repo, "split", "--accept-underpowered")
    assert r.code == 3 and "already stored in this repository's git objects" in r.err, r.err
    assert not (repo / ".gitera/banking/split").exists() and git(repo, "rev-parse", "HEAD~1") == head
    assert (repo / "data/tickets.csv").exists()  # nothing lost


def test_the_source_leaves_the_work_tree_and_a_copy_put_back_is_warned_about(repo: Path) -> None:
    """The agent keeps the data file around to read the test rows: split moves it into the key
    store; copying it back (or any file there holding a test row) makes status and verify warn."""
    banking_project(repo, rows=1100)
    source = repo / "data/tickets.csv"
    original = source.read_bytes()
    r = run_gitera(repo, "split", "--accept-underpowered")
    assert r.code == 0, r.err
    stashed = repo / ".git/gitera/keys/source/banking/tickets.csv"
    assert f"Moved the source data/tickets.csv out of the work tree to {stashed}" in r.out, r.out
    assert not source.exists() and stashed.read_bytes() == original  # nothing lost
    assert stashed.stat().st_mode & 0o777 == 0o600
    status = json.loads(run_gitera(repo, "status", "--json").out)
    assert status["warnings"] == []
    source.write_bytes(original)  # the attack: a copy back in the work tree
    r = run_gitera(repo, "status")
    assert "WARNING: data/tickets.csv is in the work tree and is the file experiment banking was split from" in r.out, r.out
    code, out, doc = verify(repo)
    assert code == 0 and doc["warnings"] and "WARN  data/tickets.csv is in the work tree" in out
    # not the source but a file holding one test row at that path: warned as well
    row = next(str(t["text"]) for t in read_test_rows(repo) if len(str(t["text"])) > 30)
    source.write_text(f"row_id,text\nx1,{row}\n")
    status = json.loads(run_gitera(repo, "status", "--json").out)
    assert len(status["warnings"]) == 1 and "holds 1 row(s) of experiment banking's sealed test set" in status["warnings"][0]
    source.unlink()
    assert json.loads(run_gitera(repo, "status", "--json").out)["warnings"] == []


def test_remove_source_deletes_it_and_recipient_mode_insists(repo: Path) -> None:
    banking_project(repo, rows=1100)
    pair = keys.generate_recipient_keypair()
    r = run_gitera(repo, "split", "--accept-underpowered", "--recipient", pair.public)
    assert r.code == 3 and "--remove-source" in r.err and "recipient mode" in r.err, r.err
    assert not (repo / ".gitera/banking/split").exists() and (repo / "data/tickets.csv").exists()
    r = run_gitera(repo, "split", "--accept-underpowered", "--recipient", pair.public, "--remove-source", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["source"]["kept"] == "removed"
    assert not (repo / "data/tickets.csv").exists() and not (repo / ".git/gitera/keys/source/banking").exists()


def test_a_source_outside_the_work_tree_stays_with_a_warning(repo: Path, tmp_path: Path) -> None:
    banking_project(repo, rows=1100)
    outside = tmp_path / "elsewhere.csv"
    (repo / "data/tickets.csv").rename(outside)
    r = run_gitera(repo, "split", "--accept-underpowered", "--data", str(outside))
    assert r.code == 0, r.err
    assert f"the source {outside} is outside the work tree and still holds the sealed test rows in the clear" in r.err
    assert outside.exists() and not (repo / ".git/gitera/keys/source/banking").exists()


# --- point 6: key custody ------------------------------------------------------------------


def _every_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_recipient_mode_end_to_end_the_agent_cannot_decrypt_and_ci_concludes(repo: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/threat-model.md, "Recipient mode, end to end": keygen by the custodian, split with the
    public key, the loop and its gates with no private key on the machine, then the verdict in a
    CI clone with the private key as a secret; the agent's side holds nothing that opens the test set."""
    # 1. the custodian makes a key pair; the private half never reaches the agent's machine
    made = run_gitera(tmp_path, "seal", "keygen", "--json")
    assert made.code == 0, made.err
    pair = json.loads(made.out)
    private = pair["private"]
    # 2. the agent's machine: split to the public key, dropping the data file; pilot, run, a sprint and its gate
    synthetic_project(repo, split_args=("--recipient", pair["public"], "--remove-source"))
    assert not (repo / "data/rows.csv").exists()
    assert run_gitera(repo, "run").code == 0
    iterate_sprint(repo)
    assert "GITERA_SEAL_PRIVATE_KEY" not in os.environ
    # 3. the agent's side cannot decrypt: the verdict has no key, no local key opens the seal
    r = run_gitera(repo, "verdict")
    assert r.code == 4 and "GITERA_SEAL_PRIVATE_KEY" in r.err, r.err
    manifest = json.loads((repo / SPLIT / "manifest.json").read_text())
    binding = seal.Binding("syn", manifest["frame_hash"], manifest["seal"]["path"], manifest["pins_digest"])
    local_keys = [p for p in (repo / ".git/gitera/keys").rglob("*") if p.is_file()]
    assert [p.name for p in local_keys if p.suffix == ".key"] == ["syn.key"]  # the gate key only (keys/gate/syn.key)
    for path in local_keys:
        try:
            candidate = keys.parse_data_key(path.read_text(), str(path))
        except Exception:  # noqa: BLE001 - not a key file (the holdout seed, the source record)
            continue
        with pytest.raises(seal.SealWrongKey):
            seal.open_seal(repo / manifest["seal"]["path"], candidate, binding, tmp_path / "out.jsonl")
    # ... and no file and no git object on the agent's machine holds a test row (the custodian checks)
    test_key = keys.unwrap_key((repo / SPLIT / "key.wrapped").read_bytes(), private, "syn")
    texts = [str(t["text"]) for t in read_test_rows(repo, "syn", key_text=keys.encode_data_key(test_key))]
    assert len(texts) > 80
    contents = [p.read_bytes() for p in _every_file(repo)] + all_blobs(repo)
    assert [t for t in texts if any(t.encode() in c for c in contents)] == []
    # 4. CI: a fresh clone, the private key supplied as the secret GITERA_SEAL_PRIVATE_KEY
    ci = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "--branch", "autoexp/syn", str(repo), str(ci))
    monkeypatch.setenv("GITERA_SEAL_PRIVATE_KEY", private)
    r = run_gitera(ci, "verdict")
    assert r.code == 0, r.out + r.err
    doc = json.loads((ci / ".gitera/syn/verdict.json").read_text())
    gate_key = keys.read_gate_key(repo / ".git", "syn")
    assert doc["key"] == base64.b64encode(test_key.secret).decode()
    assert doc["gate_key"] == base64.b64encode(gate_key.secret).decode()  # released from gate.key.wrapped
    assert doc["holdout_seed"] == keys.holdout_seed(repo / ".git", "syn") == keys.derive_holdout_seed(gate_key)
    r = run_gitera(ci, "verify")
    assert r.code == 0 and "All checks pass." in r.out, r.out


def test_with_the_local_key_an_agent_can_read_the_test_rows_and_using_them_is_detected(repo: Path) -> None:
    """What the docs say of the default local key, shown: an agent with shell access reads the
    key file and decrypts the test set outside gitera. Nothing prevents that; what detects using
    a row is the leak hook (refusal) and `gitera verify` (a commit made with --no-verify)."""
    synthetic_project(repo)
    key_file = repo / ".git/gitera/keys/syn.key"
    stolen = read_test_rows(repo, "syn", key_text=key_file.read_text())  # the attack succeeds in reading
    assert len(stolen) > 80
    assert run_gitera(repo, "hooks", "install").code == 0
    (repo / "notes.md").write_text(f"hard cases:\n{stolen[0]['text']}\n")
    git(repo, "add", "notes.md")
    proc = subprocess.run(["git", "commit", "-m", "notes"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode != 0 and "notes.md:2 contains a row of experiment syn's sealed test set" in proc.stderr
    commit_no_verify(repo, "notes, past the hook")
    code, _, doc = verify(repo)
    assert code == 1 and "notes.md:2" in failed(doc)["no sealed test row in any committed file before the verdict"]


# --- point 9: the leak hook's coverage, through the real pre-commit framework --------------


def _encodings(row: str) -> dict[str, tuple[str, bytes]]:
    """name -> (file name, staged bytes) of a test row written the ways an agent might paste it."""
    curly = row.replace("'", "\u2019").replace('"', "\u201c")
    return {
        "NFKC (full-width letters)": ("notes_nfkc.md", f"note:\n{row[:6]}{''.join(chr(ord(c) + 0xFEE0) if 'a' <= c <= 'z' else c for c in row[6:])}\n".encode()),
        "zero-width salted": ("notes_zw.md", f"note:\n{chr(0x200B).join(row[:10])}{row[10:].replace(' ', ' ' + chr(0x200D))}\n".encode()),
        "curly quotes": ("notes_curly.md", f"note:\n{curly}\n".encode()),
        "HTML-escaped": ("page.html", f"<p>\n{html.escape(row).replace(' ', '&nbsp;', 2)}</p>\n".encode()),
        "UTF-16": ("notes16.txt", f"note:\n{row}\n".encode("utf-16")),
        "UTF-16 without BOM": ("notes16le.txt", f"note:\n{row}\n".encode("utf-16-le")),
        "base64": ("blob.py", f"DATA = '{base64.b64encode(row.encode()).decode()}'\n".encode()),
        "base64, wrapped": ("blob.txt", base64.encodebytes((row + " " + row).encode())),
        "gzip": ("rows.txt.gz", gzip.compress(f"x\n{row}\n".encode())),
        "base64 of gzip": ("payload.json", json.dumps({"gz": base64.b64encode(gzip.compress(row.encode())).decode()}).encode()),
    }


def test_the_leak_hook_catches_encoded_copies_of_a_test_row(repo: Path, tmp_path: Path) -> None:
    banking_project(repo)
    assert run_gitera(repo, "split").code == 0
    hooks, rev = hooks_repo(tmp_path)
    use_precommit(repo, hooks, rev, "  - id: gitera-test-leak-system\n")
    open_texts = {json.loads(x)["text"] for p in ("train", "dev") for x in (repo / f".gitera/banking/split/{p}.jsonl").read_text().splitlines()}
    row = next(str(r["text"]) for r in read_test_rows(repo) if "'" in str(r["text"]) and len(str(r["text"])) >= 30
               and r["text"] not in open_texts)
    missed = []
    for name, (filename, data) in _encodings(row).items():
        (repo / filename).write_bytes(data)
        git(repo, "add", filename)
        proc = subprocess.run(["git", "commit", "-m", name], cwd=repo, capture_output=True, text=True)
        output = proc.stdout + proc.stderr
        if proc.returncode == 0 or f"{filename}:" not in output or "contains a row of experiment banking's sealed test set" not in output:
            missed.append(name)
        assert row not in output
        git(repo, "rm", "-q", "--cached", filename)
        (repo / filename).unlink()
    assert missed == []
    # the same encodings of a train row are not refused: no false alarm
    from gitera.core.leak import LeakIndex, scan

    index = LeakIndex.from_dict(json.loads((repo / ".gitera/banking/split/leak.json").read_text()))
    train = next(t for t in sorted(open_texts) if "'" in t and not scan(t, index))  # not one quoting a test row
    for name, (filename, data) in _encodings(str(train)).items():
        (repo / filename).write_bytes(data)
        git(repo, "add", filename)
    proc = subprocess.run(["git", "commit", "-m", "train rows, encoded"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_gzipped_test_row_committed_past_the_hook_fails_verify(repo: Path) -> None:
    synthetic_project(repo)
    row = str(read_test_rows(repo, "syn")[0]["text"])
    (repo / "cache.bin.gz").write_bytes(gzip.compress(f"{row}\n".encode("utf-16")))
    git(repo, "add", "cache.bin.gz")
    commit_no_verify(repo, "a cache")
    code, _, doc = verify(repo)
    assert code == 1 and "cache.bin.gz:1" in failed(doc)["no sealed test row in any committed file before the verdict"]


def test_a_decompression_bomb_is_bounded_and_said_so(repo: Path) -> None:
    synthetic_project(repo)
    (repo / "bomb.gz").write_bytes(gzip.compress(b"a" * (64 << 20)))
    git(repo, "add", "bomb.gz")
    r = run_gitera(repo, "hook", "test-leak")
    assert r.code == 0 and "bomb.gz: only its first 4 MiB of compressed or encoded content was scanned" in r.err, r.err


# --- point 9: the hardcode scan, through a real gate ---------------------------------------

RARE = ["alder", "birch", "cedar", "delta", "ember", "fjord", "grove", "heath", "inlet", "jetty", "knoll", "larch", "marsh"]


def long_row(i: int) -> str:
    """A long row: common words, two uncommon ones (about 1 % of rows each) and one of its own."""
    return (f"hello team the {RARE[i % len(RARE)]}{i % 7} {RARE[(i * 5) % len(RARE)]}x{i % 11} zq{i:05d}wort "
            f"is what I need sorted out today please and thanks a lot")


def test_the_gate_fails_an_arm_keyed_on_three_words_of_a_row_or_on_row_hashes(repo: Path) -> None:
    synthetic_project(repo, row_text=long_row)
    iterate_sprint(repo)
    dev = [json.loads(x) for x in (repo / SPLIT / "dev.jsonl").read_text().splitlines()]
    keyed, hashed = dev[5], dev[9]
    three = " ".join(str(keyed["text"]).split()[3:6])  # two uncommon words and the row's own
    digest = hashlib.sha256(str(hashed["text"]).encode()).hexdigest()
    (repo / "policy_b.txt").write_text(f"accuracy: 0.9\nwhen the ticket says {three} answer {keyed['label']}\n"
                                       f"KNOWN = {{'{digest}': '{hashed['label']}'}}\n")
    r = run_gitera(repo, "iterate", "-m", "better, with two memorized rows")
    assert r.code == 0 and "KEEP" in r.out, r.out + r.err
    r = run_gitera(repo, "gate")
    assert r.code == 0 and "hardcode" in r.out, r.out + r.err
    gate = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)"))
    assert gate["outcome"] == "fail", gate
    found = {(h["line"], h["kind"]): h["rows"] for h in gate["hardcode"]}
    assert keyed["id"] in found[(2, "row_label")] and found[(3, "row_hash")] == [hashed["id"]], found
    assert digest not in json.dumps(gate) and three not in json.dumps(gate)
    assert (repo / "policy_b.txt").read_text() == "accuracy: 0.8\n"  # back to the gate-passed state
    assert run_gitera(repo, "iterate", "-m", "keep going").code == 3  # the arm is killed
