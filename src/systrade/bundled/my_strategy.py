"""An example strategy, written by `systrade init`: edit it, rename it, or copy it to start another.

    systrade backtest my_strategy                      # on the bundled synthetic sample
    systrade backtest my_strategy -p lookback=48 --data prices.csv
    systrade strategies show my_strategy               # its parameters and their ranges
    systrade optimize my_strategy --grid lookback=12,24,48 --grid rise=0.01,0.02,0.04
    systrade check lookahead my_strategy               # proves signals() never reads the future

Every .py file in strategies/ is searched for Strategy classes; each is found by its name.
"""

from systrade import Param, Signals, Strategy


class MyStrategy(Strategy):
    """Momentum with a trend filter: buy a strong rise above the trend line, sell when the close falls below it."""

    # Found by name as `my_strategy` (the class name in snake_case); set `name = "..."` to choose another.
    timeframe = "1h"  # the candles it was written for: a suggestion, it runs on any timeframe
    # direction = "long"    # "long" (default), "short" or "both"; --direction overrides it
    # stop_loss = 0.05      # exit 5% below the entry price, checked inside every bar (--stop-loss overrides)
    # take_profit = 0.10    # exit 10% above the entry price
    # warmup = 200          # bars of history signals() needs (`systrade check warmup` measures it)

    # Tunable parameters: read them as self.<name>; set them with -p name=value; optimize sweeps them.
    # low/high/step bound what a user or a sweep may choose; help is shown by `strategies show`.
    lookback = Param(24, low=2, high=500, step=1, help="bars the rise is measured over")
    rise = Param(0.02, low=0.0, high=0.5, help="rise over `lookback` bars that buys (0.02 = 2%)")
    trend = Param(200, low=10, high=1000, step=10, help="bars in the trend's moving average")

    def signals(self, data):
        # data: float columns open high low close volume, indexed by each bar's open time (UTC).
        # A signal on bar t may use data up to bar t's close; systrade fills it at the open of bar t+1.
        close = data["close"]
        trend_line = close.rolling(self.trend).mean()  # NaN until `trend` bars exist
        rise = close / close.shift(self.lookback) - 1
        # Comparisons with NaN are False, so the first bars give no signal. Signals are boolean Series on data.index.
        entries = (rise > self.rise) & (close > trend_line)
        exits = close < trend_line
        # plots: lines drawn with the candles in `backtest --report` and the dashboard; they never affect trading.
        return Signals(entries=entries, exits=exits, plots={"trend line": trend_line})
