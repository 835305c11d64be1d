"""The fill model as a backtest runs it (``systrade.backtest.engine.simulate``) against the plain-loop reference.

Random single-symbol markets, sparse signals and random rules (sizes, lots, minimums, fees per side, ticks,
stops) go through both; every fill (bar, side, size, price, fee), every skipped order (bar, reason) and the
equity curve vectorbt reports from the fills must agree to 1e-9 relative. Where vectorbt's own rules and
ours coincide (no stops, lots or minimums), the fills must also equal ``vectorbt.Portfolio.from_signals``
bar for bar: an independent implementation of the same rules. Hand-worked known-answer cases pin numbers.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from reference_sim import Fill, Result, simulate_reference

from systrade.backtest import vectorbt_books
from systrade.backtest.engine import simulate
from systrade.sim.rules import PositionRules

REL = 1e-9
BAR = pd.Timedelta("1h")


# --------------------------------------------------------------------------------------------------
# Running both simulators
# --------------------------------------------------------------------------------------------------

def run_engine(open_, high, low, close, signals: dict, cash: float, **rules):
    """``simulate`` on one symbol ``X`` with hourly bars."""
    n = len(close)
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0},
                         index=index, dtype=float)
    arrays = {name: None if signals.get(name) is None else np.asarray(signals[name], dtype=bool)
              for name in ("entries", "exits", "short_entries", "short_exits")}
    return simulate({"X": frame}, {"X": arrays}, PositionRules(**rules), cash, BAR)


def run_reference(open_, high, low, close, signals: dict, cash: float, **rules) -> Result:
    return simulate_reference(open_, high, low, close, signals["entries"], signals.get("exits"),
                              signals.get("short_entries"), signals.get("short_exits"), cash=cash, **rules)


def engine_fills(sim) -> list[Fill]:
    """The engine's fills in units (``Simulation.orders``), bar positions counted from 0."""
    orders = sim.orders()
    index = sim.index
    return [Fill(int(index.get_loc(r.time)), r.side, float(r.size), float(r.price), float(r.fees), r.kind)
            for r in orders.itertuples()]


def engine_skips(sim) -> list[tuple[int, str]]:
    index = sim.index
    return [(int(index.get_loc(r.time)), r.reason) for r in sim.skipped().itertuples()]


def engine_equity(sim) -> np.ndarray:
    """``Simulation.value()`` of the one symbol column: cash + position * close per bar."""
    value = sim.value()
    return value["X"].to_numpy() if isinstance(value, pd.DataFrame) else value.to_numpy()


def close_enough(a: float, b: float, rel: float = REL, abs_: float = 1e-12) -> bool:
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


def same_fill(e: Fill, r: Fill) -> bool:
    notional = r.size * r.price
    return (e.bar == r.bar and e.side == r.side and close_enough(e.size, r.size)
            and close_enough(e.price, r.price)
            # vectorbt books the fee of an all-cash buy as ``cash - cash / (1 + fees)`` (buy_nb), which loses
            # digits to cancellation when fees are tiny: allow float noise relative to the traded value.
            and close_enough(e.fee, r.fee, abs_=1e-12 * notional))


