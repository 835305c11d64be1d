"""Screenshots of the dashboard's pages for the README (docs/images/web-*.png).

A demo ledger is made by real `systrade paper run --once` ticks against the local fake Binance of the test suite
(synthetic sine-wave candles, nothing from the internet), `systrade web` serves it, and Debian's chromium,
driven by Playwright, takes the pictures. Run from the repository: ``python docs/screenshots_web.py``
(a few minutes: every tick is a real daemon start).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
sys.path[:0] = [str(REPO / "tests")]  # the fake exchange and the paper set-up shared with the tests


def demo_candles():
    """A minute series that swings like a sine with noise, with wicks and varying volume (so candles look real)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 150
    close = np.round(100 + 4 * np.sin(np.arange(n) / 3.5) + rng.normal(0, 0.35, n).cumsum() * 0.3, 2)
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.round(np.maximum(open_, close) + rng.uniform(0.05, 0.6, n), 2)
    low = np.round(np.minimum(open_, close) - rng.uniform(0.05, 0.6, n), 2)
    index = pd.date_range("2024-05-01", periods=n, freq="1min", tz="UTC", unit="ns")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": np.round(rng.uniform(5, 40, n), 2)}, index=index)


def main() -> None:
    from paper_helpers import sma_bot
    from playwright.sync_api import sync_playwright
    from web_helpers import TOKEN, paper_site

    with tempfile.TemporaryDirectory() as folder:
        bots = [sma_bot(name="btc-sma", strategy=str(REPO / "strategies" / "sma_cross.py"),
                        params={"fast": 3, "slow": 8}, size=1.0, size_type="amount", capital_fraction=0.5,
                        candles=40),
                sma_bot(name="btc-hold", strategy=str(Path(folder) / "strategies" / "always_long.py"), params={},
                        size=0.5, size_type="amount", capital_fraction=0.5, candles=40)]
        site = paper_site(Path(folder), ticks=30, bots=bots, candles=demo_candles(), history=95)
        try:
            assert site.cli("paper", "halt", "btc-hold").returncode == 0  # so a halted bot shows too
            url = site.serve(TOKEN)
            IMAGES.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                for name, path, ready in (
                        ("overview", "/", "#account-chart.js-plotly-plot"),
                        ("bot", "/bots/btc-sma", "#equity-chart.js-plotly-plot"),
                        ("trades", "/trades", "#trades tbody tr"),
                        ("events", "/events", "#events tbody tr")):
                    page.goto(url + path)
                    page.wait_for_selector(ready)
                    page.wait_for_timeout(1500)  # let Plotly finish its layout
                    page.screenshot(path=str(IMAGES / f"web-{name}.png"), full_page=True)
                    print(f"wrote {IMAGES / f'web-{name}.png'}")
                browser.close()
        finally:
            site.close()


if __name__ == "__main__":
    main()
