"""The history cache: grown branches read only new commits; a torn cache is never trusted."""

from __future__ import annotations

from pathlib import Path

from gitera.adapters.git import Repo
from gitera.adapters.history import attempts, read
from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project


def test_cache_follows_the_branch_and_survives_tearing(repo: Path) -> None:
    synthetic_project(repo)
    r = Repo.find(repo)
    for acc in ("0.6", "0.7"):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n")
        assert run_gitera(repo, "iterate", "-m", f"accuracy {acc}").code == 0
        cached = [x.data["score"] for x in attempts(read(r, "autoexp/syn", "syn"))]
        fresh = [x.data["score"] for x in attempts(read(r, "autoexp/syn", "syn", use_cache=False))]
        assert cached == fresh
    assert len(fresh) == 2
    cache = r.common_dir / "gitera" / "history" / "syn.log"
    for garbage in ("garbage that is not git log output\x1e", "--output=x\nnot git log output\x1e", ""):
        cache.write_text(garbage)  # no tip line that names a commit: the text is not trusted
        assert [x.data["score"] for x in attempts(read(r, "autoexp/syn", "syn"))] == fresh
    # a branch that moved to an unrelated history is read again from scratch
    git(repo, "branch", "-f", "other", "main")
    assert read(r, "other", "syn") == []


def test_readers_racing_commits_never_crash_nor_see_a_record_twice(repo: Path) -> None:
    """`gitera log` runs while `gitera iterate` commits (and both write the cache): each read sees
    one whole cache, so no reader fails and the cache never holds a tip with another reader's text."""
    import threading

    def commit(i: int) -> None:
        git(repo, "commit", "-q", "--allow-empty", "-m", f"attempt {i}", "-m", f'Gitera-Tag: t\nGitera-Result: {{"kind": "attempt", "iteration": {i}}}')

    for i in range(10):
        commit(i)
    r = Repo.find(repo)
    failures: list[BaseException] = []
    seen: list[list[int]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                seen.append([x.data["iteration"] for x in read(r, "main", "t")])
            except BaseException as exc:  # noqa: BLE001 - any failure of a reader is the finding
                failures.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(10, 50):
        commit(i)
    done.set()
    for t in threads:
        t.join()
    assert failures == []
    assert all(its == list(range(len(its))) for its in seen)  # every read: attempts 0..k once each, in order
    assert [x.data["iteration"] for x in read(r, "main", "t")] == list(range(50))


def test_an_experiment_started_from_another_experiments_branch_reads_only_its_own_records(repo: Path) -> None:
    """`gitera init --from HEAD` branches from HEAD: a second experiment started on the first one's branch (or on a
    main that merged it) carries the first one's commits. Its log, budget and verify must not count them."""
    from gitera.domain.scoring import spent_so_far

    synthetic_project(repo, rows=150)
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    assert run_gitera(repo, "iterate", "-m", "the first experiment's attempt").code == 0
    assert run_gitera(repo, "init", "second", "--from", "HEAD").code == 0
    r = Repo.find(repo)
    assert [x.kind for x in read(r, "autoexp/second", "second")] == []  # init records no Gitera-* trailer but its tag
    assert spent_so_far(r, "autoexp/second", "second") == 0.0  # syn's pilot, run and attempt are syn's money
    assert spent_so_far(r, "autoexp/second", "syn") > 0
    (repo / ".gitera/second/frame.yaml").write_text((repo / ".gitera/syn/frame.yaml").read_text())
    (repo / "data/rows.csv").write_bytes((repo / ".git/gitera/keys/source/syn/rows.csv").read_bytes())  # syn's split moved it there
    for args in (("lock",), ("split", "--accept-underpowered"), ("pilot",), ("run",)):
        assert run_gitera(repo, *args).code == 0, args
    assert {x.kind for x in read(r, "autoexp/second", "second")} == {"Lock", "Split", "Pilot", "Result"}
    assert attempts(read(r, "autoexp/second", "second")) == []
    log = run_gitera(repo, "log", "--tag", "second")
    assert "the first experiment's attempt" not in log.out, log.out
    verify = run_gitera(repo, "verify", "--tag", "second")
    assert verify.code == 0, verify.out + verify.err  # syn's lock, split and results are not second's