def assert_matches(open_, high, low, close, signals, cash, **rules) -> None:
    ref = run_reference(open_, high, low, close, signals, cash, **rules)
    pf = run_engine(open_, high, low, close, signals, cash, **rules)
    got = engine_fills(pf)
    for k, (e, r) in enumerate(zip(got, ref.fills, strict=False)):
        if not same_fill(e, r):
            raise AssertionError(f"fill #{k} differs:\n  engine    {e}\n  reference {r}\n"
                                 f"engine fills {got[max(0, k - 2):k + 2]}\nreference fills "
                                 f"{ref.fills[max(0, k - 2):k + 2]}")
    assert len(got) == len(ref.fills), (f"engine has {len(got)} fills, reference {len(ref.fills)}:\n"
                                        f"{got[len(ref.fills):]}\n{ref.fills[len(got):]}")
    assert engine_skips(pf) == [(k.bar, k.reason) for k in ref.skipped]
    value = engine_equity(pf)
    assert value.shape == (len(close),)
    for i, (e, r) in enumerate(zip(value, ref.equity, strict=True)):
        assert close_enough(float(e), r, abs_=1e-9 * cash), f"equity differs at bar {i}: engine {e}, reference {r}"
    # What the example exercised, for --hypothesis-show-statistics.
    event(f"fills: {'none' if not got else '1-3' if len(got) < 4 else '4+'}")
    for tag in ("stop_loss", "take_profit", "reverse", "partial", "tie"):
        if any(tag in f.reason for f in ref.fills):
            event(f"has a {tag} fill")
    for skip in ref.skipped:
        event(f"has a {skip.reason} skip")


# --------------------------------------------------------------------------------------------------
# Random markets
# --------------------------------------------------------------------------------------------------

def make_market(rng: random.Random, n: int, vol: float, cents: bool):
    """A positive OHLC path: a random walk with gaps between bars and wicks beyond open/close."""
    price = rng.uniform(20, 500)
    open_, high, low, close = [], [], [], []
    for _ in range(n):
        o = price * math.exp(rng.gauss(0, vol / 3))
        c = o * math.exp(rng.gauss(0, vol))
        h = max(o, c) * (1 + min(abs(rng.gauss(0, vol / 2)), 0.5))
        lo = min(o, c) * (1 - min(abs(rng.gauss(0, vol / 2)), 0.5))
        if cents:  # exchange-like prices: more exact ties between levels and prices
            o, c = round(o, 2), round(c, 2)
            h, lo = max(round(h, 2), o, c), min(round(lo, 2), o, c)
        open_.append(o)
        high.append(h)
        low.append(lo)
        close.append(c)
        price = c
    return open_, high, low, close


@st.composite
def scenarios(draw, directions=("long", "short", "both"), stops: bool | None = None):
    n = draw(st.integers(20, 200))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    vol = draw(st.sampled_from([0.002, 0.01, 0.03, 0.08]))
    open_, high, low, close = make_market(rng, n, vol, cents=draw(st.booleans()))

    density = draw(st.sampled_from([0.05, 0.15, 0.3]))

    def flags():
        return [rng.random() < density for _ in range(n)]

    signals = {"entries": flags(), "exits": flags()}
    if draw(st.integers(0, 3)) == 0:  # a strategy without exits
        signals["exits"] = None
    if draw(st.booleans()):  # the strategy gives its own short side
        signals["short_entries"] = flags()
        signals["short_exits"] = flags() if draw(st.booleans()) else None

    direction = draw(st.sampled_from(directions))
    kinds = ["all", "amount", "value"] + (["percent"] if direction != "both" else [])
    kind = draw(st.sampled_from(kinds))
    cash = draw(st.sampled_from([10_000.0, 1_000.0]) | st.floats(100.0, 1e6))
    if kind == "all":
        size, size_type = "all", "percent"
    elif kind == "percent":
        size, size_type = draw(st.sampled_from([100.0, 50.0]) | st.floats(1.0, 100.0)), "percent"
    elif kind == "amount":  # up to 1.5x what the cash buys: partial fills happen
        size, size_type = draw(st.floats(0.05, 1.5)) * cash / open_[0], "amount"
    else:
        size, size_type = draw(st.floats(0.05, 1.5)) * cash, "value"

    def fraction(hi):
        return st.just(0.0) | st.floats(0.0, hi)

    rules = dict(
        direction=direction, size=size, size_type=size_type,
        granularity=draw(st.sampled_from([None, 1.0, 0.001])),
        fees=draw(fraction(0.01)), slippage=draw(fraction(0.01)),
        sell_fees=draw(st.none() | fraction(0.01)),
        min_cost=draw(st.sampled_from([None, None, 0.02 * cash, 0.3 * cash])),
        min_amount=draw(st.sampled_from([None, None, 0.01 * cash / open_[0]])),
        tick=draw(st.sampled_from([None, 0.01, 0.5])),
    )
    if stops is None:
        stops = draw(st.booleans())
    if stops:
        sl = draw(st.none() | st.floats(0.005, 0.3))
        tp = draw(st.floats(0.005, 1.0) if sl is None else st.none() | st.floats(0.005, 1.0))
        rules.update(stop_loss=sl, take_profit=tp)
    note(f"rules={rules} cash={cash}")
    return open_, high, low, close, signals, cash, rules


