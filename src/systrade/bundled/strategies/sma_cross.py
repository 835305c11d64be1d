from systrade import Param, Signals, Strategy, crossings, indicator


class SmaCross(Strategy):
    """Long while the fast SMA is above the slow SMA: enter on the cross up, exit on the cross down."""

    timeframe = "1h"
    fast = Param(10, low=2, high=100, step=1, help="bars in the fast moving average")
    slow = Param(30, low=5, high=400, step=5, help="bars in the slow moving average")

    def valid(self):
        return self.fast < self.slow

    # Each average depends on one parameter: a sweep computes it once per value, not once per combination.
    @indicator("fast")
    def fast_ma(self, data):
        return data["close"].rolling(self.fast).mean()

    @indicator("slow")
    def slow_ma(self, data):
        return data["close"].rolling(self.slow).mean()

    def signals(self, data):
        fast, slow = self.fast_ma(data), self.slow_ma(data)
        up, down = crossings(fast, slow)  # both directions in one pass over the two averages
        return Signals(entries=up, exits=down, plots={"fast": fast, "slow": slow})
