"""What a user can set for one backtest, as plain data (light to import: the CLI builds it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class BacktestOptions:
    """Everything a user can set for one backtest; None means "config or strategy default".

    Keyword-only: a new option can never shift the meaning of a positional argument."""

    strategy: str
    params: list[str] = field(default_factory=list)
    data_file: str | None = None
    date_format: str | None = None  # strptime format of data_file's dates
    exchange: str | None = None
    symbols: list[str] = field(default_factory=list)
    timeframe: str | None = None
    start: str | None = None
    end: str | None = None
    cash: float | None = None
    fees: float | None = None
    slippage: float | None = None
    size: str = "all"
    size_type: str = "percent"
    granularity: float | None = None
    direction: str | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    cash_sharing: bool = False
    year_days: float | None = None
    sell_fees: float | None = None
    min_amount: float | None = None
    min_cost: float | None = None
    tick: float | None = None
