"""Several symbols sharing one cash balance: the documented order inside a bar (sells before buys, then the
symbols in the order given), and results that do not depend on that order when the symbols do not compete."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systrade.sim.rules import PositionRules
from systrade.sim.run import run_fill_model

INDEX = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")


def flat(price: float) -> pd.DataFrame:
    return pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 1.0}, index=INDEX)


def flags(*bars: int) -> np.ndarray:
    out = np.zeros(len(INDEX), dtype=bool)
    out[list(bars)] = True
    return out


def fills_by_symbol(run) -> dict[str, list[tuple]]:
    return {s: [(int(r.bar), r.side, round(float(r.size), 9)) for r in run.fills[run.fills["column"] == s].itertuples()]
            for s in run.columns}


@pytest.mark.parametrize("order", [("A", "B"), ("B", "A")])
def test_a_buy_uses_what_a_sell_at_the_same_open_freed(order: tuple[str, str]) -> None:
    # A (at 100) buys with all 1000 of cash at bar 1; at bar 2 A sells its 10 units and B (at 50) buys: whatever
    # order the symbols are given in, the sale comes first, so B buys 1000 / 50 = 20 units.
    datas = {"A": flat(100.0), "B": flat(50.0)}
    signals = {"A": {"entries": flags(0), "exits": flags(1)}, "B": {"entries": flags(1), "exits": None}}
    run = run_fill_model({s: datas[s] for s in order}, {s: signals[s] for s in order}, PositionRules(), 1000.0,
                         cash_sharing=True)
    assert fills_by_symbol(run) == {"A": [(1, "buy", 10.0), (2, "sell", 10.0)], "B": [(2, "buy", 20.0)]}
    assert run.skipped.empty


def test_symbols_that_do_not_compete_trade_alike_in_any_order() -> None:
    rng = np.random.default_rng(3)
    index = pd.date_range("2024-01-01", periods=60, freq="1h", tz="UTC")
    datas, signals = {}, {}
    for name, start in (("A", 100.0), ("B", 20.0), ("C", 7.0)):
        close = start * np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
        datas[name] = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                                    "volume": 1.0}, index=index)
        signals[name] = {"entries": rng.random(len(index)) < 0.2, "exits": rng.random(len(index)) < 0.2}
    rules = PositionRules(direction="both", size=500.0, size_type="value", fees=0.001)  # small next to the cash
    runs = [run_fill_model({s: datas[s] for s in order}, {s: signals[s] for s in order}, rules, 100_000.0,
                           cash_sharing=True) for order in (("A", "B", "C"), ("C", "A", "B"), ("B", "C", "A"))]
    first = fills_by_symbol(runs[0])
    assert all(len(v) >= 3 for v in first.values())
    for run in runs[1:]:
        assert fills_by_symbol(run) == first
        np.testing.assert_allclose(run.cash[:, 0], runs[0].cash[:, 0], rtol=1e-12)
