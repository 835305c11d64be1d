"""Trust checks: lookahead, warmup, backtest/paper parity, and the checks before the daemon starts.

``lookahead`` and ``warmup`` need only a strategy and candles. ``parity``, ``paper_replay`` and
``preflight`` use the daemon's code, so this package sits above both ``backtest`` and ``live``;
``live`` never imports it.
"""
