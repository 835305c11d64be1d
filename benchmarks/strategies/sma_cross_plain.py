"""Benchmark twin of the bundled sma_cross, written plainly (wider ranges for big grids)."""

from systrade import Param, Signals, Strategy, crossed_above, crossed_below


class SmaCrossPlain(Strategy):
    """sma_cross exactly as bundled: both averages computed in every signals() call."""

    fast = Param(10, low=1, high=1000, step=1, help="bars in the fast moving average")
    slow = Param(30, low=1, high=5000, step=5, help="bars in the slow moving average")

    def signals(self, data):
        fast = data["close"].rolling(self.fast).mean()
        slow = data["close"].rolling(self.slow).mean()
        return Signals(entries=crossed_above(fast, slow), exits=crossed_below(fast, slow))
