"""Known answers for the reference simulator alone (``reference_sim.py``), worked out by hand from docs/semantics.md.

Every expected number below is computed in the comments, not by the code under test. Bars are written as
(open, high, low, close); a signal on bar t acts at bar t+1's open.
"""

from __future__ import annotations

import pytest
from reference_sim import Fill, Skip, simulate_reference

REL = 1e-12


def run(bars, entries=None, exits=None, short_entries=None, short_exits=None, **kwargs):
    open_, high, low, close = (list(col) for col in zip(*bars, strict=True))
    n = len(bars)

    def flags(marks):
        return None if marks is None else [i in marks for i in range(n)]

    return simulate_reference(open_, high, low, close, flags(entries or set()), flags(exits),
                              flags(short_entries), flags(short_exits), **kwargs)


def approx(x):
    return pytest.approx(x, rel=REL, abs=1e-12)


def check_fills(actual, expected):
    """Fills compared field by field (sizes/prices/fees to float noise) and by the first word of the reason."""
    assert len(actual) == len(expected), actual
    for a, (bar, side, size, price, fee, reason) in zip(actual, expected, strict=True):
        assert (a.bar, a.side) == (bar, side), a
        assert a.size == approx(size), a
        assert a.price == approx(price), a
        assert a.fee == approx(fee), a
        assert a.reason.split()[0] == reason, a


# -- (a) a gap through the stop: exit at the open ---------------------------------------------------------

def test_long_stopped_at_the_open_by_a_gap():
    # bar 1: buy 10 at 100 * 1.01 = 101, fee 0.001 * 10 * 101 = 1.01, cash 10000 - 1010 - 1.01 = 8988.99.
    #        SL level = 101 * 0.9 = 90.9; low 95 does not reach it.
    # bar 2: opens at 80 <= 90.9: step 1 sells 10 at 80 * 0.99 = 79.2, fee 0.001 * 10 * 79.2 = 0.792,
    #        cash 8988.99 + 792 - 0.792 = 9780.198. The low of 70 changes nothing: the position is gone.
    bars = [(100, 100, 100, 100), (100, 102, 95, 100), (80, 85, 70, 82), (82, 83, 81, 82)]
    res = run(bars, entries={0}, size=10, size_type="amount", fees=0.001, slippage=0.01, stop_loss=0.1)
    check_fills(res.fills, [
        (1, "buy", 10, 101.0, 1.01, "open"),
        (2, "sell", 10, 79.2, 0.792, "stop_loss"),
    ])
    assert res.position == [0, 10, 0, 0]
    assert res.cash[1] == approx(8988.99)
    assert res.equity[1] == approx(8988.99 + 10 * 100)  # 9988.99
    assert res.cash[2] == approx(9780.198)
    assert res.equity[3] == approx(9780.198)
    assert res.skipped == []


def test_short_stopped_at_the_open_by_a_gap_take_profit():
    # Short 10 at 100 (no costs): cash 10000 + 1000 = 11000; TP level = 100 * (1 - 0.1) = 90.
    # bar 2 opens at 85 <= 90: step 1 buys back 10 at 85 (take profit), cash 11000 - 850 = 10150.
    bars = [(100, 100, 100, 100), (100, 101, 95, 98), (85, 88, 84, 86)]
    res = run(bars, exits={0}, direction="short", size=10, size_type="amount", take_profit=0.1)
    check_fills(res.fills, [
        (1, "sell", 10, 100, 0, "open"),
        (2, "buy", 10, 85, 0, "take_profit"),
    ])
    assert res.cash[-1] == approx(10150)


# -- (b) entered at an open and stopped in the same bar ----------------------------------------------------

def test_entry_stopped_in_its_own_bar():
    # bar 1: buy 10 at 100; SL level = 100 * 0.95 = 95; the low of 94 reaches it: sell 10 at min(95, 100) = 95.
    # cash 10000 - 1000 + 950 = 9950.
    bars = [(100, 100, 100, 100), (100, 101, 94, 99), (99, 100, 90, 95)]
    res = run(bars, entries={0}, size=10, size_type="amount", stop_loss=0.05)
    check_fills(res.fills, [
        (1, "buy", 10, 100, 0, "open"),
        (1, "sell", 10, 95, 0, "stop_loss"),
    ])
    assert res.position == [0, 0, 0]
    assert res.cash[1] == approx(9950)


