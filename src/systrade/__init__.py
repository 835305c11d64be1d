"""systrade: write a strategy once, backtest it, search its parameters, paper-trade it.

The public API is the strategy contract::

    from systrade import Strategy, Param, Signals, crossed_above, crossed_below
"""

from systrade.strategy import Param, Signals, Strategy, crossed_above, crossed_below

__all__ = ["Strategy", "Param", "Signals", "crossed_above", "crossed_below"]
__version__ = "0.1.0"
