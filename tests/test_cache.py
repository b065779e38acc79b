"""The on-disk result cache: keys, half-written lines, concurrent appends."""

from __future__ import annotations

import threading
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gitera.adapters.cache import Cache, CacheKey, canonical_json, row_hash

KEY = CacheKey("tree1", canonical_json({"p": 1}), "harness", "dev")


def record(score: float) -> dict[str, object]:
    return {"score": score, "cost_usd": 0.01, "latency_ms": 3.0, "tokens": 5, "output": "x", "finding": None, "status": "ok"}


def test_round_trip_keeps_trials_distinct(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.put(KEY, [(("r1", "h", 0), record(1.0)), (("r1", "h", 1), record(0.0))])
    got = cache.load(KEY)
    assert got[("r1", "h", 0)]["score"] == 1.0 and got[("r1", "h", 1)]["score"] == 0.0
    assert "status" not in got[("r1", "h", 0)]


def test_every_key_part_separates_entries(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.put(KEY, [(("r1", "h", 0), record(1.0))])
    for other in (
        CacheKey("tree2", KEY.params_json, KEY.harness, KEY.split),
        CacheKey(KEY.tree_id, canonical_json({"p": 2}), KEY.harness, KEY.split),
        CacheKey(KEY.tree_id, KEY.params_json, "harness2", KEY.split),
        CacheKey(KEY.tree_id, KEY.params_json, KEY.harness, "train"),
    ):
        assert cache.load(other) == {}


def test_a_half_written_line_is_ignored_and_the_next_append_starts_fresh(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.put(KEY, [(("r1", "h", 0), record(1.0))])
    with cache.path(KEY).open("a") as fh:
        fh.write('{"id": "r2", "h": "h", "t": 0, "r": {"sco')  # killed mid-write
    assert set(cache.load(KEY)) == {("r1", "h", 0)}
    cache.put(KEY, [(("r3", "h", 0), record(0.5))])
    assert set(cache.load(KEY)) == {("r1", "h", 0), ("r3", "h", 0)}


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path)

    def write(worker: int) -> None:
        for i in range(50):
            cache.put(KEY, [((f"r{worker}-{i}", "h", 0), record(1.0))])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache.load(KEY)) == 400


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=5))
def test_row_hash_ignores_key_order(row: dict[str, object]) -> None:
    assert row_hash(row) == row_hash(dict(reversed(list(row.items()))))


def test_the_tree_part_of_a_key_skips_non_ascii_paths_it_is_told_to_skip(repo: Path) -> None:
    # git quotes such paths in ls-tree's plain output, so the skip did not recognise them and
    # every iteration of a target named "prompts/réponse.txt" missed the judge's cache
    from gitera.adapters.git import Repo
    from gitera.domain.scoring import content_id
    from tests.conftest import git

    (repo / "prompts").mkdir()
    (repo / "prompts/réponse.txt").write_text("v1\n")
    (repo / "judge.py").write_text("print('judge')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    r = Repo.find(repo)
    first = content_id(r, "HEAD", "exp", ("prompts/réponse.txt",))
    (repo / "prompts/réponse.txt").write_text("v2\n")
    git(repo, "commit", "-q", "-am", "v2")
    assert content_id(r, "HEAD", "exp", ("prompts/réponse.txt",)) == first
    (repo / "judge.py").write_text("print('a changed judge')\n")
    git(repo, "commit", "-q", "-am", "judge")
    assert content_id(r, "HEAD", "exp", ("prompts/réponse.txt",)) != first