def test_entry_with_large_slippage_stopped_at_the_open_of_its_own_bar():
    # bar 1: buy 10 at 100 * 1.1 = 110; SL level = 110 * 0.95 = 104.5, above the open of 100.
    # The low 99 <= 104.5: exit at min(104.5, 100) = 100, sold at 100 * 0.9 = 90.
    # cash 10000 - 1100 + 900 = 9800.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100)]
    res = run(bars, entries={0}, size=10, size_type="amount", slippage=0.1, stop_loss=0.05)
    check_fills(res.fills, [
        (1, "buy", 10, 110, 0, "open"),
        (1, "sell", 10, 90, 0, "stop_loss"),
    ])
    assert res.cash[1] == approx(9800)


def test_short_take_profit_in_its_own_bar():
    # bar 1: sell short 10 at 100, TP level = 100 * 0.9 = 90, SL level = 100 * 1.2 = 120.
    # high 105 < 120, low 89 <= 90: buy back 10 at 90. cash 10000 + 1000 - 900 = 10100.
    bars = [(100, 100, 100, 100), (100, 105, 89, 95)]
    res = run(bars, exits={0}, direction="short", size=10, size_type="amount", stop_loss=0.2, take_profit=0.1)
    check_fills(res.fills, [
        (1, "sell", 10, 100, 0, "open"),
        (1, "buy", 10, 90, 0, "take_profit"),
    ])
    assert res.cash[1] == approx(10100)


# -- (c) a close at the open, then the low crosses the old stop level: no stop --------------------------------

def test_close_at_the_open_is_not_stopped_later_in_the_bar():
    # bar 1: buy 10 at 100, SL level 95, low 97: held. Exit signal on bar 1.
    # bar 2: open 98 > 95, so no stop at the open; the signal closes at 98. The low of 90 crosses the old
    #        level 95 but the position is gone: one fill on bar 2. cash 10000 - 1000 + 980 = 9980.
    bars = [(100, 100, 100, 100), (100, 101, 97, 99), (98, 99, 90, 92)]
    res = run(bars, entries={0}, exits={1}, size=10, size_type="amount", stop_loss=0.05)
    check_fills(res.fills, [
        (1, "buy", 10, 100, 0, "open"),
        (2, "sell", 10, 98, 0, "close"),
    ])
    assert res.cash[-1] == approx(9980)
    assert res.position[-1] == 0


# -- (d) stop loss and take profit inside one bar: the stop loss ---------------------------------------------

def test_stop_loss_and_take_profit_in_one_bar_exits_at_the_stop_loss():
    # bar 1: buy 10 at 100; SL 95, TP 105; bar 1 stays inside (101 / 99).
    # bar 2: opens at 100 (neither), high 106 >= 105 and low 94 <= 95: stop loss first, sell 10 at 95.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 106, 94, 100)]
    res = run(bars, entries={0}, size=10, size_type="amount", stop_loss=0.05, take_profit=0.05)
    check_fills(res.fills, [
        (1, "buy", 10, 100, 0, "open"),
        (2, "sell", 10, 95, 0, "stop_loss"),
    ])
    assert res.cash[-1] == approx(9950)


def test_short_stop_loss_and_take_profit_in_one_bar_exits_at_the_stop_loss():
    # Short 10 at 100 (fees 0.01 on both sides); SL 105, TP 95. bar 2: high 106, low 94: stop loss at 105.
    # cash: 10000 + 1000 - 0.01 * 1000 = 10990; cover 10 * 105 = 1050, fee 10.5: 10990 - 1060.5 = 9929.5.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 106, 94, 100)]
    res = run(bars, exits={0}, direction="short", size=10, size_type="amount", fees=0.01,
              stop_loss=0.05, take_profit=0.05)
    check_fills(res.fills, [
        (1, "sell", 10, 100, 10, "open"),
        (2, "buy", 10, 105, 10.5, "stop_loss"),
    ])
    assert res.cash[-1] == approx(9929.5)


