from systrade import Param, Signals, Strategy, crossed_above, crossed_below


class SmaCross(Strategy):
    """Long while the fast SMA is above the slow SMA: enter on the cross up, exit on the cross down."""

    timeframe = "1h"
    fast = Param(10, low=2, high=100, step=1, help="bars in the fast moving average")
    slow = Param(30, low=5, high=400, step=5, help="bars in the slow moving average")

    def signals(self, data):
        fast = data["close"].rolling(self.fast).mean()
        slow = data["close"].rolling(self.slow).mean()
        return Signals(entries=crossed_above(fast, slow), exits=crossed_below(fast, slow),
                       plots={"fast": fast, "slow": slow})
