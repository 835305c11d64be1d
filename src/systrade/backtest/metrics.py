"""Performance metrics from an equity curve and a trade list; formulas in docs/metrics.md.

Plain NumPy on purpose: the same functions serve single backtests and parameter sweeps.
"""

from __future__ import annotations

import math

import numpy as np

DAY_SECONDS = 86400.0


def periods_per_year(bar_seconds: float, year_days: float = 365.0) -> float:
    """Bars in one year for annualising (``year_days`` 365 for crypto, 252 for stocks)."""
    return year_days * DAY_SECONDS / bar_seconds


def bar_returns(equity: np.ndarray) -> np.ndarray:
    """Simple returns between consecutive bars."""
    equity = np.asarray(equity, dtype=float)
    return equity[1:] / equity[:-1] - 1.0


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a positive fraction."""
    equity = np.asarray(equity, dtype=float)
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks)) if len(equity) else 0.0


def sharpe(returns: np.ndarray, ppy: float) -> float:
    """Annualised Sharpe ratio (risk-free rate 0): mean / sample std * sqrt(periods per year)."""
    if len(returns) < 2:
        return math.nan
    std = np.std(returns, ddof=1)
    return float(np.mean(returns) / std * math.sqrt(ppy)) if std > 0 else math.nan


def sortino(returns: np.ndarray, ppy: float) -> float:
    """Annualised Sortino ratio: mean / downside deviation * sqrt(periods per year)."""
    if len(returns) < 2:
        return math.nan
    downside = math.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))
    return float(np.mean(returns) / downside * math.sqrt(ppy)) if downside > 0 else math.nan


def cagr(initial: float, final: float, years: float) -> float:
    """Compound annual growth rate over ``years``."""
    if years <= 0 or initial <= 0:
        return math.nan
    if final <= 0:
        return -1.0
    exponent = math.log(final / initial) / years
    return math.inf if exponent > 700 else math.expm1(exponent)  # a big gain over minutes overflows a float


def trade_stats(pnls: np.ndarray) -> dict[str, float]:
    """Win rate, profit factor and expectancy of closed trades' PnL."""
    pnls = np.asarray(pnls, dtype=float)
    if len(pnls) == 0:
        return {"win_rate": math.nan, "profit_factor": math.nan, "expectancy": math.nan}
    gains = pnls[pnls > 0].sum()
    losses = -pnls[pnls < 0].sum()
    return {
        "win_rate": float(np.mean(pnls > 0)),
        "profit_factor": float(gains / losses) if losses > 0 else (math.inf if gains > 0 else math.nan),
        "expectancy": float(np.mean(pnls)),
    }


def compute_metrics(
    equity: np.ndarray,
    bar_seconds: float,
    closed_pnls: np.ndarray,
    fees_paid: float,
    exposure: float,
    year_days: float = 365.0,
) -> dict[str, float]:
    """All headline metrics; percentages are in percent, ratios are plain numbers."""
    equity = np.asarray(equity, dtype=float)
    initial, final = float(equity[0]), float(equity[-1])
    ppy = periods_per_year(bar_seconds, year_days)
    returns = bar_returns(equity)
    years = len(equity) / ppy
    growth = cagr(initial, final, years)
    drawdown = max_drawdown(equity)
    stats = trade_stats(closed_pnls)
    return {
        "final_equity": final,
        "total_return_pct": (final / initial - 1.0) * 100.0,
        "cagr_pct": growth * 100.0,
        "max_drawdown_pct": drawdown * 100.0,
        "sharpe": sharpe(returns, ppy),
        "sortino": sortino(returns, ppy),
        "calmar": growth / drawdown if drawdown > 0 else math.nan,
        "win_rate_pct": stats["win_rate"] * 100.0,
        "profit_factor": stats["profit_factor"],
        "expectancy": stats["expectancy"],
        "exposure_pct": exposure * 100.0,
        "fees_paid": fees_paid,
    }
