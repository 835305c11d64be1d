"""The HTML reports, read back from the written file: the figures' JSON (decoded independently of the code that
wrote it), the tables and words a person sees, and that the file needs no network."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FEE = 0.001
CASH = 10_000.0
ENTRY_SIGNALS, EXIT_SIGNALS = (5, 40), (15, 50)  # bar indices: trade A (wins) then trade B (loses)

STRATEGY = f'''
import numpy as np
import pandas as pd
from systrade import Signals, Strategy


class HandBuilt(Strategy):
    """Enters and exits on fixed bars, so the trades are known in advance."""

    def signals(self, data):
        entries = pd.Series(False, index=data.index)
        exits = pd.Series(False, index=data.index)
        entries.iloc[list({ENTRY_SIGNALS})] = True
        exits.iloc[list({EXIT_SIGNALS})] = True
        mid = (data["high"] + data["low"]) / 2
        return Signals(entries=entries, exits=exits, plots={{"mid price": mid, "bar number": np.arange(len(data))}})
'''

BAD_PLOTS = '''
import pandas as pd
from systrade import Signals, Strategy


class BadPlots(Strategy):
    def signals(self, data):
        entries = pd.Series(False, index=data.index)
        return Signals(entries=entries, plots=PLOTS)
'''


def candles() -> pd.DataFrame:
    """120 daily candles (Jan to Apr 2024); each close is the next open, so fills are easy to work out."""
    n = 120
    path = 100 + 10 * np.sin(np.arange(n + 1) / 10)
    opens, closes = path[:-1], path[1:]
    index = pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC", name="time")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, closes) + 1, "low": np.minimum(opens, closes) - 1,
                         "close": closes, "volume": 1000.0 + np.arange(n)}, index=index)


# ---------------------------------------------------------------- reading the written file back


class _Page(HTMLParser):
    """Collects the figure JSON scripts, every src/href attribute and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._in: str | None = None
        self._buffer: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [value for name, value in attrs.items() if name in ("src", "href") and value]
        if tag == "script":
            self._in = "figure" if "data-figure" in attrs else "script"
            self._buffer = []
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "script":
            if self._in == "figure":
                self.figures.append(json.loads("".join(self._buffer)))
            self._in = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._in:
            self._buffer.append(data)
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def read_page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def values(array) -> np.ndarray:
    """A Plotly JSON array: a plain list, or a typed array ``{"dtype": "f4", "bdata": base64}``."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).astype(float)
    return np.array([np.nan if v is None else v for v in array], dtype=float)


def times(trace: dict) -> pd.DatetimeIndex:
    """A trace's x on a date axis: epoch milliseconds (or x0 + i * dx), read as UTC times."""
    if "x" in trace:
        x = trace["x"]
        ms = values(x) if isinstance(x, dict) or (x and not isinstance(x[0], str)) else None
        if ms is None:
            return pd.DatetimeIndex(pd.to_datetime(x, utc=True))
    else:
        n = len(values(trace["y"]))
        ms = trace["x0"] + trace["dx"] * np.arange(n)
    return pd.DatetimeIndex(pd.to_datetime(ms[np.isfinite(ms)], unit="ms", utc=True))


def traces(page: _Page, kind: str | None = None, name: str | None = None) -> list[dict]:
    return [t for f in page.figures for t in f["data"]
            if (kind is None or t.get("type") == kind) and (name is None or t.get("name") == name)]


def rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def marker_at(trace: dict, when: pd.Timestamp) -> tuple[float, str]:
    """(price, colour) of the marker a trace draws at ``when``."""
    position = list(times(trace)).index(when)
    colors = trace["marker"]["color"]
    return float(values(trace["y"])[position]), colors[position] if isinstance(colors, list) else colors


