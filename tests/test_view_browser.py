"""The output browser in a real headless Chromium: the page loads with no console error, the
filters and the side-by-side change the visible rows as the per-row files say they should, a
10,000-row page renders lazily, and `gitera view` serves it on localhost (issue 14)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser import big_page, chromium, console_errors, require_browser, screenshot, wait_ready
from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project

PAYLOAD = "</script><script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


@pytest.fixture
def browser() -> Any:
    require_browser()
    with chromium() as driver:
        yield driver


def row_text(i: int) -> str:
    return f"customer {i} asks about topic {i % 17} {PAYLOAD} detail {i * 7919 % 10007}"


def experiment(repo: Path) -> None:
    """Dev run; #1 better except on g2 (fixes and breaks rows); #2 crashes on g2 rows (error texts)."""
    synthetic_project(repo, rows=240, row_text=row_text)
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.75\ngroup.g2: 0.3\n")
    r = run_gitera(repo, "iterate", "-m", "better except g2")
    assert r.code == 0, r.out + r.err
    (repo / "policy_b.txt").write_text("accuracy: 0.8\nerror.g2: model refused\n")
    r = run_gitera(repo, "iterate", "-m", "g2 rows error out")
    assert r.code == 5 and "#2 CRASH" in r.out, r.out + r.err


def per_row(repo: Path, rel: str) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for line in (repo / rel).read_text().splitlines():
        rec = json.loads(line)
        rows.setdefault(rec["id"], []).append(rec)
    return rows


def wrong(recs: list[dict[str, Any]]) -> bool:
    scores = [r["score"] for r in recs]
    return sum(scores) / len(scores) < 0.5  # binary scores, higher is better: wrong in most trials


def visible_ids(driver: Any) -> list[str]:
    return [str(x) for x in driver.execute_script("return [...document.querySelectorAll('#vt-layer .vt-row')].map(r => r.dataset.rowId)")]


def count_text(driver: Any) -> str:
    return str(driver.find_element("id", "row-count").text)


