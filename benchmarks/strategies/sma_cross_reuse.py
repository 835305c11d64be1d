"""Benchmark twin of the bundled sma_cross with its averages declared as @indicator (wider ranges for big grids)."""

from systrade import Param, Signals, Strategy, crossed_above, crossed_below, indicator


class SmaCrossReuse(Strategy):
    """sma_cross whose two averages a sweep computes once per window, not once per combination."""

    fast = Param(10, low=1, high=1000, step=1, help="bars in the fast moving average")
    slow = Param(30, low=1, high=5000, step=5, help="bars in the slow moving average")

    @indicator("fast")
    def fast_ma(self, data):
        return data["close"].rolling(self.fast).mean()

    @indicator("slow")
    def slow_ma(self, data):
        return data["close"].rolling(self.slow).mean()

    def signals(self, data):
        fast, slow = self.fast_ma(data), self.slow_ma(data)
        return Signals(entries=crossed_above(fast, slow), exits=crossed_below(fast, slow))
