from systrade import Param, Signals, Strategy, crossed_above, crossed_below


class BollingerBreakout(Strategy):
    """Go long when the close breaks above the upper Bollinger band; exit below the middle band."""

    timeframe = "1h"
    window = Param(20, low=5, high=200, step=5, help="bars in the moving average and deviation")
    width = Param(2.0, low=0.5, high=4.0, step=0.25, help="band distance in standard deviations")

    def signals(self, data):
        close = data["close"]
        middle = close.rolling(self.window).mean()
        upper = middle + self.width * close.rolling(self.window).std()
        return Signals(entries=crossed_above(close, upper), exits=crossed_below(close, middle),
                       plots={"upper band": upper, "middle band": middle})