# ---------------------------------------------------------------- the backtest report


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """One real `systrade backtest --report` of the hand-built strategy (shared by the tests below)."""
    import os
    import subprocess

    from conftest import systrade_exe

    folder = tmp_path_factory.mktemp("report")
    data = candles()
    data.to_csv(folder / "candles.csv")
    (folder / "hand_built.py").write_text(STRATEGY)
    env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
    result = subprocess.run([systrade_exe(), "backtest", "hand_built.py", "--data", "candles.csv", "--fees", str(FEE),
                             "--slippage", "0", "--cash", str(CASH), "--report", "report.html"],
                            cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return folder / "report.html", data


def test_candlesticks_carry_every_bar_and_the_ohlc_of_a_known_bar(report) -> None:
    path, data = report
    page = read_page(path)
    (candle,) = traces(page, "candlestick")
    assert len(values(candle["open"])) == len(data) == len(times(candle))
    bar = 37
    assert times(candle)[bar] == data.index[bar]
    for column in ("open", "high", "low", "close"):
        assert values(candle[column])[bar] == pytest.approx(data[column].iloc[bar], rel=1e-6)


def test_the_strategys_plots_are_drawn_under_the_names_it_gave(report) -> None:
    path, data = report
    page = read_page(path)
    (mid,) = traces(page, "scatter", "mid price")
    (ramp,) = traces(page, "scatter", "bar number")
    assert values(mid["y"])[20] == pytest.approx((data["high"].iloc[20] + data["low"].iloc[20]) / 2, rel=1e-6)
    assert times(mid)[20] == data.index[20]
    assert list(values(ramp["y"])) == list(range(len(data)))
    assert mid["yaxis"] != ramp["yaxis"]  # bar numbers are not prices: their own panel, not over the candles


def test_entries_and_exits_are_marked_at_the_fills_and_coloured_by_the_sign_of_pnl(report) -> None:
    path, data = report
    page = read_page(path)
    (entries,) = traces(page, "scatter", "entries")
    (exits,) = traces(page, "scatter", "exits")
    opens = data["open"]
    # A signal on bar t fills at the open of bar t+1 (no slippage).
    (won_in, lost_in), (won_out, lost_out) = ([s + 1 for s in signals] for signals in (ENTRY_SIGNALS, EXIT_SIGNALS))
    assert opens.iloc[won_out] > opens.iloc[won_in] * 1.01 and opens.iloc[lost_out] < opens.iloc[lost_in]
    for trace, bar, won in ((entries, won_in, True), (exits, won_out, True), (entries, lost_in, False),
                            (exits, lost_out, False)):
        price, color = marker_at(trace, data.index[bar])
        assert price == pytest.approx(opens.iloc[bar], rel=1e-9)
        red, green, _ = rgb(color)
        assert (green > red) is won, (bar, color)
    assert len(times(entries)) == len(times(exits)) == 2


def test_equity_is_drawn_against_buy_and_hold(report) -> None:
    path, data = report
    page = read_page(path)
    (strategy,) = traces(page, "scatter", "strategy")
    (hold,) = traces(page, "scatter", "buy and hold")
    hold_values = values(hold["y"])
    expected = CASH * data["close"] / data["open"].iloc[0]  # all the cash at the first open, no costs
    assert list(times(hold)) == list(data.index)
    assert hold_values[-1] == pytest.approx(expected.iloc[-1], rel=1e-6)
    assert hold_values[30] == pytest.approx(expected.iloc[30], rel=1e-6)
    equity = values(strategy["y"])
    assert equity[0] == pytest.approx(CASH, rel=1e-6) and len(equity) == len(data)


def test_monthly_returns_match_the_returns_worked_out_by_hand(report) -> None:
    path, data = report
    page = read_page(path)
    table = next(t for t in page.tables if t and t[0][1:4] == ["Jan", "Feb", "Mar"])
    row = next(r for r in table if r[0] == "2024")
    opens = data["open"]
    a_in, b_in = (s + 1 for s in ENTRY_SIGNALS)
    a_out, b_out = (s + 1 for s in EXIT_SIGNALS)
    # January: all the cash buys at a_in's open (fee on top), sells at a_out's open (fee off); flat by month end.
    january = ((1 - FEE) * opens.iloc[a_out] / ((1 + FEE) * opens.iloc[a_in]) - 1) * 100
    # February: the same for trade B, on the equity January left.
    february = ((1 - FEE) * opens.iloc[b_out] / ((1 + FEE) * opens.iloc[b_in]) - 1) * 100
    shown = [float(cell.replace("%", "").replace("+", "").replace(",", "").strip()) for cell in row[1:3]]
    assert shown[0] == pytest.approx(january, abs=0.051) and shown[1] == pytest.approx(february, abs=0.051)
    assert shown[0] > 0 > shown[1]
    assert row[3].strip() in ("+0.0 %", "0.0 %")  # March: no position, no change


def test_rules_are_written_in_words_with_the_fee_as_a_percentage(report) -> None:
    path, _ = report
    text = re.sub(r"\s+", " ", " ".join(read_page(path).text))
    assert "fees 0.10 % per fill" in text and "slippage 0.00 %" in text and "long only" in text
    assert "starting cash 10,000.00" in text
    assert "{'direction'" not in text  # no dict dump


def test_the_report_needs_no_network(report) -> None:
    path, _ = report
    page = read_page(path)
    assert not [link for link in page.links if re.match(r"(https?:)?//", link)]
    assert len(page.figures) == 2  # price and equity figures, drawn from the file's own JSON


def test_trade_table_shows_numbers_for_people(report) -> None:
    path, data = report
    page = read_page(path)
    table = next(t for t in page.tables if t and t[0][:3] == ["#", "direction", "entry time"])
    first = dict(zip(table[0], table[1], strict=True))
    assert first["entry time"] == f"{data.index[ENTRY_SIGNALS[0] + 1]:%Y-%m-%d %H:%M}"
    assert first["entry price"] == f"{data['open'].iloc[ENTRY_SIGNALS[0] + 1]:,.2f}"
    assert first["P&L"].startswith("+") and re.fullmatch(r"\+[\d,]+\.\d\d", first["P&L"])


@pytest.mark.parametrize(("plots", "expected"), [
    ("[1, 2, 3]", "plots is a list; give a dict"),
    ('{"short": pd.Series([1.0, 2.0])}', "has 2 values but data has 120 rows"),
    ('{"words": ["a"] * len(data)}', "not numbers"),
])
def test_bad_plots_exit_2_with_a_clear_message_and_write_nothing(tmp_path: Path, plots: str, expected: str) -> None:
    import os
    import subprocess

    from conftest import systrade_exe, tree

    candles().to_csv(tmp_path / "candles.csv")
    (tmp_path / "bad.py").write_text(BAD_PLOTS.replace("PLOTS", plots))
    before = tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
    result = subprocess.run([systrade_exe(), "backtest", "bad.py", "--data", "candles.csv", "--report", "r.html"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "signals().plots" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(tmp_path) == before


def test_the_sweep_ignores_plots() -> None:
    """Plots are checked by the backtest only: a sweep's signal call never looks at them."""
    from systrade.backtest.run import compute_signals
    from systrade.data.load import Candles
    from systrade.strategy import Signals, Strategy

    class Unplottable(Strategy):
        def signals(self, data):
            return Signals(entries=data["close"] > 1e9, plots="not a dict")

    arrays = compute_signals(Unplottable(), Candles("X/Y", "1d", candles(), "test", False))
    assert not arrays["entries"].any()


def test_several_symbols_get_one_section_each() -> None:
    from systrade.backtest.report import render_report
    from systrade.backtest.run import run_backtest
    from systrade.data.load import Candles
    from systrade.sim.rules import PositionRules
    from systrade.strategy import Signals, Strategy

    class Cross(Strategy):
        def signals(self, data):
            mean = data["close"].rolling(5).mean()
            return Signals(entries=data["close"] > mean, exits=data["close"] < mean, plots={"mean": mean})

    first = candles()
    second = first * 2.0
    run = run_backtest(Cross(), [Candles("AAA/USD", "1d", first, "test", False),
                                 Candles("BBB/USD", "1d", second, "test", False)], PositionRules(fees=FEE), CASH)
    page = _Page()
    page.feed(render_report(run))
    candles_traces = traces(page, "candlestick")
    assert len(candles_traces) == 2
    assert values(candles_traces[1]["close"])[10] == pytest.approx(second["close"].iloc[10], rel=1e-6)
    assert len(traces(page, "scatter", "mean")) == 2
    headings = " ".join(page.text)
    assert "AAA/USD 1d" in headings and "BBB/USD 1d" in headings


def test_the_report_draws_its_charts_in_a_browser_with_the_network_cut_off(report) -> None:
    """Headless Chromium opens the file with every non-file request refused: plotly.js unpacks from the file
    itself and the candlesticks and equity are drawn."""
    from playwright.sync_api import sync_playwright

    path, data = report
    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()

            def refuse(route):
                refused.append(route.request.url)
                route.abort()

            page.route(re.compile(r"^(?!file:).*"), refuse)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(path.as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length == 2", timeout=60_000)
            drawn = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(
                plot => plot._fullData.map(trace => [trace.type, trace.name, trace._length ?? null]))""")
            candles_drawn = page.locator(".js-plotly-plot g.trace.boxes path").count()
        finally:
            browser.close()
    assert errors == [] and refused == []
    kinds = {(kind, name) for figure in drawn for kind, name, _ in figure}
    assert ("candlestick", "price") in kinds and ("scatter", "buy and hold") in kinds
    assert candles_drawn == len(data)


# ---------------------------------------------------------------- optimize and walk-forward reports


def run_systrade(folder: Path, *args: str) -> None:
    import os
    import subprocess

    from conftest import STRATEGIES, systrade_exe

    env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
    (folder / "systrade.toml").write_text(f'[strategies]\ndir = "{STRATEGIES.as_posix()}"\n')
    result = subprocess.run([systrade_exe(), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def search_folder(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("search")
    data = candles()
    data.to_csv(folder / "candles.csv")
    common = ["--data", "candles.csv", "--fees", str(FEE), "--cash", str(CASH), "--workers", "1", "--no-progress"]
    run_systrade(folder, "optimize", "sma_cross", "--grid", "fast=3,5", "--grid", "slow=10,20", *common,
                 "--json", "opt.json", "--report", "opt.html")
    run_systrade(folder, "walkforward", "sma_cross", "--grid", "fast=3,5", "--grid", "slow=10,20", "--train", "40d",
                 "--test", "20d", *common, "--json", "wf.json", "--report", "wf.html")
    return folder, data


def test_optimize_report_shows_the_best_combination_as_the_backtest_would(search_folder) -> None:
    folder, data = search_folder
    best = json.loads((folder / "opt.json").read_text())["best"]
    params = best["params"]
    run_systrade(folder, "backtest", "sma_cross", "--data", "candles.csv", "--fees", str(FEE), "--cash", str(CASH),
                 *[arg for name, value in params.items() for arg in ("-p", f"{name}={value}")], "--json", "bt.json")
    backtest = json.loads((folder / "bt.json").read_text())
    page = read_page(folder / "opt.html")
    assert len(traces(page, "heatmap")) == 1
    (equity,) = traces(page, "scatter", "strategy")
    (hold,) = traces(page, "scatter", "buy and hold")
    assert values(equity["y"])[-1] == pytest.approx(backtest["final_equity"], rel=1e-5)
    hold_values = values(hold["y"])
    assert list(times(hold)) == list(data.index)
    assert hold_values[-1] == pytest.approx(CASH * data["close"].iloc[-1] / data["open"].iloc[0], rel=1e-6)
    text = re.sub(r"\s+", " ", " ".join(page.text))
    assert "fees 0.10 % per fill" in text and f"best: {', '.join(f'{k} = {v}' for k, v in params.items())}" in text
    assert any(t and t[0][1:4] == ["Jan", "Feb", "Mar"] for t in page.tables)  # the monthly returns
    top = next(t for t in page.tables if t and t[0][:3] == ["#", "fast", "slow"])
    assert len(top) == 5 and all(row[3].endswith(" %") for row in top[1:])  # total return shown as a percent
    assert not [link for link in page.links if re.match(r"(https?:)?//", link)]


def test_walkforward_report_shows_the_stitched_out_of_sample_equity_against_buy_and_hold(search_folder) -> None:
    folder, data = search_folder
    document = json.loads((folder / "wf.json").read_text())
    page = read_page(folder / "wf.html")
    (equity,) = traces(page, "scatter", "strategy")
    (hold,) = traces(page, "scatter", "buy and hold")
    stitched = pd.DatetimeIndex(pd.to_datetime(document["oos_equity"]["time"], utc=True))
    assert list(times(equity)) == list(stitched)
    start = data.index.get_loc(stitched[0])
    expected = CASH * data["close"].iloc[-1] / data["open"].iloc[start]  # bought at the first tested open
    assert values(hold["y"])[-1] == pytest.approx(expected, rel=1e-6)
    assert values(equity["y"])[-1] == pytest.approx(document["oos_equity"]["equity"][-1], rel=1e-6)
    text = re.sub(r"\s+", " ", " ".join(page.text))
    assert "fees 0.10 % per fill" in text and "long only" in text
    assert any(t and t[0][1:4] == ["Jan", "Feb", "Mar"] for t in page.tables)


def test_a_shared_cash_run_starts_with_the_portfolio_against_equal_parts_held() -> None:
    from systrade.backtest.report import render_report
    from systrade.backtest.run import run_backtest
    from systrade.data.load import Candles
    from systrade.sim.rules import PositionRules
    from systrade.strategy import Signals, Strategy

    class Never(Strategy):
        def signals(self, data):
            return Signals(entries=data["close"] < 0)

    first = candles()
    second = first.copy()
    second[["open", "high", "low", "close"]] *= np.linspace(1.0, 2.0, len(first))[:, None]
    run = run_backtest(Never(), [Candles("AAA/USD", "1d", first, "test", False),
                                 Candles("BBB/USD", "1d", second, "test", False)], PositionRules(), CASH,
                       cash_sharing=True)
    page = _Page()
    page.feed(render_report(run))
    (equity,) = traces(page, "scatter", "strategy")
    (hold,) = traces(page, "scatter", "buy and hold")
    assert set(values(equity["y"])) == {CASH}  # never trades: the cash stays
    by_hand = CASH / 2 * (first["close"].iloc[-1] / first["open"].iloc[0]
                          + second["close"].iloc[-1] / second["open"].iloc[0])
    assert values(hold["y"])[-1] == pytest.approx(by_hand, rel=1e-6)
    assert len(traces(page, "candlestick")) == 2