def property_settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@property_settings(100)
@given(scenarios(directions=("long",)))
def test_long_matches_reference(case):
    open_, high, low, close, signals, cash, rules = case
    assert_matches(open_, high, low, close, signals, cash, **rules)


@property_settings(100)
@given(scenarios(directions=("short",)))
def test_short_matches_reference(case):
    open_, high, low, close, signals, cash, rules = case
    assert_matches(open_, high, low, close, signals, cash, **rules)


@property_settings(150)
@given(scenarios(directions=("both",)))
def test_both_with_reversals_matches_reference(case):
    open_, high, low, close, signals, cash, rules = case
    assert_matches(open_, high, low, close, signals, cash, **rules)


@property_settings(150)
@given(scenarios(stops=True))
def test_stops_match_reference(case):
    open_, high, low, close, signals, cash, rules = case
    assert_matches(open_, high, low, close, signals, cash, **rules)


# --------------------------------------------------------------------------------------------------
# Known answers, worked by hand
# --------------------------------------------------------------------------------------------------

OPEN5 = [100.0, 101.0, 102.0, 103.0, 104.0]
CLOSE5 = [100.5, 101.5, 102.5, 103.5, 104.5]
HIGH5 = [c + 1 for c in CLOSE5]
LOW5 = [o - 1 for o in OPEN5]


def both(open_, high, low, close, signals, cash, **rules):
    """(reference result, engine fills, engine equity) for one case."""
    pf = run_engine(open_, high, low, close, signals, cash, **rules)
    return run_reference(open_, high, low, close, signals, cash, **rules), engine_fills(pf), list(engine_equity(pf))


def assert_fills(fills, expected):
    assert len(fills) == len(expected), fills
    for f, (bar, side, size, price, fee) in zip(fills, expected, strict=True):
        assert (f.bar, f.side) == (bar, side), f
        assert f.size == pytest.approx(size, rel=1e-12)
        assert f.price == pytest.approx(price, rel=1e-12)
        assert f.fee == pytest.approx(fee, rel=1e-9, abs=1e-12)


def test_known_long_all_cash_with_fees_and_slippage():
    # Entry computed on bar 0 fills at bar 1's open, exit computed on bar 2 fills at bar 3's open.
    # fees = slippage = 0.1%, cash 10 000, size all.
    # buy:  fill 101 * 1.001 = 101.101; units = 10000 / (101.101 * 1.001) = 98.81217782227667
    #       fee = 0.001 * 98.812... * 101.101 = 9.990009990009991 (= 10000 - 10000 / 1.001); cash -> 0
    # bar 1 equity = 98.812... * 101.5 = 10029.43604896108; bar 2: * 102.5 = 10128.248226783358
    # sell: fill 103 * 0.999 = 102.897; proceeds 98.812... * 102.897 = 10167.476661378803
    #       fee = 10.167476661378803; cash = 10157.309184717424 = equity on bars 3 and 4
    signals = {"entries": [True, False, False, False, False], "exits": [False, False, True, False, False]}
    ref, fills, equity = both(OPEN5, HIGH5, LOW5, CLOSE5, signals, 10_000.0, fees=0.001, slippage=0.001)
    expected = [(1, "buy", 98.81217782227667, 101.101, 9.990009990009991),
                (3, "sell", 98.81217782227667, 102.897, 10.167476661378803)]
    expected_equity = [10_000.0, 10029.43604896108, 10128.248226783358, 10157.309184717424, 10157.309184717424]
    for got_fills, got_equity in ((ref.fills, ref.equity), (fills, equity)):
        assert_fills(got_fills, expected)
        assert got_equity == pytest.approx(expected_equity, rel=1e-12)


