from systrade import Param, Signals, Strategy


class DonchianBreakout(Strategy):
    """Turtle-style channel breakout: buy a new N-bar high, sell a new M-bar low (previous bars only)."""

    timeframe = "1d"
    entry_window = Param(20, low=5, high=200, step=5, help="bars in the breakout channel")
    exit_window = Param(10, low=2, high=100, step=2, help="bars in the exit channel")

    def signals(self, data):
        upper = data["high"].rolling(self.entry_window).max().shift(1)
        lower = data["low"].rolling(self.exit_window).min().shift(1)
        return Signals(entries=(data["close"] > upper), exits=(data["close"] < lower),
                       plots={"upper channel": upper, "lower channel": lower})