# -- (e) stopped at the open, then an opposite entry opens the new side at the same open -------------------------

def test_stop_at_open_then_opposite_entry_opens_a_short():
    # direction both, mirrored: the exit on bar 1 is also a short entry.
    # bar 1: buy 10 at 100, SL level 90.
    # bar 2: opens at 85 <= 90: step 1 sells 10 at 85 (stop_loss); step 2 sees a flat account and a short
    #        entry: sells short 10 at 85 (not one reversing order of 20). Short SL = 85 * 1.1 = 93.5 > high 90.
    # cash 10000 - 1000 + 850 + 850 = 10700, position -10, equity 10700 - 10 * 82 = 9880.
    bars = [(100, 100, 100, 100), (100, 101, 95, 99), (85, 90, 80, 82)]
    res = run(bars, entries={0}, exits={1}, direction="both", size=10, size_type="amount", stop_loss=0.1)
    check_fills(res.fills, [
        (1, "buy", 10, 100, 0, "open"),
        (2, "sell", 10, 85, 0, "stop_loss"),
        (2, "sell", 10, 85, 0, "open"),
    ])
    assert res.position == [0, 10, -10]
    assert res.cash[-1] == approx(10700)
    assert res.equity[-1] == approx(9880)


def test_stop_at_open_then_exit_signal_does_nothing():
    # Same as above, direction long: the exit finds the account flat after the stop, nothing else happens.
    bars = [(100, 100, 100, 100), (100, 101, 95, 99), (85, 90, 80, 82)]
    res = run(bars, entries={0}, exits={1}, size=10, size_type="amount", stop_loss=0.1)
    check_fills(res.fills, [
        (1, "buy", 10, 100, 0, "open"),
        (2, "sell", 10, 85, 0, "stop_loss"),
    ])
    assert res.skipped == []


def test_stopped_at_open_reentered_and_stopped_again_in_the_bar():
    # bar 1: buy 10 at 100, SL 90. Entry signal again on bar 1 (ignored while long, used once flat).
    # bar 2: open 88 <= 90: sell 10 at 88. Flat: the entry buys 10 at 88, new SL = 88 * 0.9 = 79.2.
    #        low 79 <= 79.2: sell 10 at 79.2. cash 10000 - 1000 + 880 - 880 + 792 = 9792.
    bars = [(100, 100, 100, 100), (100, 101, 95, 99), (88, 89, 79, 80)]
    res = run(bars, entries={0, 1}, size=10, size_type="amount", stop_loss=0.1)
    check_fills(res.fills, [
        (1, "buy", 10, 100, 0, "open"),
        (2, "sell", 10, 88, 0, "stop_loss"),
        (2, "buy", 10, 88, 0, "open"),
        (2, "sell", 10, 79.2, 0, "stop_loss"),
    ])
    assert res.cash[-1] == approx(9792)


# -- (f) sell fees differing from buy fees ----------------------------------------------------------------

def test_sell_fees_apply_to_sells_and_fees_to_buys():
    # bar 1: buy 10 at 100, fee 0.001 * 1000 = 1.0, cash 10000 - 1001 = 8999.
    # bar 2: sell 10 at 110, fee 0.003 * 1100 = 3.3, cash 8999 + 1100 - 3.3 = 10095.7.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (110, 111, 109, 110)]
    res = run(bars, entries={0}, exits={1}, size=10, size_type="amount", fees=0.001, sell_fees=0.003)
    check_fills(res.fills, [
        (1, "buy", 10, 100, 1.0, "open"),
        (2, "sell", 10, 110, 3.3, "close"),
    ])
    assert res.cash[-1] == approx(10095.7)


def test_short_all_is_sized_with_the_sell_fee():
    # direction short, size all, cash 1000, fees (buys) 0.1, sell_fees 0.25.
    # bar 1: units = 1000 / (100 * 1.25) = 8; sell 8 at 100, fee 0.25 * 800 = 200, cash 1000 + 800 - 200 = 1600.
    # bar 2: cover 8 at 50: 400, fee 0.1 * 400 = 40, cash 1600 - 440 = 1160.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (50, 51, 49, 50)]
    res = run(bars, entries={1}, exits={0}, direction="short", cash=1000, fees=0.1, sell_fees=0.25)
    check_fills(res.fills, [
        (1, "sell", 8, 100, 200, "open"),
        (2, "buy", 8, 50, 40, "close"),
    ])
    assert res.cash == [approx(1000), approx(1600), approx(1160)]