def test_known_short_all_cash_is_one_times_cash_and_credits_proceeds():
    # direction short with only entries/exits: the short side mirrors, so the exit on bar 0 opens a short
    # at bar 1's open and the entry on bar 2 covers it at bar 3's open. fees 0.1%, no slippage.
    # short "all" = all free cash as collateral: units = 10000 / (101 * 1.001) = 98.91099000009892,
    #   fee = 0.001 * units * 101 = 9.990009990009991; proceeds are credited:
    #   cash = 10000 + units * 101 * 0.999 = 19980.01998001998
    # bar 1 equity = cash - units * 101.5 = 9940.554495009941 (bar 2: - units * 102.5)
    # cover at 103: cost = units * 103 * 1.001 = 10198.0198019802 (fee 10.187831970010189)
    #   cash = 9782.000178039782
    signals = {"entries": [False, False, True, False, False], "exits": [True, False, False, False, False]}
    ref, fills, equity = both(OPEN5, HIGH5, LOW5, CLOSE5, signals, 10_000.0, direction="short", fees=0.001)
    u = 98.91099000009892
    expected = [(1, "sell", u, 101.0, 9.990009990009991), (3, "buy", u, 103.0, 10.187831970010189)]
    expected_equity = [10_000.0, 9940.554495009941, 19980.01998001998 - u * 102.5, 9782.000178039782,
                       9782.000178039782]
    for got_fills, got_equity in ((ref.fills, ref.equity), (fills, equity)):
        assert_fills(got_fills, expected)
        assert got_equity == pytest.approx(expected_equity, rel=1e-12)


def test_known_value_size_is_valued_at_the_open_before_slippage():
    # value 5000 at open 101 -> 5000 / 101 = 49.504950495049506 units (val_price = open, no slippage),
    # filled at 101 * 1.01 = 102.01, so the order costs 5050 plus the fee 0.001 * 5050 = 5.05.
    signals = {"entries": [True, False, False, False, False]}
    ref, fills, _ = both(OPEN5, HIGH5, LOW5, CLOSE5, signals, 10_000.0, size=5000.0, size_type="value",
                         slippage=0.01, fees=0.001)
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", 5000 / 101, 102.01, 5.05)])


def test_known_granularity_rounds_all_cash_down_to_whole_units():
    # cash 1000 at 101: 9.90099... units -> 9 whole units, 91 cash left; equity bar 4 = 91 + 9 * 104.5.
    signals = {"entries": [True, False, False, False, False]}
    ref, fills, equity = both(OPEN5, HIGH5, LOW5, CLOSE5, signals, 1000.0, granularity=1.0)
    for got_fills, got_equity in ((ref.fills, ref.equity), (fills, equity)):
        assert_fills(got_fills, [(1, "buy", 9.0, 101.0, 0.0)])
        assert got_equity[-1] == pytest.approx(91 + 9 * 104.5, rel=1e-12)


def test_known_amount_larger_than_cash_fills_partially():
    # 20 units at 101 cost 2020 but only 1000 cash: vectorbt's allow_partial (default True) buys what the
    # cash pays for, fees included: 1000 / (101 * 1.002) = 9.881422924901186 units, fee 1000 - 1000 / 1.002.
    signals = {"entries": [True, False, False, False, False]}
    ref, fills, _ = both(OPEN5, HIGH5, LOW5, CLOSE5, signals, 1000.0, size=20.0, size_type="amount", fees=0.002)
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", 1000 / (101 * 1.002), 101.0, 1000 - 1000 / 1.002)])


