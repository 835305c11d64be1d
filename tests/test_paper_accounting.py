"""Paper-trading accounting: per-bot capital, fees in any currency, fills without a price, missed candles.

Everything runs for real: the ccxt client against the local fake Binance, a SQLite ledger file, the
`systrade` command as a subprocess. Expected numbers are worked out here from the fake's prices (flat
candles, so the book's ask is the bar's price plus one 0.01 tick) and its 0.1% taker fee.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pandas as pd
import pytest
from conftest import systrade_exe
from fakes.binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinance
from paper_helpers import fake_clock, paper_config, sma_bot, stepped_candles

from systrade.config import BotSettings, load_settings
from systrade.live.daemon import build_runners, run_once

MINUTE = 60_000
START = pd.Timestamp("2024-05-01", tz="UTC")
# SMA(3) against SMA(8): equal on the flat start, below on the dip (58-60), crossing above at bar 61 and
# staying above: one long entry, at bar 61, and no exit (checked by `crosses` below).
ENTRY = [100.0] * 58 + [99.0, 99.0, 99.0, 103.0, 103.0, 103.0, 104.0, 105.0] + [105.0] * 12
# The same entry at bar 61, then a fall that crosses back below at bar 62.
ENTRY_EXIT = [100.0] * 58 + [99.0, 99.0, 99.0, 103.0, 96.0, 95.0, 95.0, 95.0] + [95.0] * 12
ASK_AFTER_61 = 103.01  # the tick after bar 61 closes meets bar 62's price, 103, plus one tick
TAKER = Decimal("0.001")


def ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def crosses(prices: list[float], fast: int = 3, slow: int = 8) -> tuple[list[int], list[int]]:
    """Bars where the fast mean crosses strictly above / below the slow one (the strategy's rule, by hand)."""
    def mean(i: int, n: int) -> float:
        return sum(prices[i - n + 1:i + 1]) / n

    ups, downs = [], []
    for i in range(slow, len(prices)):
        before, now = mean(i - 1, fast) - mean(i - 1, slow), mean(i, fast) - mean(i, slow)
        if before < 0 < now:
            ups.append(i)
        if before > 0 > now:
            downs.append(i)
    return ups, downs


def units(cash: float, price: float, step: str = "0.00001") -> float:
    """What "all" buys: cash / (price * (1 + taker fee)), rounded down to the market's step."""
    raw = Decimal(repr(cash)) / (Decimal(repr(price)) * (1 + TAKER))
    return float(raw.quantize(Decimal(step), rounding=ROUND_DOWN))


def start_fake(candles: pd.DataFrame, first_bar: int) -> FakeBinance:
    """A fake whose newest closed candle is ``first_bar`` (half a minute into the next one)."""
    fake = FakeBinance(clock_ms=ms(candles.index[first_bar + 1]) + 30_000, spread_bps=0, book_qty=1e6).start()
    fake.add_market("BTC/USDT", candles, tick_size=0.01, step_size=0.00001, min_qty=0.00001)
    return fake


def runners(tmp_path: Path, fake: FakeBinance, bots: list[dict], sandbox: bool = False, monkeypatch=None,
            balances: dict | None = None):
    """The daemon's runners for ``bots`` against ``fake``, on the fake's clock."""
    config = paper_config(tmp_path / "systrade.toml", fake, bots, balances=balances,
                          extra='mode = "sandbox"' if sandbox else "")
    if sandbox:
        monkeypatch.setenv("SYSTRADE_BINANCE_API_KEY", DEFAULT_API_KEY)
        monkeypatch.setenv("SYSTRADE_BINANCE_SECRET", DEFAULT_SECRET)
    ledger, built = build_runners(load_settings(str(config)), clock=fake_clock(fake))
    return config, ledger, built


def tick_bars(fake: FakeBinance, built, count: int) -> list:
    """Tick every bot, then let one candle close; ``count`` times. The results of the last tick."""
    results = []
    for _ in range(count):
        results = run_once(built)
        fake.advance(MINUTE)
    return results


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYSTRADE_CONFIG": str(config), "COLUMNS": "250"}
    return subprocess.run([systrade_exe(), *args], env=env, cwd=config.parent, capture_output=True, text=True,
                          timeout=120)


def events(tmp_path: Path, kind: str) -> list[str]:
    db = sqlite3.connect(tmp_path / "paper.sqlite")
    try:
        return [row[0] for row in db.execute("select message from events where kind = ? order by id", (kind,))]
    finally:
        db.close()


def test_the_chosen_candles_cross_where_the_tests_say() -> None:
    assert crosses(ENTRY) == ([61], [])
    assert crosses(ENTRY_EXIT) == ([61], [62])


# ---------------------------------------------------------------- 1. a base-currency fee counts once


@pytest.mark.parametrize("limit, halts", [(8e-6, False), (5e-6, True)])
def test_a_fee_in_the_base_currency_counts_once_against_the_daily_loss_limit(tmp_path: Path, monkeypatch,
                                                                            limit: float, halts: bool) -> None:
    candles = stepped_candles(ENTRY, START)
    with start_fake(candles, 58) as fake:
        fake.set_balances({"USDT": 10_000.0, "BTC": 0.0})
        _, ledger, built = runners(tmp_path, fake, [sma_bot(size=0.5, size_type="amount", daily_loss_limit=limit)],
                                   sandbox=True, monkeypatch=monkeypatch)
        tick_bars(fake, built, 4)  # bars 58-61: the entry at 61 buys 0.5 BTC at 103.01, the fee 0.0005 BTC
        [fill] = ledger.fills()
        assert (fill.side, fill.amount, fill.price, fill.fee, fill.fee_currency) == ("buy", 0.5, ASK_AFTER_61,
                                                                                     0.0005, "BTC")
        [result] = run_once(built)  # bar 62 closes at 103
    # paid 51.505 for 0.4995 BTC worth 51.4485: a loss of 0.0565 (counting the fee twice made it 0.108)
    loss = 0.5 * ASK_AFTER_61 - 0.4995 * 103.0
    assert loss == pytest.approx(0.0565)
    assert loss > 5e-6 * 10_000.0 and loss < 8e-6 * 10_000.0 < loss + 0.0005 * 103.0
    assert (result.outcome == "halted") is halts
    bot = ledger.bot("btc-sma")
    assert bool(bot.halted) is halts
    assert bot.position == pytest.approx(0.4995, abs=1e-12)  # the exchange kept the fee out of the BTC
    assert bot.cash == pytest.approx(10_000.0 - 0.5 * ASK_AFTER_61, abs=1e-9)  # and none out of the cash


# ---------------------------------------------------------------- 2. a fee in a third currency


@pytest.mark.parametrize("asset, market, fee_price, value", [
    ("BNB", ("BNB/USDT", 500.0), None, 500.0),  # valued at BNB/USDT
    ("EUR", ("USDT/EUR", 0.92), 1 / 0.92, 1 / 0.92),  # no EUR/USDT market: USDT/EUR inverted
    ("XYZ", None, 2.0, None),  # no market at all: recorded, valued at 0
])
def test_a_fee_in_a_third_currency_is_valued_at_its_own_market(tmp_path: Path, monkeypatch, asset: str,
                                                               market, fee_price, value) -> None:
    candles = stepped_candles(ENTRY, START)
    with start_fake(candles, 58) as fake:
        if market is not None:
            fake.add_market(market[0], stepped_candles([market[1]] * len(ENTRY), START), tick_size=0.0001)
        if fee_price is not None:
            fake.fee_asset_prices[asset] = fee_price
        fake.fee_asset = asset
        fake.set_balances({"USDT": 10_000.0, "BTC": 0.0, asset: 100.0})
        config, ledger, built = runners(tmp_path, fake, [sma_bot(size=0.5, size_type="amount")], sandbox=True,
                                        monkeypatch=monkeypatch)  # the paper account holds no BNB, EUR or XYZ
        tick_bars(fake, built, 4)
        status = json.loads(cli(config, "paper", "status", "--json").stdout)
        terminal = cli(config, "paper", "status").stdout
    [fill] = ledger.fills()
    cost = 0.5 * ASK_AFTER_61  # 51.505 USDT
    worth = value if value is not None else fee_price  # what the exchange charged it at
    assert fill.fee_currency == asset and fill.fee == pytest.approx(cost * 0.001 / worth, abs=1e-8)
    expected = fill.fee * value if value is not None else 0.0
    assert fill.fee_quote == pytest.approx(expected, rel=1e-12)
    assert fill.fee_quote != pytest.approx(fill.fee * fill.price)  # never at the traded symbol's price
    bot = ledger.bot("btc-sma")
    assert bot.position == 0.5  # nothing came out of the BTC
    assert bot.cash == pytest.approx(10_000.0 - cost - expected, abs=1e-9)
    assert ledger.balances()[asset] == pytest.approx(-fill.fee, abs=1e-15)
    assert status["negative_balances"] == {asset: pytest.approx(-fill.fee, abs=1e-15)}
    assert f"the {asset} balance is negative ({-fill.fee:,.8g} {asset})" in terminal
    [row] = status["bots"]
    assert row["fees"] == pytest.approx(expected, rel=1e-12)
    assert row["equity"] == pytest.approx(10_000.0 - cost - expected + 0.5 * ASK_AFTER_61, abs=1e-9)
    assert row["pnl"] == pytest.approx(-expected, abs=1e-9)
    not_valued = events(tmp_path, "fee")
    if value is None:
        assert status["unvalued"] == [asset] and status["equity"] == pytest.approx(10_000.0, abs=1e-9)
        assert len(not_valued) == 1 and f"{asset} on BTC/USDT could not be valued in USDT" in not_valued[0]
    else:  # the account values the fee currency at what its fee was worth
        assert status["unvalued"] == [] and status["equity"] == pytest.approx(10_000.0 - expected, abs=1e-9)
        assert not_valued == []


# ---------------------------------------------------------------- 3. a fill without a price


def test_a_fill_without_a_price_waits_for_the_price_and_is_booked_once(tmp_path: Path, monkeypatch) -> None:
    candles = stepped_candles(ENTRY, START)
    with start_fake(candles, 58) as fake:
        fake.set_balances({"USDT": 10_000.0, "BTC": 0.0})
        _, ledger, built = runners(tmp_path, fake, [sma_bot(size=0.5, size_type="amount")], sandbox=True,
                                   monkeypatch=monkeypatch)
        tick_bars(fake, built, 3)  # bars 58-60
        fake.omit_fill_prices = True
        outcomes = [r.outcome for r in tick_bars(fake, built, 1)]  # bar 61: the entry is sent, filled, no price
        assert outcomes == ["skipped"] and ledger.fills() == []
        assert [o.status for o in ledger.orders()] == ["intent"]
        assert [r.outcome for r in tick_bars(fake, built, 1)] == ["skipped"]  # still no price: still not booked
        assert ledger.fills() == [] and len(fake.orders()) == 1
        fake.omit_fill_prices = False
        tick_bars(fake, built, 2)
        exchange_orders = fake.orders()
    assert len(exchange_orders) == 1  # looked up by its client order id, never sent again
    [order] = ledger.orders()
    [fill] = ledger.fills()
    assert order.status == "filled" and order.client_order_id == exchange_orders[0]["clientOrderId"]
    # the price the exchange filled at (bar 62's 103 plus a tick), not 0; the fee from the order's trades
    assert (fill.amount, fill.price, fill.fee, fill.fee_currency) == (0.5, ASK_AFTER_61, 0.0005, "BTC")
    assert ledger.bot("btc-sma").position == pytest.approx(0.4995, abs=1e-12)
    assert ledger.balances()["USDT"] == pytest.approx(10_000.0 - 0.5 * ASK_AFTER_61, abs=1e-9)


# ---------------------------------------------------------------- 4. per-bot capital


def two_bots_on_one_quote(tmp_path: Path, names: list[str]):
    tmp_path.mkdir()
    candles = stepped_candles(ENTRY, START)
    with start_fake(candles, 58) as fake:
        config, ledger, built = runners(tmp_path, fake, [sma_bot(name=name) for name in names])
        assert [r.name for r in built] == names  # ticks go in the listed order
        tick_bars(fake, built, 4)
    return config, ledger


def test_bots_on_one_quote_currency_size_from_their_own_capital_in_any_order(tmp_path: Path) -> None:
    amount = units(5_000.0, ASK_AFTER_61)  # half of the 10,000 USDT each, "all" of it at 103.01
    bought = {}
    for names in (["a", "b"], ["b", "a"]):
        config, ledger = two_bots_on_one_quote(tmp_path / "".join(names), names)
        bought["".join(names)] = {f.bot: (f.amount, f.price) for f in ledger.fills()}
    assert bought["ab"] == bought["ba"]  # the same amounts and prices whichever bot ticks first
    for got in bought["ab"].values():
        assert got == (pytest.approx(amount, abs=1e-12), pytest.approx(ASK_AFTER_61, abs=1e-9))
    assert set(bought["ab"]) == {"a", "b"}

    fee = amount * ASK_AFTER_61 * 0.001
    cash = 5_000.0 - amount * ASK_AFTER_61 - fee
    status = json.loads(cli(config, "paper", "status", "--json").stdout)
    for row in status["bots"]:
        assert row["capital"] == pytest.approx(5_000.0, abs=1e-9)
        assert row["cash"] == pytest.approx(cash, abs=1e-9)
        assert row["equity"] == pytest.approx(cash + amount * ASK_AFTER_61, abs=1e-9)  # at the last fill price
        assert row["pnl"] == pytest.approx(-fee, abs=1e-9)
        assert row["fees"] == pytest.approx(fee, rel=1e-12)
    assert status["cash"] == pytest.approx(10_000.0 - 2 * (amount * ASK_AFTER_61 + fee), abs=1e-9)
    assert status["equity"] == pytest.approx(10_000.0 - 2 * fee, abs=1e-9)
    assert status["unvalued"] == [] and status["negative_balances"] == {}
    table = cli(config, "paper", "status").stdout
    assert "capital" in table and "5,000.00" in table and f"{cash:,.2f}" in table


def test_capital_settings_split_and_check_the_starting_balance() -> None:
    from systrade.config import allocate_capital

    def bot(name: str, symbol: str = "BTC/USDT", **money) -> BotSettings:
        return BotSettings(name=name, strategy="s", exchange="binance", symbol=symbol, timeframe="1h", **money)

    balances = {"USDT": 10_000.0, "BTC": 2.0}
    assert allocate_capital([bot("a", capital=2_000.0), bot("b"), bot("c"), bot("d", capital_fraction=0.2),
                             bot("e", "ETH/BTC")], balances) == {
        "a": 2_000.0, "b": 3_000.0, "c": 3_000.0, "d": 2_000.0, "e": 2.0}
    assert allocate_capital([bot("a"), bot("b")], balances, assigned={"a": 1_000.0}) == {"a": 1_000.0, "b": 9_000.0}
    with pytest.raises(ValueError, match=r"allocated 12,000 USDT \(a 7,000, b 5,000\).*balance is 10,000"):
        allocate_capital([bot("a", capital=7_000.0), bot("b", capital_fraction=0.5)], balances)
    with pytest.raises(ValueError, match="no USDT left for bots b"):
        allocate_capital([bot("a", capital=10_000.0), bot("b")], balances)


@pytest.mark.parametrize("money, message", [
    ([{"capital": 100.0, "capital_fraction": 0.5}, {}], "bot a sets both capital and capital_fraction"),
    ([{"capital": 7000.0}, {"capital_fraction": 0.5}], "allocated 12,000 USDT (a 7,000, b 5,000)"),
])
def test_bad_capital_settings_are_config_errors(tmp_path: Path, money: list[dict], message: str) -> None:
    with FakeBinance(spread_bps=0) as fake:
        bots = [sma_bot(name=name, **extra) for name, extra in zip(["a", "b"], money, strict=True)]
        config = paper_config(tmp_path / "systrade.toml", fake, bots)
        result = cli(config, "paper", "run", "--once")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "paper.sqlite").exists()


