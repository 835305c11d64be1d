"""Vectorized backtesting: engine (vectorbt), metrics, reports, and later optimization."""