def test_known_fixed_short_is_not_limited_by_cash_and_a_cover_is():
    # vectorbt convention (Order.size docs: "Longs are limited by the current cash balance, while shorts
    # are only limited if Order.lock_cash"): shorting 20 units at 100 with 1000 cash is accepted
    # (cash -> 3000). When the price doubles, buying them back costs 20 * 200 = 4000 > 3000 cash: the
    # cover is a partial fill of 3000 / 200 = 15 units and a 5-unit short stays open (equity 3000 - 20 * 200
    # = -1000 before, 0 - 5 * 200 = -1000 after).
    o = [100.0, 100.0, 200.0, 200.0]
    signals = {"entries": [False, True, False, False], "exits": [True, False, False, False]}
    ref, fills, equity = both(o, o, o, o, signals, 1000.0, direction="short", size=20.0, size_type="amount")
    for got_fills, got_equity in ((ref.fills, ref.equity), (fills, equity)):
        assert_fills(got_fills, [(1, "sell", 20.0, 100.0, 0.0), (2, "buy", 15.0, 200.0, 0.0)])
        assert got_equity == pytest.approx([1000.0, 1000.0, -1000.0, -1000.0])
    assert ref.position[-1] == -5.0


def test_known_reversal_is_one_order():
    # direction both, amount 10: entry on bar 0 buys 10 at bar 1; the exit on bar 2 is a short entry,
    # which reverses at bar 3 in ONE sell of 10 (close) + 10 (new short) = 20 units.
    signals = {"entries": [True, False, False, False, False], "exits": [False, False, True, False, False]}
    ref, fills, _ = both(OPEN5, HIGH5, LOW5, CLOSE5, signals, 10_000.0, direction="both", size=10.0,
                         size_type="amount")
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", 10.0, 101.0, 0.0), (3, "sell", 20.0, 103.0, 0.0)])
    assert ref.position[-1] == -10.0


def test_known_reversal_with_all_cash_uses_the_cash_after_closing():
    # Long 1000/101 units; the reversal at 103 sells them (+1000/101 * 103 cash) and shorts all of that cash:
    # 1000 * 103 / 101 / 103 = 1000/101 more units, so the one order is 2 * 1000/101 units.
    signals = {"entries": [True, False, False, False, False], "exits": [False, False, True, False, False]}
    ref, fills, _ = both(OPEN5, HIGH5, LOW5, CLOSE5, signals, 1000.0, direction="both")
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", 1000 / 101, 101.0, 0.0), (3, "sell", 2000 / 101, 103.0, 0.0)])


def test_known_stops():
    # Long entry fills at bar 1's open 100 * 1.001 = 100.1 (slippage 0.1%): SL 5% -> level 95.095.
    # Bar 1, the entry bar itself, trades down to 90 after the open: step 3 of the order of events checks
    # the position entered at this open, so it exits in bar 1 at the level with slippage: 95.095 * 0.999.
    # (Until the one fill model, stops counted only from the bar after the entry.)
    o = [100.0, 100.0, 99.0, 99.0]
    h = [100.0, 101.0, 99.5, 99.5]
    lo = [100.0, 90.0, 95.0, 98.0]
    signals = {"entries": [True, False, False, False]}
    ref, fills, _ = both(o, h, lo, o, signals, 1000.0, stop_loss=0.05, slippage=0.001)
    units = 1000 / 100.1
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", units, 100.1, 0.0), (1, "sell", units, 95.095 * 0.999, 0.0)])

    # Gap through the stop: bar 2 opens at 90 below the level 95 -> exit at the open 90.
    o2 = [100.0, 100.0, 90.0, 91.0]
    ref, fills, _ = both(o2, [101.0, 101.0, 92.0, 92.0], [99.0, 99.0, 89.0, 90.0], o2, signals, 1000.0,
                         stop_loss=0.05)
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", 10.0, 100.0, 0.0), (2, "sell", 10.0, 90.0, 0.0)])

    # Take profit 10% on a short (direction short, mirrored: the exit opens it), slippage 0.2%, fees 0.1%:
    # entry fill 100 * 0.998 = 99.8 (fee 0.998), TP level 99.8 * 0.9 = 89.82; bar 2 opens at 95 and trades
    # down to 89 -> buy back at the level plus slippage: 89.82 * 1.002 = 89.99964, fee 0.8999964.
    signals_short = {"entries": [False] * 4, "exits": [True, False, False, False]}
    o3 = [100.0, 100.0, 95.0, 95.0]
    ref, fills, _ = both(o3, [101.0, 101.0, 96.0, 96.0], [99.0, 99.0, 89.0, 94.0], o3, signals_short, 1000.0,
                         direction="short", size=10.0, size_type="amount", take_profit=0.1, slippage=0.002,
                         fees=0.001)
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "sell", 10.0, 99.8, 0.998), (2, "buy", 10.0, 89.99964, 0.8999964)])


