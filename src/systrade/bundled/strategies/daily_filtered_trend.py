from systrade import Param, Signals, Strategy, crossed_above, crossed_below


class DailyFilteredTrend(Strategy):
    """Hourly EMA crosses traded only with the daily trend: long while the last daily close is above its SMA.

    The daily candles come from ``self.higher``: each hourly bar sees only the days that had closed by its own
    close, so the filter never peeks at today's unfinished candle.
    """

    timeframe = "1h"
    fast = Param(12, low=2, high=60, step=1, help="bars in the fast hourly EMA")
    slow = Param(48, low=10, high=240, step=2, help="bars in the slow hourly EMA")
    days = Param(10, low=3, high=60, step=1, help="days in the daily trend filter (SMA of daily closes)")

    def valid(self) -> bool:
        return self.fast < self.slow

    def signals(self, data):
        fast = data["close"].ewm(span=self.fast, adjust=False).mean()
        slow = data["close"].ewm(span=self.slow, adjust=False).mean()
        daily_close = self.higher(data, "1d")["close"]
        daily_sma = self.higher(data, "1d", apply=lambda days: days["close"].rolling(self.days).mean())
        uptrend = daily_close > daily_sma
        return Signals(entries=crossed_above(fast, slow) & uptrend, exits=crossed_below(fast, slow) | ~uptrend,
                       plots={"fast EMA": fast, "slow EMA": slow, "daily SMA": daily_sma})
