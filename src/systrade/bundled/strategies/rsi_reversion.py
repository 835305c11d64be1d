import pandas as pd

from systrade import Param, Signals, Strategy, crossed_above, crossed_below


def wilder_rsi(close: pd.Series, window: int) -> pd.Series:
    """Relative Strength Index with Wilder's smoothing (an EMA with alpha = 1/window)."""
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    loss = (-change.clip(upper=0)).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    return 100 - 100 / (1 + gain / loss)


class RsiReversion(Strategy):
    """Buy when RSI climbs back above the oversold line; sell when it falls back below overbought."""

    timeframe = "1h"
    window = Param(14, low=2, high=50, step=1, help="RSI length in bars")
    oversold = Param(30.0, low=5.0, high=45.0, step=5.0, help="RSI level that counts as oversold")
    overbought = Param(70.0, low=55.0, high=95.0, step=5.0, help="RSI level that counts as overbought")

    def signals(self, data):
        rsi = wilder_rsi(data["close"], self.window)
        return Signals(entries=crossed_above(rsi, self.oversold), exits=crossed_below(rsi, self.overbought),
                       plots={"RSI": rsi})
