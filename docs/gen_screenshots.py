"""Regenerate the output browser's screenshots in docs/images/: python docs/gen_screenshots.py

Builds the demo experiment (`gitera demo`) in a temporary directory, writes its page with
`gitera view --no-serve`, and photographs it in Debian's headless chromium, driven as the
browser tests drive it (tests/browser.py): the overview, and the rows attempt 1 fixed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(__file__).with_name("images")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from tests.browser import chromium, console_errors, unavailable, wait_ready

    reason = unavailable()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HOME": tmp, "GIT_AUTHOR_NAME": "gitera demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
               "GIT_COMMITTER_NAME": "gitera demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid"}
        demo = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "gitera", "demo", "--dir", str(demo)], check=True, env=env, stdout=subprocess.DEVNULL)
        page = Path(tmp) / "banking.html"
        subprocess.run([sys.executable, "-m", "gitera", "view", "--no-serve", "--out", str(page)], check=True, env=env, cwd=demo)
        IMAGES.mkdir(exist_ok=True)
        with chromium(1400, 900) as driver:
            driver.get(page.as_uri())
            wait_ready(driver)
            driver.save_screenshot(str(IMAGES / "view-overview.png"))
            driver.execute_script("giteraView.showPair('dev', 'arm:rules-v2', '#1');"
                                  "document.querySelector(\"#filters button[data-filter='fixed']\").click();"
                                  "document.querySelector('#vt-layer .vt-row').click();"
                                  "document.getElementById('rows').scrollIntoView();")
            time.sleep(0.3)
            driver.save_screenshot(str(IMAGES / "view-rows.png"))
            errors = console_errors(driver)
    if errors:
        print(f"the page logged errors: {errors}", file=sys.stderr)
        return 1
    print(f"wrote {IMAGES / 'view-overview.png'} and {IMAGES / 'view-rows.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
