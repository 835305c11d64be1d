"""Paper trading: the same strategies, scheduled against live exchange data (never imports backtest)."""
