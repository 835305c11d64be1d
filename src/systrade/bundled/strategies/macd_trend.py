from systrade import Param, Signals, Strategy, crossed_above, crossed_below


class MacdTrend(Strategy):
    """Long while the MACD line is above its signal line and the close is above a long trend EMA."""

    timeframe = "4h"
    fast = Param(12, low=2, high=50, step=1, help="fast EMA span")
    slow = Param(26, low=5, high=200, step=1, help="slow EMA span")
    signal = Param(9, low=2, high=50, step=1, help="signal line EMA span")
    trend = Param(200, low=20, high=500, step=10, help="trend filter EMA span")

    def signals(self, data):
        close = data["close"]
        macd = close.ewm(span=self.fast, adjust=False).mean() - close.ewm(span=self.slow, adjust=False).mean()
        signal = macd.ewm(span=self.signal, adjust=False).mean()
        trend = close.ewm(span=self.trend, adjust=False).mean()
        uptrend = close > trend
        return Signals(entries=crossed_above(macd, signal) & uptrend, exits=crossed_below(macd, signal),
                       plots={"trend EMA": trend, "MACD": macd, "signal line": signal})
