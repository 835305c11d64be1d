"""Backtesting: the engine (the fill model and the books kept from its fills), metrics, outputs and reports."""
