"""Time to first render and weight of a server-rendered plan page, measured in headless Chromium.

Starts ``python -m api`` on a fresh database, makes one plan, then loads ``/plans/{id}`` in a fresh browser
context each time (a cold cache) and reports, over the loads: the server's time to produce the page (time to
first byte), first contentful paint and load-event end from the browser's own timing entries, and the page
weight (document + stylesheet + script + icon, bytes on the wire and decoded). Also the same page fetched
with httpx, for the server's rendering time alone.

    python bench/web_page.py                 # 10 loads; needs Chromium (SCALEPLAN_CHROMIUM) and playwright
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api.testing import ServerProcess  # noqa: E402

TIMING = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const res = performance.getEntriesByType('resource');
  return {ttfb: nav.responseStart - nav.requestStart, fcp: fcp ? fcp.startTime : null, load: nav.loadEventEnd,
          wire: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
          decoded: nav.decodedBodySize + res.reduce((a, r) => a + r.decodedBodySize, 0),
          html: nav.decodedBodySize, files: 1 + res.length};
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--compute", type=float, default=1e21)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("SCALEPLAN_CHROMIUM") or shutil.which("chromium") or "chromium"
    with tempfile.TemporaryDirectory() as tmp, \
            ServerProcess(Path(tmp) / "bench.db", env={"SCALEPLAN_RATE_LIMIT": "0"}) as server:
        body = {"compute_flops": args.compute, "hardware": {"gpu": "H100-SXM", "count": 64, "price_per_gpu_hour": 2.5}}
        plan = httpx.post(f"{server.url}/v1/plans", json=body, timeout=30).json()
        url = f"{server.url}/plans/{plan['id']}"
        server_ms = []
        for _ in range(args.loads):
            start = time.perf_counter()
            httpx.get(url, timeout=30).raise_for_status()
            server_ms.append((time.perf_counter() - start) * 1e3)
        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            for _ in range(args.loads):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(url, wait_until="load")
                page.wait_for_timeout(50)
                rows.append(page.evaluate(TIMING))
                context.close()
            browser.close()
    load = os.getloadavg()[0]
    print(f"plan page {url.rsplit('/', 2)[-2:]} at {args.compute:g} FLOPs, {args.loads} cold loads, "
          f"load average {load:.2f} on {os.cpu_count()} cores")
    print("| measure | median | min | max |")
    print("|---|---|---|---|")

    def line(name: str, values: list[float], unit: str) -> None:
        print(f"| {name} | {statistics.median(values):.1f} {unit} | {min(values):.1f} {unit} | "
              f"{max(values):.1f} {unit} |")

    line("server render, httpx GET (ms)", server_ms, "ms")
    line("time to first byte in Chromium (ms)", [r["ttfb"] for r in rows], "ms")
    line("first contentful paint (ms)", [r["fcp"] for r in rows if r["fcp"] is not None], "ms")
    line("load event end (ms)", [r["load"] for r in rows], "ms")
    line("page weight on the wire (KiB)", [r["wire"] / 1024 for r in rows], "KiB")
    line("page weight decoded (KiB)", [r["decoded"] / 1024 for r in rows], "KiB")
    line("of which the HTML (KiB)", [r["html"] / 1024 for r in rows], "KiB")
    print(f"files fetched per load: {rows[0]['files']} (document, stylesheet, script, icon), all same origin")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
