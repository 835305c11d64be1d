"""The dashboard as a person sees it: the real pages of `systrade web` in Debian's headless chromium (driven by
Playwright), over a ledger written by real `systrade paper run --once` ticks on the fake Binance."""

from __future__ import annotations

import pandas as pd
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from web_helpers import TOKEN, PaperSite, paper_site

CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright cannot download its own browser here (.ci/run)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    site = paper_site(tmp_path_factory.mktemp("web-browser"), ticks=2)
    yield site
    site.close()


@pytest.fixture(scope="module")
def url(site: PaperSite) -> str:
    return site.serve(TOKEN)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # a fresh sessionStorage each test
    page = context.new_page()
    yield page
    context.close()


def bots_of(site: PaperSite) -> dict[str, dict]:
    return {b["name"]: b for b in site.json_of("paper", "status")["bots"]}


def test_the_overview_shows_the_bots_their_trades_and_the_account_curve(site: PaperSite, url: str, page: Page) -> None:
    page.goto(url + "/")
    bots = page.locator("#bots tbody tr")
    expect(bots).to_have_count(2)
    expect(bots.first).to_contain_text("btc-flip")
    expect(bots.first).to_contain_text("binance BTC/USDT")
    first = site.json_of("paper", "trades")[0]
    trade = page.locator("#recent-trades tbody tr", has_text="btc-flip").last
    expect(trade).to_contain_text(f"{first['price']:,.2f}")
    expect(trade).to_contain_text(first["side"])
    expect(page.locator("#account-chart.js-plotly-plot .scatterlayer .trace").first).to_be_attached()


def test_the_trades_page_lists_and_filters_the_fills(site: PaperSite, url: str, page: Page) -> None:
    page.goto(url + "/trades")
    trades = site.json_of("paper", "trades")
    rows = page.locator("#trades tbody tr")
    expect(rows).to_have_count(len(trades))
    expect(rows.first).to_contain_text(trades[-1]["client_order_id"])  # newest first
    page.select_option("#filter-side", "sell")
    sells = [t for t in trades if t["side"] == "sell"]
    expect(rows).to_have_count(len(sells))
    expect(rows.first).to_contain_text(sells[-1]["client_order_id"])
    assert page.get_attribute("#csv", "href").endswith("side=sell")


def test_the_bot_page_draws_its_candles(site: PaperSite, url: str, page: Page) -> None:
    page.goto(url + "/bots/btc-flip")
    expect(page.locator("#bot-title")).to_contain_text("btc-flip")
    expect(page.locator("#price-chart.js-plotly-plot .boxlayer .trace").first).to_be_attached()  # candlesticks
    drawn = page.evaluate("document.getElementById('price-chart')._fullData.find(t => t.type === 'candlestick')"
                          "._length")
    stored = site.candles[site.candles.index <= pd.Timestamp(site.fake.now_ms - 60_000, unit="ms", tz="UTC")]
    assert drawn == len(stored)  # every closed candle in the store (fewer than the 500 drawn at most)
    expect(page.locator("#equity-chart.js-plotly-plot .scatterlayer .trace").first).to_be_attached()
    expect(page.locator("#bot-trades tbody tr")).to_have_count(
        len([t for t in site.json_of("paper", "trades") if t["bot"] == "btc-flip"]))


def test_halt_from_the_page_needs_the_token(site: PaperSite, url: str, page: Page) -> None:
    page.goto(url + "/")
    halt = page.locator("#bots button[data-bot='btc-flip']")
    expect(halt).to_have_text("Halt")
    halt.click()
    page.click("#token-dialog button[value='cancel']")
    expect(page.locator("#message")).to_contain_text("cancelled")
    halt.click()
    page.fill("#token-input", "not-the-token")
    page.click("#token-ok")
    expect(page.locator("#message")).to_contain_text("refused")
    assert not bots_of(site)["btc-flip"]["halted"]
    halt.click()
    page.fill("#token-input", TOKEN)
    page.click("#token-ok")
    expect(page.locator("#bots tbody tr", has_text="btc-flip")).to_contain_text("halted")
    assert bots_of(site)["btc-flip"]["halted"] and not bots_of(site)["btc-long"]["halted"]
    assert TOKEN not in page.url
    resume = page.locator("#bots button[data-bot='btc-flip']")
    expect(resume).to_have_text("Resume")
    resume.click()  # the token is kept for this tab: no question asked again
    expect(resume).to_have_text("Halt")
    assert not bots_of(site)["btc-flip"]["halted"]


def test_the_overview_follows_a_new_tick_without_a_reload(site: PaperSite, url: str, page: Page) -> None:
    page.goto(url + "/")
    rows = page.locator("#recent-trades tbody tr")
    before = len(site.json_of("paper", "trades"))
    expect(rows).to_have_count(before)
    page.evaluate("window.loadedOnce = true")  # a reload would forget it
    site.tick()
    expect(rows).to_have_count(before + 1, timeout=60_000)
    newest = site.json_of("paper", "trades")[-1]
    expect(rows.first).to_contain_text(f"{newest['price']:,.2f}")
    assert page.evaluate("window.loadedOnce") is True
