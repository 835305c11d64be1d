import pandas as pd

from systrade import Param, Signals, Strategy


class MomentumRotation(Strategy):
    """Hold the one of SPY, QQQ and TLT with the best momentum, when it is positive; choose again each month.

    Momentum is the return over the last ``lookback`` sessions. The choice is made on the first session of each
    month (from candles that have closed), so it trades at the next session's open. Data: `systrade data download
    alpaca SPY QQQ TLT --timeframe 1d --since 2015-01-01`, then `systrade backtest momentum_rotation --exchange
    alpaca`.
    """

    timeframe = "1d"
    symbols = ["SPY", "QQQ", "TLT"]
    lookback = Param(63, low=10, high=252, step=1, help="sessions of momentum")

    def signals(self, data):
        closes = pd.DataFrame({symbol: frame["close"] for symbol, frame in data.items()})
        momentum = closes / closes.shift(self.lookback) - 1
        new_month = pd.Series(closes.index.month, index=closes.index).diff().fillna(0).ne(0)
        best = momentum.fillna(-1.0).idxmax(axis=1).where(momentum.max(axis=1) > 0, "cash")
        held = best.where(new_month).ffill().fillna("cash")
        signals = {}
        for symbol, frame in data.items():
            holding = (held == symbol).reindex(frame.index, fill_value=False)
            signals[symbol] = Signals(entries=holding & ~holding.shift(1, fill_value=False),
                                      exits=~holding & holding.shift(1, fill_value=False),
                                      plots={"momentum": momentum[symbol].reindex(frame.index)})
        return signals