def test_an_old_ledger_gets_capital_and_cash_from_its_fills(tmp_path: Path) -> None:
    candles = stepped_candles(ENTRY, START)
    with start_fake(candles, 58) as fake:
        config, ledger, built = runners(tmp_path, fake, [sma_bot(name="a"), sma_bot(name="b")])
        tick_bars(fake, built, 4)
        [fill_a, fill_b] = sorted(ledger.fills(), key=lambda f: f.bot)
        ledger.engine.dispose()
        db = sqlite3.connect(tmp_path / "paper.sqlite")  # make it a ledger from before per-bot capital
        for table, column in (("bots", "capital"), ("bots", "cash"), ("fills", "fee_quote")):
            db.execute(f"alter table {table} drop column {column}")
        db.commit()
        db.close()
        ledger, built = build_runners(load_settings(str(config)), clock=fake_clock(fake))
    spent = fill_a.amount * fill_a.price + fill_a.fee
    for name in ("a", "b"):
        bot = ledger.bot(name)
        assert bot.capital == 5_000.0 and bot.cash == pytest.approx(5_000.0 - spent, abs=1e-9)
    assert len(events(tmp_path, "capital")) == 2


def test_a_changed_capital_moves_the_bots_cash_by_the_difference(tmp_path: Path) -> None:
    candles = stepped_candles(ENTRY, START)
    with start_fake(candles, 58) as fake:
        _, ledger, built = runners(tmp_path, fake, [sma_bot()])
        tick_bars(fake, built, 4)  # bought with all of its 10,000 USDT
        cash = ledger.bot("btc-sma").cash
        _, ledger, built = runners(tmp_path, fake, [sma_bot(capital=8_000.0)])
    bot = ledger.bot("btc-sma")
    assert bot.capital == 8_000.0 and bot.cash == pytest.approx(cash - 2_000.0, abs=1e-9)
    assert events(tmp_path, "capital") == ["capital changed from 10,000 to 8,000; cash moves by -2,000"]


