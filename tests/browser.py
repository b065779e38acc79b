"""A real headless Chromium (Debian's chromium and chromedriver) driven by selenium, for the page tests.

`.ci/run` installs both before the test command and sets GITERA_REQUIRE_BROWSER=1, so in CI a
browser that cannot start fails the tests instead of skipping them. Elsewhere, without
chromium, they skip and say why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (  # what Chromium needs on these machines (no sandbox as root, no network, no GPU)
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
)


def binaries() -> tuple[str | None, str | None]:
    return (shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver"))


def unavailable() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    chromium, driver = binaries()
    if chromium is None or driver is None:
        return "Debian's chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver; .ci/run does)"
    return None


def require_browser() -> None:
    reason = unavailable()
    if reason is not None:
        if os.environ.get("GITERA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"GITERA_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chrome, driver_path = binaries()
    assert chrome and driver_path
    profile = tempfile.mkdtemp(prefix="gitera-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    """The page's console errors and uncaught exceptions since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_ready(driver: Any, timeout: float = 20) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return document.body && document.body.dataset.ready === 'true'"))


def screenshot(driver: Any, path: Path) -> Path:
    driver.save_screenshot(str(path))
    return path


def big_page(n: int, runs: list[dict[str, Any]] | None = None, attempts: int = 1) -> str:
    """A page of ``n`` dev rows × a baseline, an arm and ``attempts`` attempts, built by the page's own pure code
    (attempt 1 is wrong where k % 5 == 0, the baseline where k % 3 == 0, arm v2 where k % 4 == 0)."""
    from gitera.core import htmlpage
    from gitera.domain.viewpage import render

    ids = [f"r{i:05d}" for i in range(n)]
    rows = [{"id": i, "question": f"question number {k} about item {k % 97}", "label": f"L{k % 7}", "tier": ("gold", "free")[k % 2]}
            for k, i in enumerate(ids)]

    def records(correct: Any) -> list[dict[str, Any]]:
        return [{"id": i, "trial": t, "score": int(correct(k)), "status": "ok", "output": f"L{k % 7 if correct(k) else (k + 1) % 7}"}
                for t in range(3) for k, i in enumerate(ids)]

    strings = htmlpage.Strings()
    subjects = [htmlpage.SubjectRows("arm:v1", "v1 (baseline), run 1", "arm", records(lambda k: k % 3 != 0)),
                htmlpage.SubjectRows("arm:v2", "v2, run 1", "arm", records(lambda k: k % 4 != 0)),
                *(htmlpage.SubjectRows(f"#{a}", f"#{a} keep: more rules", "attempt", records(lambda k, a=a: k % (4 + a) != 0))
                  for a in range(1, attempts + 1))]
    table = htmlpage.split_table(ids, rows, inputs=["question"], reference="label", slices=["tier"], subjects=subjects,
                                 direction="higher", strings=strings)
    data = {"meta": {"tag": "big", "branch": "autoexp/big", "tip": "0" * 40, "version": "test", "generated": "now", "question": "Big?",
                     "hypothesis": "", "state": "locked", "metric": "accuracy", "direction": "higher", "baseline": "v1", "iterated": "v2",
                     "rows": "per-row"},
            "frame_text": "question: Big?\n", "runs": [], "attempts": [], "gates": [], "stops": [], "verdict": None, "charts": [],
            "chart_note": "", "splits": {"dev": {**table, "a": "arm:v1", "b": "#1", "note": ""}} if n else {}, "strings": strings.values}
    if runs:
        data.update(runs=runs, meta={**data["meta"], "rows": "none"})
    return render(data)
