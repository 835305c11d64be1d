"""Candles: reading files, the parquet store, validation, the synthetic sample, downloads."""
