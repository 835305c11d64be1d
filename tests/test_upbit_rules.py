"""Upbit's published rules that ccxt does not carry: KRW price ticks by level, minimum order values, fees, and
market buys placed by their KRW value in whole won (the fill model rounds the value, not the coin amount)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from systrade.sim import kernel
from systrade.sim.rules import PositionRules, params_vector
from systrade.venues.korea import public_rules, upbit_tick

# (price, tick) at the edges of Upbit's KRW table (docs.upbit.com, KRW market page, from 31 July 2025)
KRW_EDGES = [(2_500_000, 1_000), (1_000_000, 1_000), (999_999, 500), (500_000, 500), (499_999, 100),
             (100_000, 100), (99_999, 50), (50_000, 50), (49_999, 10), (10_000, 10), (9_999, 5), (5_000, 5),
             (4_999, 1), (1_000, 1), (100, 1)]


@pytest.mark.parametrize(("price", "tick"), KRW_EDGES)
def test_krw_ticks_follow_the_published_table(price: float, tick: float) -> None:
    assert upbit_tick("KRW", price) == tick


def test_usdt_and_btc_markets() -> None:
    assert upbit_tick("USDT", 64_000.0) == 0.01 and upbit_tick("USDT", 5.0) == 0.001
    assert upbit_tick("BTC", 0.05) == 0.00000001


def test_public_rules_and_overrides() -> None:
    krw = public_rules("upbit", "KRW", 95_000_000.0)
    assert krw == {"min_cost": 5_000.0, "taker_fee": 0.0005, "maker_fee": 0.0005, "cost_step": 1.0,
                   "tick": 1_000.0}
    assert public_rules("upbit", "BTC", 0.05)["min_cost"] == 0.00005
    assert public_rules("binance", "USDT", 60_000.0) == {}  # ccxt's own rules stand elsewhere
    assert public_rules("upbit", "KRW", None, {"min_cost": 10_000})["min_cost"] == 10_000.0


def buy(cash: float, price: float, rules: PositionRules) -> np.ndarray:
    """One opening buy through the fill model; its fill row."""
    money = np.array([cash])
    state = np.full((1, kernel.N_STATE), np.nan)
    state[0, kernel.X_POSITION] = 0.0
    fills, skips = np.zeros((2, kernel.N_FILL)), np.zeros((2, kernel.N_SKIP))
    counts = np.zeros(3, dtype=np.int64)
    kernel.signal_order(money, 0, state, 0, 0, price, kernel.BUY, params_vector(rules), fills, skips, counts)
    assert counts[kernel.C_FILLS] == 1, skips
    return fills[0]


def test_a_market_buy_by_cost_spends_whole_won() -> None:
    rules = PositionRules(fees=0.0005, granularity=1e-8, cost_step=1.0, min_cost=5_000.0)
    fill = buy(1_000_000.0, 95_123_457.0, rules)
    most = 1_000_000.0 / 1.0005  # what the cash pays for, fee included
    cost = math.floor(math.floor(most / 95_123_457.0 / 1e-8) * 1e-8 * 95_123_457.0)  # by hand: whole won
    # the amount of that cost, truncated to the market's precision as the exchange (and ccxt) does
    assert fill[kernel.F_SIZE] == pytest.approx(math.floor(cost / 95_123_457.0 / 1e-8 + 1e-9) * 1e-8, abs=1e-12)
    coins = buy(1_000_000.0, 95_123_457.0, PositionRules(fees=0.0005, granularity=1e-8, min_cost=5_000.0))
    assert coins[kernel.F_SIZE] >= fill[kernel.F_SIZE]  # without the cost step the amount is rounded instead
    value_rules = PositionRules(size=20_000.0, size_type="value", fees=0.0005, granularity=1e-8, cost_step=1.0)
    coins_for_value = math.floor(20_000.0 / 95_123_457.0 / 1e-8) * 1e-8  # by hand: the lot first
    expected = math.floor(coins_for_value * 95_123_457.0)  # then the value in whole won
    got = buy(1_000_000.0, 95_123_457.0, value_rules)
    assert got[kernel.F_SIZE] == pytest.approx(math.floor(expected / 95_123_457.0 / 1e-8 + 1e-9) * 1e-8, abs=1e-12)
    # 20,000 KRW at 60,001,000: 19,999 whole won buy 0.00033331 BTC (the amount 20,000 would give is 0.00033332)
    assert buy(1_000_000.0, 60_001_000.0, value_rules)[kernel.F_SIZE] == pytest.approx(0.00033331, abs=1e-12)