def test_known_open_beyond_take_profit_exits_at_the_open():
    # Entry at 100 with SL 5% (95) and TP 5% (105). Bar 2 opens at 106, above the TP, and later trades at 94.
    # Step 1: the open has crossed the TP, so the position exits at the open 106, before the low exists.
    # (vectorbt's from_signals checks the stop loss first over the whole bar and exits at 95.)
    o = [100.0, 100.0, 106.0, 100.0]
    signals = {"entries": [True, False, False, False]}
    ref, fills, _ = both(o, [100.0, 100.5, 107.0, 101.0], [100.0, 99.5, 94.0, 99.0], o, signals, 1000.0,
                         stop_loss=0.05, take_profit=0.05)
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", 10.0, 100.0, 0.0), (2, "sell", 10.0, 106.0, 0.0)])


def test_known_stop_loss_is_assumed_before_take_profit_inside_a_bar():
    # Entry at 100, SL 95, TP 105. Bar 2 opens at 100 between the levels and trades from 94 to 106: the order of
    # high and low is unknown, so the stop loss is assumed first: exit at 95.
    o = [100.0, 100.0, 100.0, 100.0]
    signals = {"entries": [True, False, False, False]}
    ref, fills, _ = both(o, [100.0, 100.5, 106.0, 101.0], [100.0, 99.5, 94.0, 99.0], o, signals, 1000.0,
                         stop_loss=0.05, take_profit=0.05)
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", 10.0, 100.0, 0.0), (2, "sell", 10.0, 95.0, 0.0)])


def test_known_stop_at_the_open_then_the_signal_acts_on_the_flat_position():
    # direction both: long from bar 1 at 100 with SL 5% (95). At bar 3's open (94) the stop has been crossed:
    # step 1 sells the 10 units at 94. The exit computed on bar 2 is, for direction both, a short entry; it is
    # decided against the now flat position, so it opens a 10-unit short at the same open (step 2). Its SL is
    # 94 * 1.05 = 98.7, never reached. The entry on bar 3 reverses at bar 4's open 96: buy 20.
    o = [100.0, 100.0, 99.0, 94.0, 96.0]
    signals = {"entries": [True, False, False, True, False], "exits": [False, False, True, False, False]}
    ref, fills, _ = both(o, [x + 1 for x in o], [x - 0.5 for x in o], o, signals, 2000.0, direction="both",
                         size=10.0, size_type="amount", stop_loss=0.05)
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", 10.0, 100.0, 0.0), (3, "sell", 10.0, 94.0, 0.0), (3, "sell", 10.0, 94.0, 0.0),
                           (4, "buy", 20.0, 96.0, 0.0)])
    assert [f.reason for f in fills] == ["open", "stop_loss", "open", "reverse"]