def test_sell_fees_default_to_fees():
    # Same as test_sell_fees_apply_..., sell_fees unset: sell fee 0.001 * 1100 = 1.1, cash 8999 + 1098.9 = 10097.9.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (110, 111, 109, 110)]
    res = run(bars, entries={0}, exits={1}, size=10, size_type="amount", fees=0.001)
    assert res.fills[1].fee == approx(1.1)
    assert res.cash[-1] == approx(10097.9)


def test_reversal_long_to_short_sized_with_sell_fees():
    # direction both, size all, cash 1000, fees 0, sell_fees 0.25.
    # bar 1: buy 1000 / 100 = 10 units at 100, cash 0.
    # bar 2 (short entry = the mirrored exit on bar 1): the close leaves 0 + 10 * 100 * 0.75 = 750;
    #        new short 750 / (100 * 1.25) = 6 units; one sell of 16 at 100, fee 0.25 * 1600 = 400,
    #        cash 0 + 1600 - 400 = 1200, position -6.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 101, 99, 100)]
    res = run(bars, entries={0}, exits={1}, direction="both", cash=1000, sell_fees=0.25)
    check_fills(res.fills, [
        (1, "buy", 10, 100, 0, "open"),
        (2, "sell", 16, 100, 400, "reverse"),
    ])
    assert res.position == [0, approx(10), approx(-6)]
    assert res.cash[-1] == approx(1200)


# -- (g) lots and the minimum cost -------------------------------------------------------------------------

def test_lot_rounding_then_min_cost_skip():
    # cash 50, size all, lot 1, open 30: 50 / 30 = 1.67 -> 1 unit, worth 30 < min_cost 40: not placed.
    bars = [(30, 30, 30, 30), (30, 31, 29, 30), (30, 31, 29, 30)]
    res = run(bars, entries={0}, cash=50, granularity=1, min_cost=40)
    assert res.fills == []
    assert res.skipped == [Skip(1, "min_cost", 1.0)]
    assert res.position == [0, 0, 0]
    assert res.cash == [50, 50, 50]


def test_lot_rounding_buys_whole_lots():
    # cash 1000, size all, lot 1, open 30: 1000 / 30 = 33.3 -> 33 units for 990, cash 10; min_cost 40 passes.
    bars = [(30, 30, 30, 30), (30, 31, 29, 30)]
    res = run(bars, entries={0}, cash=1000, granularity=1, min_cost=40)
    check_fills(res.fills, [(1, "buy", 33, 30, 0, "open")])
    assert res.cash[-1] == approx(10)


def test_decimal_lot_keeps_a_multiple():
    # amount 2.001 with lot 0.001: 2.001 / 0.001 is 2000.9999999999998 in floats but 2.001 is a multiple.
    bars = [(10, 10, 10, 10), (10, 10, 10, 10)]
    res = run(bars, entries={0}, size=2.001, size_type="amount", granularity=0.001)
    assert res.fills[0].size == approx(2.001)


def test_cash_below_one_lot_is_a_no_cash_skip():
    # cash 20, size all, lot 1, open 30: 0.67 -> 0 units: not placed for lack of cash.
    bars = [(30, 30, 30, 30), (30, 31, 29, 30)]
    res = run(bars, entries={0}, cash=20, granularity=1)
    assert res.fills == []
    assert res.skipped == [Skip(1, "no_cash", 0.0)]


def test_fixed_amount_below_one_lot_is_a_min_amount_skip():
    # amount 0.5 with lot 1 rounds to 0 units: not a cash problem (cash 10000).
    bars = [(30, 30, 30, 30), (30, 31, 29, 30)]
    res = run(bars, entries={0}, size=0.5, size_type="amount", granularity=1)
    assert res.fills == []
    assert res.skipped == [Skip(1, "min_amount", 0.0)]