def click(driver: Any, css: str) -> None:
    """Click as a person would, after scrolling the element to the middle of the window (above the sticky bar's reach)."""
    element = driver.find_element("css selector", css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def click_filter(driver: Any, name: str) -> None:
    click(driver, f"#filters button[data-filter='{name}']")


def all_filtered_ids(driver: Any) -> list[str]:
    """Scroll the virtual list from top to bottom and collect every row it renders."""
    seen: list[str] = []
    driver.execute_script("document.getElementById('vt-body').scrollTop = 0")
    while True:
        for i in visible_ids(driver):
            if i not in seen:
                seen.append(i)
        at_end = driver.execute_script(
            "const b = document.getElementById('vt-body'); const before = b.scrollTop; b.scrollTop += b.clientHeight;"
            "b.dispatchEvent(new Event('scroll')); return b.scrollTop === before")
        driver.execute_script("return new Promise(r => requestAnimationFrame(() => r()))")
        if at_end:
            for i in visible_ids(driver):
                if i not in seen:
                    seen.append(i)
            return seen


def test_the_page_loads_clean_and_its_filters_show_the_rows_the_per_row_files_say(repo: Path, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    experiment(repo)
    page = tmp_path / "review.html"
    r = run_gitera(repo, "view", "--no-serve", "--out", str(page))
    assert r.code == 0, r.err
    browser.get(page.as_uri())
    wait_ready(browser)
    assert console_errors(browser) == []
    assert browser.title == "gitera · syn"  # a dev row's markup stays text: nothing ran
    assert len(browser.find_elements("css selector", "figure[data-chart] svg")) == 4
    assert len(browser.find_elements("css selector", "#attempt-table tr[data-iteration]")) == 2

    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]
    arm_b = per_row(repo, ".gitera/syn/runs/run-001/b.jsonl")
    first = per_row(repo, ".gitera/syn/runs/attempt-001.jsonl")
    fixed = [d["id"] for d in dev if wrong(arm_b[d["id"]]) and not wrong(first[d["id"]])]
    broken = [d["id"] for d in dev if not wrong(arm_b[d["id"]]) and wrong(first[d["id"]])]
    assert fixed and broken

    # "which rows did attempt 1 fix and break?": its rows button compares it with the state it was tried against
    click(browser, "#attempt-table tr[data-iteration='1'] button:nth-of-type(2)")
    assert Select(browser.find_element("id", "pick-a")).first_selected_option.get_attribute("value") == "arm:b"
    assert Select(browser.find_element("id", "pick-b")).first_selected_option.get_attribute("value") == "#1"
    assert count_text(browser) == f"showing {len(dev)} of {len(dev)} rows"
    click_filter(browser, "fixed")
    assert count_text(browser) == f"showing {len(fixed)} of {len(dev)} rows"
    assert all_filtered_ids(browser) == fixed
    click_filter(browser, "broken")
    assert all_filtered_ids(browser) == broken
    assert {d["group"] for d in dev if d["id"] in broken} == {"g2"}

    # a slice: only g1 rows remain, and among them nothing broke
    Select(browser.find_element("id", "slice")).select_by_visible_text("group = g1")
    assert visible_ids(browser) == [] and "No row matches" in browser.find_element("id", "vt-layer").text
    click_filter(browser, "all")
    g1 = [d["id"] for d in dev if d["group"] == "g1"]
    assert all_filtered_ids(browser) == g1
    Select(browser.find_element("id", "slice")).select_by_visible_text("every slice")

    # the crashed attempt, side by side with the first: its g2 rows are crashes with their error text, never "same"
    Select(browser.find_element("id", "pick-b")).select_by_value("#2")
    Select(browser.find_element("id", "pick-a")).select_by_value("#1")
    g2 = [d["id"] for d in dev if d["group"] == "g2"]
    assert f"{len(g2)} crashed" in browser.find_element("id", "pair-summary").text
    click_filter(browser, "crash")
    assert all_filtered_ids(browser) == g2
    assert "the harness reported an error: model refused: could not answer" in browser.find_element("id", "vt-layer").text

    # the search box, then a row's detail: its full input, reference and every arm's and attempt's result
    box = browser.find_element("id", "search")
    click_filter(browser, "all")
    box.send_keys(g2[0])
    browser.execute_script("return new Promise(r => setTimeout(r, 300))")
    assert visible_ids(browser) == [g2[0]]
    click(browser, f"#vt-layer .vt-row[data-row-id='{g2[0]}']")
    detail = browser.find_element("id", "detail").text
    row = next(d for d in dev if d["id"] == g2[0])
    assert row["text"] in detail and f"reference (label)\n{row['label']}" in detail
    assert "A · #1 keep" in detail or "A · #1 discard" in detail
    assert "B · #2 crash" in detail and "model refused" in detail and "(3 trial(s) unscored)" in detail
    assert browser.title == "gitera · syn" and console_errors(browser) == []

    # the attempt's diff of its target file; the crashed attempt's first error
    click(browser, "#attempt-table tr[data-iteration='1'] button")
    assert "+group.g2: 0.3" in browser.find_element("css selector", "#attempt-table pre.diff").text
    click(browser, "#attempt-table tr[data-iteration='2'] button")
    assert f"first error: row {g2[0]}, trial 0: the harness reported an error: model refused" in browser.find_element("id", "attempt-table").text

    shot = screenshot(browser, tmp_path / "view.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_a_page_without_rows_says_why(repo: Path, browser: Any, tmp_path: Path) -> None:
    synthetic_project(repo, rows=120)  # split and piloted, not run
    page = tmp_path / "page.html"
    assert run_gitera(repo, "view", "--no-serve", "--out", str(page)).code == 0
    browser.get(page.as_uri())
    wait_ready(browser)
    assert console_errors(browser) == []
    assert "No rows yet: they appear once `gitera run` has scored the dev rows." in browser.find_element("id", "rows").text
    assert "No dev run yet." in browser.find_element("id", "overview").text

    page.write_text(big_page(0, runs=[{"arm": "v1", "run": 1, "score": 0.5, "status": "baseline", "rows": None}]), encoding="utf-8")
    browser.get(page.as_uri())
    wait_ready(browser)
    assert console_errors(browser) == []
    assert "This experiment has no per-row results" in browser.find_element("id", "rows").text
    assert "v1" in browser.find_element("id", "runs").text


def test_a_page_of_10000_rows_builds_only_its_first_screen(browser: Any, tmp_path: Path) -> None:
    page = tmp_path / "big.html"
    page.write_text(big_page(10_000), encoding="utf-8")
    browser.get(page.as_uri())
    wait_ready(browser)
    assert console_errors(browser) == []
    assert count_text(browser) == "showing 10000 of 10000 rows"
    rendered = visible_ids(browser)
    assert rendered[0] == "r00000" and 10 < len(rendered) < 80  # a screenful, not 10,000 DOM rows
    assert len(browser.find_elements("css selector", ".vt-row")) == len(rendered)
    # B = #1 (wrong when k % 5 == 0) vs A = v1 (wrong when k % 3 == 0): fixed where k % 3 == 0 and k % 5 != 0
    click_filter(browser, "fixed")
    assert count_text(browser) == f"showing {sum(1 for k in range(10_000) if k % 3 == 0 and k % 5 != 0)} of 10000 rows"
    click_filter(browser, "all")
    browser.execute_script("const b = document.getElementById('vt-body'); b.scrollTop = b.scrollHeight; b.dispatchEvent(new Event('scroll'))")
    browser.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert visible_ids(browser)[-1] == "r09999"
    assert len(browser.find_elements("css selector", ".vt-row")) < 80
    assert console_errors(browser) == []


def _read_json(stream: Any) -> dict[str, Any]:
    text = ""
    for line in stream:
        text += line
        try:
            return dict(json.loads(text))
        except ValueError:
            continue
    raise AssertionError(f"no JSON object on stdout: {text!r}")


def test_gitera_view_serves_the_page_on_localhost_and_rebuilds_it_when_the_branch_moves(repo: Path, browser: Any) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    proc = subprocess.Popen([sys.executable, "-m", "gitera", "view", "--json"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy())
    try:
        info = _read_json(proc.stdout)
        url = info["url"]
        assert url.startswith("http://127.0.0.1:") and info["dev_rows"] > 0 and info["attempts"] == 0
        browser.get(url)
        wait_ready(browser)
        assert console_errors(browser) == [] and "No iterate attempt." in browser.find_element("id", "attempts").text

        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url + "elsewhere", timeout=10)
        assert missing.value.code == 404
        rebinding = urllib.request.Request(url, headers={"Host": "attacker.example:80"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(rebinding, timeout=10)
        assert refused.value.code == 403

        (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
        assert run_gitera(repo, "iterate", "-m", "served while iterating").code == 0
        browser.refresh()
        wait_ready(browser)
        assert len(browser.find_elements("css selector", "#attempt-table tr[data-iteration]")) == 1
        assert console_errors(browser) == []
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert git(repo, "status", "--porcelain") == ""  # nothing written into the work tree
