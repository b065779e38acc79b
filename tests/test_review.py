"""Row-level review from the command line (issue 14): `gitera diff`, `gitera diagnose` with the
rows an arm gets wrong and crashes that are never ties, an attempt's first error in the iterate
output, the page `gitera view` writes, and who may see which rows' text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import git, run_gitera
from tests.helpers import read_test_rows, synthetic_project


def dev_rows(repo: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]


def row_means(repo: Path, rel: str) -> dict[str, float]:
    acc: dict[str, list[float]] = {}
    for line in (repo / rel).read_text().splitlines():
        r = json.loads(line)
        if r["status"] == "ok":
            acc.setdefault(r["id"], []).append(r["score"])
    return {k: sum(v) / len(v) for k, v in acc.items()}


def leaked(text: str, rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows if r["text"] in text]


def crashing_attempt(repo: Path) -> Any:
    """A dev run, then attempt 1, whose harness reports an error quoting the row on every g2 row."""
    synthetic_project(repo, rows=240)
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.8\nerror.g2: model refused\n")
    r = run_gitera(repo, "iterate", "-m", "g2 rows error out")
    assert r.code == 5, r.out + r.err
    return r


def test_diagnose_never_counts_a_crash_as_a_tie_and_shows_the_rows_an_attempt_gets_wrong(repo: Path) -> None:
    crashing_attempt(repo)
    dev = dev_rows(repo)
    g2 = [r["id"] for r in dev if r["group"] == "g2"]
    r = run_gitera(repo, "diagnose", "--attempt", "1", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["totals"]["crash"] == len(g2) and sum(d["totals"].values()) == len(dev)
    assert d["groups"]["group"]["g2"] == {"win": 0, "loss": 0, "tie": 0, "crash": len(g2), "wrong": 0, "loss_ids": []}
    assert d["crash"]["ids"] == g2[:15] and d["crash"]["error"].startswith("the harness reported an error: model refused: could not answer")
    assert "[dev row text]" in d["crash"]["error"] and leaked(r.out, dev) == []

    base, att = row_means(repo, ".gitera/syn/runs/run-001/a.jsonl"), row_means(repo, ".gitera/syn/runs/attempt-001.jsonl")
    wrong = [i for i in att if att[i] < 0.5]
    assert d["wrong"]["n"] == len(wrong) and d["wrong"]["ids"] == [i for i in (x["id"] for x in dev) if i in wrong][:15]
    both = [i for i in wrong if base[i] < 0.5]
    assert both and d["wrong"]["both"] == len(both)  # rows wrong for both sides are ties, yet listed as wrong
    text = run_gitera(repo, "diagnose", "--attempt", "1").out
    assert f"{len(g2)} crashes" in text and f"wrong: {len(wrong)} dev rows ({len(both)} wrong on both sides" in text
    assert "first error: the harness reported an error: model refused" in text


def test_an_attempts_crash_prints_its_first_error_text_with_dev_text_redacted(repo: Path) -> None:
    r = crashing_attempt(repo)
    first_g2 = next(x for x in dev_rows(repo) if x["group"] == "g2")
    line = next(x for x in r.out.splitlines() if x.strip().startswith("first error:"))
    assert line.strip() == f"first error: row {first_g2['id']}, trial 0: the harness reported an error: model refused: could not answer '[dev row text]'"
    assert leaked(r.out + r.err, dev_rows(repo)) == []

    (repo / "policy_b.txt").write_text("crash\n")  # the whole harness process fails: its stderr is the error
    r = run_gitera(repo, "iterate", "-m", "the harness dies", "--json")
    assert r.code == 5
    assert json.loads(r.out)["first_error"].endswith("the command exited with code 1; stderr tail: policy says crash")


def test_diff_lists_the_rows_an_attempt_fixed_and_broke(repo: Path) -> None:
    synthetic_project(repo, rows=240)
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.75\ngroup.g2: 0.3\n")
    assert run_gitera(repo, "iterate", "-m", "better except g2").code == 0
    dev = dev_rows(repo)
    before, after = row_means(repo, ".gitera/syn/runs/run-001/b.jsonl"), row_means(repo, ".gitera/syn/runs/attempt-001.jsonl")
    fixed = [r["id"] for r in dev if before[r["id"]] < 0.5 <= after[r["id"]]]
    broken = [r["id"] for r in dev if after[r["id"]] < 0.5 <= before[r["id"]]]
    assert fixed and broken

    r = run_gitera(repo, "diff", "b", "#1", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert [e["id"] for e in d["fixed"]] == fixed and [e["id"] for e in d["broken"]] == broken
    assert d["counts"]["fixed"] == len(fixed) and d["counts"]["crash"] == 0 and d["text_shown"] is False
    assert all(set(e["b"]) == {"status", "score", "wrong", "unscored_trials"} for e in d["fixed"])  # no output, no text
    text = run_gitera(repo, "diff", "b", "1", "--limit", "0")
    assert text.code == 0 and f"{len(fixed)} fixed, {len(broken)} broken" in text.out
    assert all(f"  {i}  group=" in text.out for i in fixed + broken) and leaked(text.out + text.err, dev) == []
    assert "label-" not in text.out  # outputs on dev rows: not without --show-text

    shown = run_gitera(repo, "diff", "b", "1", "--show-text", "--limit", "3")
    assert shown.code == 0 and "warning: showing dev rows' text and outputs" in shown.err
    row = next(r for r in dev if r["id"] == fixed[0])
    assert f"      text: {row['text']}" in shown.out and f"      reference: {row['label']}" in shown.out
    assert "      A output: label-0" in shown.out and "      B output: label-1" in shown.out

    train = run_gitera(repo, "diff", "b", "1", "--train", "45", "--json")
    assert train.code == 0, train.err
    t = json.loads(train.out)
    assert t["split"] == "train" and t["n"] == 45 and t["text_shown"] and t["fixed"] and "input" in t["fixed"][0]
    assert leaked(train.out, dev) == []

    for args, code, words in ((["diff", "b", "nope"], 2, "there is no arm 'nope'"), (["diff", "b", "a b"], 2, "names nothing to compare"),
                              (["diff", "b", "9"], 3, "there is no attempt 9"),
                              (["diff", "a", "b", "--split", "test"], 3, "sealed until the verdict")):
        bad = run_gitera(repo, *args)
        assert bad.code == code and words in bad.err and "Traceback" not in bad.err, (args, bad.err)


def test_an_iterating_agent_is_never_handed_dev_text_by_default(repo: Path) -> None:
    """An agent with shell access runs what the loop offers; a harness error quoting a dev row is the trap."""
    synthetic_project(repo, rows=240)
    dev = dev_rows(repo)
    outputs = [run_gitera(repo, "run")]
    (repo / "policy_b.txt").write_text("accuracy: 0.75\n")
    outputs.append(run_gitera(repo, "iterate", "-m", "better"))
    (repo / "policy_b.txt").write_text("accuracy: 0.8\nerror.g2: model refused\n")
    outputs.append(run_gitera(repo, "iterate", "-m", "g2 rows error out"))
    outputs.append(run_gitera(repo, "iterate", "-m", "g2 rows error out", "--json"))
    for args in (["diagnose"], ["diagnose", "--attempt", "2", "--json"], ["diff", "baseline", "best"], ["diff", "1", "2", "--json"],
                 ["log"], ["log", "--format", "json"], ["status"], ["status", "--json"], ["view", "--no-serve"], ["view", "--no-serve", "--json"]):
        outputs.append(run_gitera(repo, *args))
        assert outputs[-1].code in (0, 5), (args, outputs[-1].err)
    for out in outputs:
        assert leaked(out.out + out.err, dev) == []
    # the page itself holds dev text: it went into the git directory, not the work tree
    page = repo / ".git/gitera/view/syn.html"
    assert leaked(page.read_text(), dev) and git(repo, "status", "--porcelain") == ""
    refused = run_gitera(repo, "view", "--no-serve", "--out", "review.html")
    assert refused.code == 2 and "inside the work tree and not ignored by git" in refused.err and not (repo / "review.html").exists()
    (repo / ".gitignore").write_text("data/\nreview/\n")
    assert run_gitera(repo, "view", "--no-serve", "--out", "review/page.html").code == 0  # a place git ignores is the user's choice


def test_the_page_shows_test_rows_only_after_the_verdict(repo: Path, tmp_path: Path) -> None:
    synthetic_project(repo, rows=240)
    assert run_gitera(repo, "run").code == 0
    test_rows = read_test_rows(repo, "syn")
    page = tmp_path / "page.html"
    r = run_gitera(repo, "view", "--no-serve", "--out", str(page), "--json")
    assert r.code == 0 and json.loads(r.out)["test_rows"] is None
    html = page.read_text()
    assert leaked(html, test_rows) == [] and leaked(html, dev_rows(repo))
    assert "no verdict yet" in html.lower() or '"verdict":null' in html

    assert run_gitera(repo, "verdict").code == 0, "verdict"
    r = run_gitera(repo, "view", "--no-serve", "--out", str(page), "--json")
    assert r.code == 0 and json.loads(r.out)["test_rows"] == len(test_rows)
    html = page.read_text()
    assert sorted(leaked(html, test_rows)) == sorted(t["id"] for t in test_rows)
    assert json.loads(r.out)["charts"] == ["arm-bar", "forest-plot", "cost-vs-accuracy", "progression"][:len(json.loads(r.out)["charts"])]
    d = run_gitera(repo, "diff", "a", "b", "--split", "test", "--json")
    assert d.code == 0 and json.loads(d.out)["n"] == len(test_rows)


def test_a_verdict_that_kept_its_key_shows_test_ids_and_scores_but_no_text(repo: Path, tmp_path: Path) -> None:
    synthetic_project(repo, rows=240)
    assert run_gitera(repo, "run").code == 0
    test_rows = read_test_rows(repo, "syn")
    assert run_gitera(repo, "verdict", "--keep-key").code == 0
    page = tmp_path / "page.html"
    r = run_gitera(repo, "view", "--no-serve", "--out", str(page), "--json")
    assert r.code == 0 and json.loads(r.out)["test_rows"] == len(test_rows)
    html = page.read_text()
    assert leaked(html, test_rows) == [] and all(t["id"] in html for t in test_rows)
    assert "the verdict kept the key (--keep-key)" in html


def test_the_page_is_self_contained_and_degrades_without_rows(repo: Path, tmp_path: Path) -> None:
    import re

    synthetic_project(repo, rows=120)
    page = tmp_path / "page.html"
    r = run_gitera(repo, "view", "--no-serve", "--out", str(page), "--json")  # split, no run yet
    assert r.code == 0 and json.loads(r.out)["dev_rows"] == 0 and json.loads(r.out)["charts"] == []
    assert "No charts yet: they need a complete dev run." in page.read_text()
    assert run_gitera(repo, "run").code == 0
    assert run_gitera(repo, "view", "--no-serve", "--out", str(page)).code == 0
    html = page.read_text()
    assert "default-src 'none'" in html  # the browser itself refuses any request the page would make
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", html)
    assert not re.search(r"<link\b|@import|url\(\s*['\"]?(?:https?:)?//", html)
    ids = re.findall(r'\bid=\\?"([^"\\]+)', html)
    assert len(ids) == len(set(ids)), [i for i in set(ids) if ids.count(i) > 1][:5]


@given(st.text(max_size=40), st.integers(1, 65535))
def test_the_server_answers_only_a_host_header_naming_the_loopback(host: str, port: int) -> None:
    from gitera.adapters.httpserve import allowed_host

    expected = host.strip().lower() in {f"{h}{p}" for h in ("127.0.0.1", "localhost", "[::1]") for p in ("", f":{port}")}
    assert allowed_host(host, port) is expected
    assert allowed_host(f"127.0.0.1:{port}", port) and not allowed_host(f"127.0.0.1.evil.example:{port}", port) and not allowed_host(None, port)


def test_view_on_a_busy_port_says_so(repo: Path) -> None:
    import socket

    synthetic_project(repo, rows=120)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_gitera(repo, "view", "--port", str(port))
    assert r.code == 2 and f"cannot listen on 127.0.0.1:{port}" in r.err and "--port" in r.err and "Traceback" not in r.err


def test_the_page_of_a_frame_not_yet_locked_shows_the_frame(repo: Path, tmp_path: Path) -> None:
    assert run_gitera(repo, "init", "early", "-q", "Does the new prompt route refunds better?").code == 0
    page = tmp_path / "early.html"
    r = run_gitera(repo, "view", "--no-serve", "--out", str(page), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["dev_rows"] == 0 and json.loads(r.out)["charts"] == []
    html = page.read_text()
    assert '"question":"Does the new prompt route refunds better?"' in html and '"state":"not locked"' in html
    assert "The frame is not filled in and locked yet" in html
