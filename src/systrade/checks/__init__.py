"""Trust checks: lookahead, warmup and backtest/paper parity.

``lookahead`` and ``warmup`` need only a strategy and candles. ``parity`` runs the backtest and the
replay of the daemon's tick code, so it sits above both ``backtest`` and ``live``; import it directly
(this package imports nothing, so ``live`` may use ``checks.lookahead`` and ``checks.warmup``).
"""