def test_known_a_position_closed_at_the_open_is_not_stopped_later_in_that_bar():
    # Long at bar 1's open 100, SL 5% (95). The exit computed on bar 2 closes it at bar 3's open 99; bar 3 then
    # trades down to 90, through the old stop level: nothing more happens (vectorbt's from_signals would
    # replace the close at 99 with a stop exit at 95).
    o = [100.0, 100.0, 99.0, 99.0, 98.0]
    signals = {"entries": [True, False, False, False, False], "exits": [False, False, True, False, False]}
    ref, fills, _ = both(o, [x + 1 for x in o], [99.5, 99.5, 98.5, 90.0, 97.0], o, signals, 1000.0, stop_loss=0.05)
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", 10.0, 100.0, 0.0), (3, "sell", 10.0, 99.0, 0.0)])


def test_known_minimum_cost_skips_an_entry_and_is_reported():
    # cash 1000, lot 1, min cost 1500 at open 101: 9 units worth 909 < 1500: not placed, reported as min_cost.
    signals = {"entries": [True, False, False, False, False]}
    pf = run_engine(OPEN5, HIGH5, LOW5, CLOSE5, signals, 1000.0, granularity=1.0, min_cost=1500.0)
    ref = run_reference(OPEN5, HIGH5, LOW5, CLOSE5, signals, 1000.0, granularity=1.0, min_cost=1500.0)
    assert engine_fills(pf) == [] and ref.fills == []
    assert engine_skips(pf) == [(1, "min_cost")] == [(k.bar, k.reason) for k in ref.skipped]


def test_known_sell_fees_differ_from_buy_fees():
    # fees 0.1% on the buy, 0.3% on the sell (a sell tax). Cash 1010 at 101: units = 1010 / (101 * 1.001),
    # buy fee = 1010 - 1010 / 1.001; sold at 103: fee = 0.003 * units * 103.
    signals = {"entries": [True, False, False, False, False], "exits": [False, False, True, False, False]}
    ref, fills, _ = both(OPEN5, HIGH5, LOW5, CLOSE5, signals, 1010.0, fees=0.001, sell_fees=0.003)
    units = 1010 / (101 * 1.001)
    for got in (ref.fills, fills):
        assert_fills(got, [(1, "buy", units, 101.0, 1010 - 1010 / 1.001),
                           (3, "sell", units, 103.0, 0.003 * units * 103)])


def test_known_conflicts_cancel():
    # Bar 0: entry + exit (long) cancel. Bar 1: entry + short entry cancel (direction both, explicit shorts).
    # Bar 2: a lone entry buys at bar 3. The open position is not closed at the end.
    signals = {"entries": [True, True, True, False, False], "exits": [True, False, False, False, False],
               "short_entries": [False, True, False, False, False], "short_exits": None}
    ref, fills, _ = both(OPEN5, HIGH5, LOW5, CLOSE5, signals, 1030.0, direction="both")
    for got in (ref.fills, fills):
        assert_fills(got, [(3, "buy", 10.0, 103.0, 0.0)])


# --------------------------------------------------------------------------------------------------
# Granularity: vectorbt floors every order, closes included; the engine trades whole lots so these hold
# --------------------------------------------------------------------------------------------------

FLAT8 = [100.0] * 8
TWO_TRADES = {"entries": [True, False, False, False, True, False, False, False],
              "exits": [False, False, True, False, False, False, True, False]}
EXPECTED_TWO_TRADES = [(1, "buy", 2.001, 100.0, 0.0), (3, "sell", 2.001, 100.0, 0.0),
                       (5, "buy", 2.001, 100.0, 0.0), (7, "sell", 2.001, 100.0, 0.0)]


def test_reference_close_sells_whole_position_at_granularity():
    # amount 2.0015 at granularity 0.001 -> 2.001 units; each exit sells all of them; two round trips.
    ref = run_reference(FLAT8, FLAT8, FLAT8, FLAT8, TWO_TRADES, 1000.0, size=2.0015, size_type="amount",
                        granularity=0.001)
    assert_fills(ref.fills, EXPECTED_TWO_TRADES)
    assert ref.position[-1] == 0.0


def test_engine_close_sells_whole_position_at_granularity():
    pf = run_engine(FLAT8, FLAT8, FLAT8, FLAT8, TWO_TRADES, 1000.0, size=2.0015, size_type="amount",
                    granularity=0.001)
    assert_fills(engine_fills(pf), EXPECTED_TWO_TRADES)