def test_no_skip_for_bars_without_an_order():
    # A long entry while long is ignored, not skipped; a bar with no signal is not a skip.
    bars = [(30, 30, 30, 30)] * 4
    res = run(bars, entries={0, 1, 2}, size=1, size_type="amount", min_cost=40)
    assert res.fills == []
    assert res.skipped == [Skip(1, "min_cost", 1.0), Skip(2, "min_cost", 1.0), Skip(3, "min_cost", 1.0)]
    res = run(bars, entries={0, 1, 2}, size=2, size_type="amount", min_cost=40)
    assert len(res.fills) == 1 and res.skipped == []


# -- (h) a close below the minimum amount leaves the position open ------------------------------------------

def test_min_amount_skip_on_a_close_leaves_the_position_open():
    # direction short (mirrored: exits open shorts, entries close them), amount 10, lot 1, min_amount 3, cash 150.
    # bar 1: sell short 10 at 100, cash 150 + 1000 = 1150.
    # bar 2: cover at 140: 10 * 140 = 1400 > 1150, so partly: 1150 / 140 = 8.2 -> 8 units for 1120, cash 30,
    #        position -2.
    # bar 3: cover 2 at 10 = 20 <= 30, but 2 < min_amount 3: not placed, the short of 2 stays open.
    #        equity = 30 - 2 * 10 = 10.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (140, 141, 139, 140), (10, 11, 9, 10)]
    res = run(bars, entries={1, 2}, exits={0}, direction="short", size=10, size_type="amount",
              granularity=1, min_amount=3, cash=150)
    check_fills(res.fills, [
        (1, "sell", 10, 100, 0, "open"),
        (2, "buy", 8, 140, 0, "close"),
    ])
    assert "partial" in res.fills[1].reason
    assert res.skipped == [Skip(3, "min_amount", 2.0)]
    assert res.position == [0, approx(-10), approx(-2), approx(-2)]
    assert res.cash[-1] == approx(30)
    assert res.equity[-1] == approx(10)


def test_cover_without_cash_is_a_no_cash_skip():
    # Short 10 at 100 with cash 0: cash 1000. The price goes to 2000: one lot costs 2000 > 1000.
    # The cover is a buy limited by the cash: skipped "no_cash" with size 0; the short stays.
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (2000, 2000, 2000, 2000)]
    res = run(bars, entries={1}, exits={0}, direction="short", size=10, size_type="amount",
              granularity=1, cash=0)
    check_fills(res.fills, [(1, "sell", 10, 100, 0, "open")])
    assert res.skipped == [Skip(2, "no_cash", 0.0)]
    assert res.position[-1] == approx(-10)


# -- (i) stop levels rounded to the tick, away from the entry -------------------------------------------------

def test_tick_rounds_long_levels_away_from_the_entry():
    # bar 1: buy 10 at 100 * 1.003 = 100.3. Raw SL 100.3 * 0.95 = 95.285 -> down to the tick 0.5: 95.0.
    #        Raw TP 100.3 * 1.05 = 105.315 -> up: 105.5.
    # bar 2: high 105.4 < 105.5, low 95.2 > 95.0: no exit (both raw levels were crossed).
    # bar 3: low 94 <= 95.0: sell 10 at 95.0 * 0.997 = 94.715.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 105.4, 95.2, 100), (100, 101, 94, 96)]
    res = run(bars, entries={0}, size=10, size_type="amount", slippage=0.003, stop_loss=0.05,
              take_profit=0.05, tick=0.5)
    check_fills(res.fills, [
        (1, "buy", 10, 100.3, 0, "open"),
        (3, "sell", 10, 94.715, 0, "stop_loss"),
    ])


def test_tick_rounds_short_levels_away_from_the_entry():
    # bar 1: sell short 10 at 100 * 0.997 = 99.7. Raw SL 99.7 * 1.05 = 104.685 -> up to 105.0.
    #        Raw TP 99.7 * 0.95 = 94.715 -> down to 94.5.
    # bar 2: high 104.9 < 105, low 94.6 > 94.5: held.
    # bar 3: high 105.2 >= 105: buy back 10 at 105 * 1.003 = 105.315.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 104.9, 94.6, 100), (100, 105.2, 99, 100)]
    res = run(bars, exits={0}, direction="short", size=10, size_type="amount", slippage=0.003,
              stop_loss=0.05, take_profit=0.05, tick=0.5)
    check_fills(res.fills, [
        (1, "sell", 10, 99.7, 0, "open"),
        (3, "buy", 10, 105.315, 0, "stop_loss"),
    ])


