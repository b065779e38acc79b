"""The output browser on a large experiment: building the page, and Chromium opening and filtering it,
next to a plain page holding the same rows as one full <table> (the reference, in the same run).

The page: N dev rows × a baseline, an arm and A attempts (3 trials each), built by gitera's own
pure code (tests/browser.py `big_page`). Times in the browser come from performance.now() inside
the page: load = navigation start to the page's ready mark (all data parsed, first screen
built); filter = one click on "fixed" until its rows are on screen. Medians of --repeat loads in
a fresh headless Chromium (Debian's chromium and chromium-driver, as the tests use).

    python bench/bench_view.py [--rows 10000] [--attempts 30] [--repeat 5]
"""

from __future__ import annotations

import argparse
import html
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser import big_page, chromium, unavailable, wait_ready  # noqa: E402

PLAIN_FILTER = """const t = performance.now(); let n = 0;
for (const tr of document.querySelectorAll('tbody tr')) { const hide = tr.dataset.fixed !== '1'; tr.hidden = hide; n += !hide; }
document.body.offsetHeight; return [performance.now() - t, n];"""
PAGE_FILTER = """const t = performance.now(); document.querySelector("#filters button[data-filter='fixed']").click();
document.body.offsetHeight; return [performance.now() - t, document.querySelectorAll('#vt-layer .vt-row').length];"""


def plain_page(rows: int, attempts: int) -> str:
    """The reference: every row × every side as table cells in the DOM at once, filtered by hiding rows."""
    head = "".join(f"<th>{h}</th>" for h in ["id", "question", "label", *(f"s{j} out</th><th>s{j}" for j in range(attempts + 2))])
    body = []
    for k in range(rows):
        cells = [f"r{k:05d}", html.escape(f"question number {k} about item {k % 97}"), f"L{k % 7}"]
        for j in range(attempts + 2):
            ok = k % (3 + j) != 0
            cells += [f"L{k % 7 if ok else (k + 1) % 7}", str(int(ok))]
        fixed = int(k % 3 == 0 and k % 5 != 0)
        body.append(f"<tr data-fixed='{fixed}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>plain</title></head><body><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table><script>performance.mark('gitera-ready'); document.body.dataset.ready = 'true';</script>"
            "</body></html>")


def measure(path: Path, filter_js: str, repeat: int) -> tuple[float, float, int]:
    loads, filters, shown = [], [], 0
    for _ in range(repeat):
        with chromium() as driver:
            driver.get(path.as_uri())
            wait_ready(driver, timeout=120)
            loads.append(float(driver.execute_script("return performance.getEntriesByName('gitera-ready')[0].startTime")))
            ms, shown = driver.execute_script(filter_js)
            filters.append(float(ms))
    return statistics.median(loads), statistics.median(filters), int(shown)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--attempts", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        text = big_page(args.rows, attempts=args.attempts)
        build_s = time.perf_counter() - started
        page, plain = Path(tmp) / "page.html", Path(tmp) / "plain.html"
        page.write_text(text, encoding="utf-8")
        plain.write_text(plain_page(args.rows, args.attempts), encoding="utf-8")
        ours: Any = measure(page, PAGE_FILTER, args.repeat)
        ref: Any = measure(plain, PLAIN_FILTER, args.repeat)
        sizes = page.stat().st_size / 1e6, plain.stat().st_size / 1e6
    print(f"{args.rows:,} rows × {args.attempts + 2} arms and attempts × 3 trials; page built in {build_s:.2f} s "
          f"(pure Python, {sizes[0]:.1f} MB; plain table {sizes[1]:.1f} MB); medians of {args.repeat}\n")
    print("| page | open to first screen (ms) | filter 'fixed' (ms) | DOM rows after the filter | × plain table (open) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| plain table, every row in the DOM (reference) | {ref[0]:.0f} | {ref[1]:.1f} | {ref[2]:,} | 1.0 |")
    print(f"| gitera view (renders the rows on screen) | {ours[0]:.0f} | {ours[1]:.1f} | {ours[2]:,} | {ours[0] / ref[0]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