def test_reference_amount_that_is_a_multiple_is_not_rounded_down():
    ref = run_reference(OPEN5, HIGH5, LOW5, CLOSE5, {"entries": [True, False, False, False, False]}, 1000.0,
                        size=0.043, size_type="amount", granularity=0.001)
    assert_fills(ref.fills, [(1, "buy", 0.043, 101.0, 0.0)])


def test_engine_amount_that_is_a_multiple_is_not_rounded_down():
    pf = run_engine(OPEN5, HIGH5, LOW5, CLOSE5, {"entries": [True, False, False, False, False]}, 1000.0,
                    size=0.043, size_type="amount", granularity=0.001)
    assert_fills(engine_fills(pf), [(1, "buy", 0.043, 101.0, 0.0)])


# --------------------------------------------------------------------------------------------------
# vectorbt's from_signals: an independent implementation where its rules and ours coincide
# --------------------------------------------------------------------------------------------------

def from_signals_fills(open_, high, low, close, signals: dict, cash: float, rules: PositionRules) -> list[Fill]:
    """The same case through ``vectorbt.Portfolio.from_signals`` (signals moved to their fill bar, at the open)."""
    import vectorbt as vbt

    from systrade.sim.rules import resolve_signals

    n = len(close)
    index = pd.date_range("2024-01-01", periods=n, freq="1h")
    arrays = {name: None if signals.get(name) is None else np.asarray(signals[name], dtype=bool)
              for name in ("entries", "exits", "short_entries", "short_exits")}
    fill_bars = {name: np.r_[False, values[:-1]]  # a signal on bar t fills at bar t+1's open
                 for name, values in resolve_signals(arrays, rules.direction).items()}
    if rules.size == "all":
        size, size_type = np.inf, "amount"
    elif rules.size_type == "percent":
        size, size_type = float(rules.size) / 100.0, "percent"
    else:
        size, size_type = float(rules.size), rules.size_type
    opens = pd.Series(open_, index=index)
    pf = vbt.Portfolio.from_signals(
        close=pd.Series(close, index=index), entries=fill_bars["entries"], exits=fill_bars["exits"],
        short_entries=fill_bars["short_entries"], short_exits=fill_bars["short_exits"], price=opens,
        val_price=opens, open=opens, high=pd.Series(high, index=index), low=pd.Series(low, index=index),
        init_cash=cash, size=size, size_type=size_type, fees=rules.fees, slippage=rules.slippage,
        upon_long_conflict="ignore", upon_short_conflict="ignore", upon_dir_conflict="ignore",
        upon_opposite_entry="reverse", accumulate=False, freq="1h")
    records = pf.orders.values
    return [Fill(int(r["idx"]), "buy" if r["side"] == 0 else "sell", float(r["size"]), float(r["price"]),
                 float(r["fees"])) for r in records]


@property_settings(100)
@given(scenarios(stops=False))
def test_fills_equal_vectorbt_from_signals_where_the_rules_coincide(case):
    open_, high, low, close, signals, cash, rules = case
    rules.update(granularity=None, sell_fees=None, min_cost=None, min_amount=None, tick=None)
    pf = run_engine(open_, high, low, close, signals, cash, **rules)
    ours = engine_fills(pf)
    theirs = from_signals_fills(open_, high, low, close, signals, cash, PositionRules(**rules))
    assert len(ours) == len(theirs), f"fill model {ours}\nvectorbt {theirs}"
    for k, (e, v) in enumerate(zip(ours, theirs, strict=True)):
        assert same_fill(e, v), f"fill #{k} differs:\n  fill model {e}\n  vectorbt   {v}"
    expected_value = vectorbt_books.value(vectorbt_books.portfolio(pf)).to_numpy()[:, 0]  # vectorbt's books
    assert np.allclose(engine_equity(pf), expected_value, rtol=1e-9)