def test_tick_level_on_a_decimal_multiple_stays():
    # Entry 100, stop_loss 0.047: level 95.3, and 95.3 / 0.1 is 952.9999999999999 in floats; 95.3 is a
    # multiple of the tick 0.1 and stays 95.3 (not 95.2). A low of 95.25 reaches it: sell at 95.3.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 101, 95.25, 100)]
    res = run(bars, entries={0}, size=10, size_type="amount", stop_loss=0.047, tick=0.1)
    check_fills(res.fills, [
        (1, "buy", 10, 100, 0, "open"),
        (2, "sell", 10, 95.3, 0, "stop_loss"),
    ])


# -- (j) a reversal whose new side is below the minimum cost only closes -------------------------------------

def test_reversal_below_min_cost_becomes_a_close_and_a_skip():
    # direction both (mirrored), size value 60, lot 1, min_cost 50, cash 1000.
    # bar 1: 60 / 30 = 2 units, worth 60 >= 50: buy 2 at 30, cash 940.
    # bar 3 (short entry on bar 2): the new short would be 60 / 40 = 1.5 -> 1 unit, worth 40 < 50: skipped
    #        (min_cost, size 1); the order becomes a plain close: sell 2 at 40 (worth 80 >= 50), cash 1020.
    bars = [(30, 30, 30, 30), (30, 31, 29, 30), (35, 36, 34, 35), (40, 41, 39, 40)]
    res = run(bars, entries={0}, exits={2}, direction="both", size=60, size_type="value",
              granularity=1, min_cost=50, cash=1000)
    check_fills(res.fills, [
        (1, "buy", 2, 30, 0, "open"),
        (3, "sell", 2, 40, 0, "close"),
    ])
    assert res.skipped == [Skip(3, "min_cost", 1.0)]
    assert res.position == [0, approx(2), approx(2), 0]
    assert res.cash[-1] == approx(1020)


def test_reversal_short_to_long_without_cash_for_the_new_side():
    # direction both, size all, cash 1000, lot 1.
    # bar 1: sell short 1000 / 100 = 10 at 100, cash 2000.
    # bar 2 opens at 200: the cover costs 10 * 200 = 2000, leaving 0 for the new long: the opening part is
    #        0 units, a buy sized from the cash: skipped "no_cash" with size 0; the order becomes a close:
    #        buy 10 at 200, cash 0.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (200, 201, 199, 200)]
    res = run(bars, entries={1}, exits={0}, direction="both", cash=1000, granularity=1)
    check_fills(res.fills, [
        (1, "sell", 10, 100, 0, "open"),
        (2, "buy", 10, 200, 0, "close"),
    ])
    assert res.skipped == [Skip(2, "no_cash", 0.0)]
    assert res.position[-1] == 0
    assert res.cash[-1] == approx(0)


def test_reversal_in_one_order():
    # direction both, amount 3: long 3 at 100 (cash 9700), then a short entry: one sell of 3 + 3 = 6 at 110,
    # cash 9700 + 660 = 10360, position -3. A new short's levels: SL 110 * 1.1 = 121 > high 112: held.
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (110, 112, 108, 110)]
    res = run(bars, entries={0}, exits={1}, direction="both", size=3, size_type="amount", stop_loss=0.1)
    check_fills(res.fills, [
        (1, "buy", 3, 100, 0, "open"),
        (2, "sell", 6, 110, 0, "reverse"),
    ])
    assert res.position[-1] == approx(-3)
    assert res.cash[-1] == approx(10360)


def test_fill_reason_is_not_compared():
    assert Fill(1, "buy", 1.0, 2.0, 0.0, "open") == Fill(1, "buy", 1.0, 2.0, 0.0, "open tie")
