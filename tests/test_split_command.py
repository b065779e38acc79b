"""gitera split on the bundled real data, end to end in a real repository."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import git, run_gitera
from tests.helpers import all_blobs, banking_project, read_gate_rows, read_test_rows
from tests.test_hooks import hooks_repo, use_precommit


def test_split_writes_ratios_audit_and_seal(repo: Path) -> None:
    banking_project(repo)
    r = run_gitera(repo, "split")
    assert r.code == 0, r.err
    assert "slice intent_group (7 values)" in r.out and "Sizing (paired" in r.out
    manifest = json.loads((repo / ".gitera/banking/split/manifest.json").read_text())
    assert manifest["split"]["counts"] == {"train": 600, "dev": 800, "gate": 200, "test": 400}
    # per stratum (intent), every part is within one row of its ratio
    train = [json.loads(x) for x in (repo / ".gitera/banking/split/train.jsonl").read_text().splitlines()]
    dev = [json.loads(x) for x in (repo / ".gitera/banking/split/dev.jsonl").read_text().splitlines()]
    gate = read_gate_rows(repo)
    test = read_test_rows(repo)
    total = Counter(r["intent"] for r in train + dev + gate + test)
    for part, ratio in ((train, 0.3), (dev + gate, 0.5), (test, 0.2)):
        counts = Counter(r["intent"] for r in part)
        for intent, n in total.items():
            assert abs(counts[intent] - n * ratio) <= 1, (intent, counts[intent], n * ratio)
    assert len({r["id"] for r in train + dev + gate + test}) == 2000
    trailer = git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Split,valueonly)").strip()
    assert json.loads(trailer)["counts"]["test"] == 400
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / ".gitera/banking/split/.gitattributes").read_text().startswith("*.seal binary")


def test_no_test_row_and_no_key_in_any_git_object(repo: Path) -> None:
    banking_project(repo)
    assert run_gitera(repo, "split").code == 0
    blobs = all_blobs(repo)[0]
    test = read_test_rows(repo)
    manifest = json.loads((repo / ".gitera/banking/split/manifest.json").read_text())
    leak = manifest["leak"]
    open_texts = set()
    for part in ("train", "dev"):
        for line in (repo / f".gitera/banking/split/{part}.jsonl").read_text().splitlines():
            open_texts.add(json.loads(line)["text"])
    open_texts |= {str(r["text"]) for r in read_gate_rows(repo)}
    secret = [r["text"] for r in test if r["text"] not in open_texts]
    assert len(secret) == len(test) - leak["shared_with_open_splits"]
    # a short query may be the start of a longer open row ("I have forgotten my passcode" inside
    # "I have forgotten my passcode to access my app"); what must never appear is the row itself
    # as a value or a line of its own
    whole_lines = set(blobs.splitlines())
    found = [t for t in secret if json.dumps(t).encode() in blobs or json.dumps(t, ensure_ascii=False).encode() in blobs or t.encode() in whole_lines]
    assert found == []
    assert len(secret) > 350
    key_text = (repo / ".git/gitera/keys/banking.key").read_text().strip().encode()
    import base64

    assert key_text not in blobs and base64.b64decode(key_text) not in blobs
    mode = (repo / ".git/gitera/keys/banking.key").stat().st_mode & 0o777
    assert mode == 0o600


def test_split_is_deterministic_and_refuses_a_second_split(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        banking_project(root)
        assert run_gitera(root, "split").code == 0
        outs.append([(root / f".gitera/banking/split/{p}.jsonl").read_bytes() for p in ("train", "dev")] + [read_gate_rows(root)])
        r = run_gitera(root, "split")
        assert r.code == 3 and "already split" in r.err
    assert outs[0] == outs[1]


def test_an_underpowered_test_set_is_refused_unless_accepted(repo: Path) -> None:
    banking_project(repo, rows=1100)  # every intent has 4+ rows, so each reaches the test set
    r = run_gitera(repo, "split")
    assert r.code == 3, r.err
    assert "--accept-underpowered" in r.err
    assert not (repo / ".gitera/banking/split").exists()
    r = run_gitera(repo, "split", "--accept-underpowered", "--json")
    assert r.code == 0, r.err
    sizing = json.loads(r.out)["manifest"]["sizing"]
    assert sizing["accepted_underpowered"] is True and sizing["underpowered"] is True


def test_a_label_without_a_test_row_is_refused_naming_it(repo: Path) -> None:
    banking_project(repo, rows=300)  # some intents have only 1 or 2 rows here
    r = run_gitera(repo, "split", "--accept-underpowered")
    assert r.code == 3, r.err
    assert "label intent=" in r.err and "but none in the test set" in r.err and "data.out_of_scope.intent" in r.err
    assert "Traceback" not in r.err and not (repo / ".gitera/banking/split").exists()


def test_split_refuses_when_a_locked_file_changed(repo: Path) -> None:
    banking_project(repo)
    (repo / "eval/harness.py").write_text("print('tampered')\n")
    r = run_gitera(repo, "split")
    assert r.code == 3
    assert "locked files of experiment banking changed since the lock: eval/harness.py" in r.err


def test_recipient_custody_keeps_no_usable_key_here(repo: Path) -> None:
    banking_project(repo)
    pair = json.loads(run_gitera(repo, "seal", "keygen", "--json").out)
    r = run_gitera(repo, "split", "--recipient", pair["public"], "--remove-source")
    assert r.code == 0, r.err
    assert (repo / ".gitera/banking/split/key.wrapped").exists()
    assert not (repo / ".git/gitera/keys/banking.key").exists()
    status = json.loads(run_gitera(repo, "seal", "status", "--json").out)
    assert status["custody"] == "recipient" and status["key_available"] is False and status["opened"] is False


def test_seal_status_reads_the_header_only(repo: Path) -> None:
    banking_project(repo)
    assert run_gitera(repo, "split").code == 0
    status = json.loads(run_gitera(repo, "seal", "status", "--json").out)
    manifest = json.loads((repo / ".gitera/banking/split/manifest.json").read_text())
    assert status["commitment"] == manifest["commitment"]["value"]
    assert status["custody"] == "file" and status["key_available"] and status["matches_manifest"]
    assert status["bound_to"]["tag"] == "banking"


def test_missing_data_file_is_a_clear_error(repo: Path) -> None:
    banking_project(repo)
    (repo / "data/tickets.csv").unlink()
    r = run_gitera(repo, "split")
    assert r.code == 2 and "Traceback" not in r.err and "tickets.csv" in r.err


def test_leak_hook_through_pre_commit(repo: Path, tmp_path: Path) -> None:
    banking_project(repo)
    assert run_gitera(repo, "split").code == 0
    hooks, rev = hooks_repo(tmp_path)
    use_precommit(repo, hooks, rev, "  - id: gitera-test-leak-system\n")
    test_text = read_test_rows(repo)[7]["text"]
    (repo / "prompt_notes.md").write_text(f"# notes\n\nA tricky one:   {str(test_text).upper()}  \n")
    git(repo, "add", "prompt_notes.md")
    proc = subprocess.run(["git", "commit", "-m", "notes"], cwd=repo, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "prompt_notes.md:3 contains a row of experiment banking's sealed test set" in output
    assert str(test_text) not in output
    train_line = (repo / ".gitera/banking/split/train.jsonl").read_text().splitlines()[0]
    (repo / "prompt_notes.md").write_text("examples from train:\n" + json.loads(train_line)["text"] + "\n")
    git(repo, "add", "prompt_notes.md")
    proc = subprocess.run(["git", "commit", "-m", "notes"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def seal_key_id(repo: Path) -> str:
    from gitera.adapters import keys

    return keys.parse_data_key((repo / ".git/gitera/keys/banking.key").read_text(), "key file").key_id


def committed_manifest(repo: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(git(repo, "show", "autoexp/banking:.gitera/banking/split/manifest.json"))
    return doc


def test_a_split_refused_after_storing_its_key_can_be_retried(repo: Path) -> None:
    """The commit is refused at the last moment (a reference-transaction hook aborts the branch
    update, as a concurrent writer would); the key stored for it must not block the retry."""
    banking_project(repo)
    hook = repo / ".git/hooks/reference-transaction"
    hook.write_text('#!/bin/sh\n[ "$1" = prepared ] || exit 0\n! grep -q refs/heads/autoexp/banking\n')
    hook.chmod(0o755)
    head = git(repo, "rev-parse", "HEAD")
    r = run_gitera(repo, "split")
    assert r.code == 3 and "nothing was changed" in r.err, r.err
    assert git(repo, "rev-parse", "HEAD") == head and not (repo / ".gitera/banking/split").exists()
    hook.unlink()
    r = run_gitera(repo, "split")
    assert r.code == 0, r.err
    assert seal_key_id(repo) == committed_manifest(repo)["seal"]["key_id"]
    assert len(read_test_rows(repo)) == 400  # the stored key opens the committed seal


def test_an_interrupted_split_leaves_nothing_that_blocks_the_next(repo: Path) -> None:
    """What a split killed after storing its key leaves: that key and its plaintext work dir."""
    from gitera.adapters import keys

    banking_project(repo)
    orphan = keys.new_data_key()
    keys.store_key(repo / ".git", "banking", orphan)
    stale = repo / ".git/gitera/split-killed"
    stale.mkdir()
    (stale / "test.jsonl").write_text('{"id": "t1", "text": "a sealed row"}\n')
    r = run_gitera(repo, "split")
    assert r.code == 0, r.err
    assert seal_key_id(repo) == committed_manifest(repo)["seal"]["key_id"] != orphan.key_id
    kept = repo / f".git/gitera/keys/banking.key.unused-{orphan.key_id}"
    assert keys.parse_data_key(kept.read_text(), "kept").key_id == orphan.key_id  # set aside, not destroyed
    assert not stale.exists()


def test_a_key_a_committed_seal_needs_is_never_replaced(repo: Path) -> None:
    banking_project(repo)
    assert run_gitera(repo, "split").code == 0
    split_commit = git(repo, "rev-parse", "HEAD").strip()
    key_text = (repo / ".git/gitera/keys/banking.key").read_text()
    git(repo, "reset", "-q", "--hard", "HEAD~1")  # the split commit now lives only in the reflog
    r = run_gitera(repo, "split")
    assert r.code == 3 and f"belongs to the seal committed in {split_commit[:10]}" in r.err, r.err
    assert (repo / ".git/gitera/keys/banking.key").read_text() == key_text


def test_an_edited_frame_cache_does_not_change_the_numbers_a_command_uses(repo: Path) -> None:
    """The parsed-frame copy under .git/gitera/frames/ is an ordinary file: editing it (a laxer
    threshold) must not change what split sizes against; the next parse puts the copy right."""
    banking_project(repo)
    (cache,) = (repo / ".git/gitera/frames").glob("*.json")
    data = json.loads(cache.read_text())
    assert data["threshold"]["effect"] == 0.08
    data["threshold"]["effect"] = 0.5
    cache.write_text(json.dumps(data))
    r = run_gitera(repo, "split", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["manifest"]["sizing"]["effect"] == 0.08
    assert json.loads(cache.read_text())["threshold"]["effect"] == 0.08  # the copy is put right


def test_commands_read_the_parsed_frame_the_committed_lock_vouches_for_without_yaml(repo: Path) -> None:
    """`gitera lock` commits the sha256 of the parsed frame; later commands read the JSON copy when
    it matches that digest (no yaml import), and parse frame.yaml again when it does not."""
    import subprocess
    import sys

    banking_project(repo)
    lock = json.loads((repo / ".gitera/banking/lock.json").read_text())
    (cache,) = (repo / ".git/gitera/frames").glob("*.json")
    assert lock["frame"]["parsed_sha256"] == hashlib.sha256(cache.read_bytes()).hexdigest()
    probe = ("import sys; from gitera.adapters.git import Repo; from gitera.domain.experiment import Experiment; "
             "f = Experiment(Repo.find(), 'banking').load_frame(); print(f.threshold.effect, 'yaml' in sys.modules)")
    read = lambda: subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True, check=True).stdout.split()  # noqa: E731
    assert read() == ["0.08", "False"]  # vouched for: no yaml import
    data = json.loads(cache.read_text())
    data["threshold"]["effect"] = 0.5
    cache.write_text(json.dumps(data, sort_keys=True))
    assert read() == ["0.08", "True"]  # an edited copy is not trusted: frame.yaml is parsed (and the copy put right)
    assert read() == ["0.08", "False"]
    # a forged copy with a forged digest in the work tree's lock.json: the digest is read from the commit
    cache.write_text(json.dumps(data, sort_keys=True))
    forged = {**lock, "frame": {**lock["frame"], "parsed_sha256": hashlib.sha256(cache.read_bytes()).hexdigest()}}
    (repo / ".gitera/banking/lock.json").write_text(json.dumps(forged))
    assert read() == ["0.08", "True"]