# ---------------------------------------------------------------- 5. missed candles


def test_missed_candles_are_caught_up_with_one_late_order_at_current_prices(tmp_path: Path) -> None:
    candles = stepped_candles(ENTRY, START)
    with start_fake(candles, 58) as fake:
        _, ledger, built = runners(tmp_path, fake, [sma_bot()])
        tick_bars(fake, built, 3)  # bars 58, 59, 60 processed; then the daemon is down while 61-63 close
        fake.advance(3 * MINUTE)
        [result] = run_once(built)  # bar 64 closed; bar 65 (105) is forming
        assert ledger.fills() and run_once(built)[0].outcome == "no-new-bar"
    ups, downs = crosses(ENTRY)
    missed = [61, 62, 63]
    assert ups == [61] and downs == []  # inside the missed bars: a long entry the bot never acted on
    [order] = ledger.orders()
    [fill] = ledger.fills()
    assert order.side == fill.side == "buy" and order.action == "buy"
    assert result.outcome == "filled" and "late by 3 bars" in result.message
    stamps = ", ".join(candles.index[i].strftime("%Y-%m-%dT%H:%MZ") for i in missed)
    assert order.reason == f"late by 3 bars (missed {stamps})"  # due at bar 62's open, placed at bar 65's
    assert fill.price == pytest.approx(105.01, abs=1e-9)  # the price now, not bar 62's 103
    assert fill.amount == pytest.approx(units(10_000.0, 105.01), abs=1e-12)
    assert events(tmp_path, "missed") == [f"missed 3 candles: {stamps}"]


def test_missed_candles_whose_signals_cancel_out_place_nothing_but_are_recorded(tmp_path: Path) -> None:
    candles = stepped_candles(ENTRY_EXIT, START)
    with start_fake(candles, 58) as fake:
        _, ledger, built = runners(tmp_path, fake, [sma_bot()])
        tick_bars(fake, built, 3)
        fake.advance(3 * MINUTE)
        [result] = run_once(built)
    assert crosses(ENTRY_EXIT) == ([61], [62])  # entry and exit both inside the missed bars 61-63: still flat
    assert result.outcome == "hold" and ledger.orders() == []
    stamps = ", ".join(candles.index[i].strftime("%Y-%m-%dT%H:%MZ") for i in (61, 62, 63))
    assert events(tmp_path, "missed") == [f"missed 3 candles: {stamps}"]
