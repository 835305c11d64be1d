"""Regenerate the report screenshots in docs/images/ from the bundled synthetic sample.

Runs the real commands (`systrade backtest ... --report`, `systrade optimize ... --report`) in a temporary
folder, opens each report in headless Chromium (Playwright driving Debian's /usr/bin/chromium, or the browser
given by $CHROMIUM) and saves a picture of it. From the repository root:

    pip install -e '.[dev]'          # playwright
    python docs/screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WINDOW = ["--start", "2024-01-01", "--end", "2024-06-30"]  # half a year of hourly bars: candles still readable
REPORTS = {
    "report-backtest.png": ["backtest", "sma_cross", "--fees", "0.001", "--slippage", "0.0005", *WINDOW,
                            "-p", "fast=20", "-p", "slow=60"],
    "report-optimize.png": ["optimize", "sma_cross", "--grid", "fast=5:40:5", "--grid", "slow=50:200:25",
                            "--fees", "0.001", "--no-progress"],
}


def systrade(folder: Path, *args: str) -> None:
    exe = Path(sys.executable).with_name("systrade")
    subprocess.run([str(exe) if exe.exists() else "systrade", *args], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)


def screenshot(report: Path, image: Path, height: int) -> None:
    """The top ``height`` pixels of the page once every chart is drawn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height}, device_scale_factor=1)
            page.goto(report.as_uri())
            page.wait_for_function("document.querySelectorAll('script[data-figure]').length =="
                                   " document.querySelectorAll('.js-plotly-plot').length", timeout=120_000)
            page.wait_for_timeout(500)  # let the last chart finish its layout
            page.screenshot(path=str(image), full_page=False)
        finally:
            browser.close()


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for image, args in REPORTS.items():
            report = folder / image.replace(".png", ".html")
            systrade(folder, *args, "--report", str(report))
            screenshot(report, IMAGES / image, height=1900 if "backtest" in image else 1700)
            print(f"{IMAGES / image} ({(IMAGES / image).stat().st_size:,} bytes) from {report.stat().st_size:,} "
                  "bytes of HTML")


if __name__ == "__main__":
    main()
