"""Plotly figures shared by the HTML reports and the web dashboard: candles with indicators and trades, equity
against buy-and-hold with its drawdown, and a monthly returns table.

Figures stay small enough for a year of hourly bars: times travel as one typed array of epoch milliseconds
per trace (on date axes), values as float32 when that loses nothing a person would see, and hover texts are
formatted with thousands separators. plotly is imported inside the functions, so importing this module is
cheap.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

WIN = "#1a9850"  # a trade that made money
LOSS = "#d73027"  # a trade that lost money (or broke even)
UP = "#26a69a"  # a candle that closed above its open
DOWN = "#ef5350"
EQUITY = "#1f77b4"
HOLD = "#7f7f7f"
LINE_COLORS = ("#ff7f0e", "#9467bd", "#17becf", "#bcbd22", "#e377c2", "#8c564b", "#2ca02c")
FLOAT32_LIMIT = 1e5  # below this float32 keeps 2 decimals exact to the cent as displayed; above, float64

__all__ = ["equity_figure", "monthly_returns", "monthly_returns_html", "number", "percent", "price_figure",
           "price_decimals"]


# ---------------------------------------------------------------- numbers for people


def number(value: Any, decimals: int = 2, sign: bool = False) -> str:
    """``1234.5`` -> ``1,234.50``; NaN/None -> ``n/a``; ``sign`` adds ``+`` to positive values."""
    if value is None:
        return "n/a"
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:{'+' if sign else ''},.{decimals}f}"


def percent(value: Any, decimals: int = 2, sign: bool = False) -> str:
    """A value already in percent: ``12.345`` -> ``12.35 %``."""
    text = number(value, decimals, sign)
    return text if text == "n/a" else f"{text} %"


def price_decimals(prices: Any) -> int:
    """Decimals that show a market's prices sensibly: 2 from 1 up, about 4 significant digits below 1."""
    values = np.asarray(prices, dtype=float)
    values = np.abs(values[np.isfinite(values) & (values != 0)])
    if values.size == 0:
        return 2
    typical = float(np.median(values))
    return 2 if typical >= 1 else min(10, 3 - math.floor(math.log10(typical)))


# ---------------------------------------------------------------- compact arrays


def _times(index: Any) -> np.ndarray:
    """Epoch milliseconds (float64, UTC wall time) of a DatetimeIndex or datetime-like values, for a date axis."""
    stamps = pd.DatetimeIndex(pd.to_datetime(index, utc=True)).tz_convert("UTC").tz_localize(None)
    return stamps.as_unit("ms").asi8.astype(np.float64)


def _line_x(index: Any) -> dict[str, Any]:
    """The x of a line on every bar of ``index``: ``x0`` and ``dx`` (two numbers) when the bars are evenly spaced,
    else every time; a year of hourly bars then costs nothing for the times of each indicator or equity line."""
    times = _times(index)
    steps = np.diff(times)
    if times.size > 2 and np.all(steps == steps[0]):
        return {"x0": float(times[0]), "dx": float(steps[0])}
    return {"x": times}


def _values(values: Any) -> np.ndarray:
    """Float values as float32 when every one is small enough that float32 shows the same 2 decimals."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size and float(np.max(np.abs(finite))) < FLOAT32_LIMIT:
        return array.astype(np.float32)
    return array


def _d3_format(decimals: int) -> str:
    return f",.{decimals}f"


# ---------------------------------------------------------------- price, indicators and trades


def price_figure(candles: pd.DataFrame, *, plots: dict[str, pd.Series] | None = None,
                 trades: pd.DataFrame | None = None, fills: pd.DataFrame | None = None,
                 title: str = "") -> Any:
    """Candlesticks (open/high/low/close columns, DatetimeIndex) with a volume panel below, the strategy's
    indicator lines (`plots`: name -> series on the same index), trades marked at entry and exit and coloured
    by the trade's P&L (columns: direction 'long'|'short', entry_time, entry_price, exit_time, exit_price,
    pnl, status 'closed'|'open'), and actual fills (columns: time, side 'buy'|'sell', price, amount)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    has_volume = "volume" in candles.columns
    lines = {str(name): np.asarray(series, dtype=float) for name, series in (plots or {}).items()}
    overlay = {name: values for name, values in lines.items() if on_price_scale(values, candles["close"])}
    below = {name: values for name, values in lines.items() if name not in overlay}
    heights = [0.62] + ([0.2] if below else []) + ([0.18] if has_volume else [])
    fig = make_subplots(rows=len(heights), cols=1, shared_xaxes=True, vertical_spacing=0.02,
                        row_heights=[h / sum(heights) for h in heights])
    decimals = price_decimals(candles["close"])
    fmt = _d3_format(decimals)
    x = _times(candles.index)
    fig.add_trace(go.Candlestick(
        x=x, open=_values(candles["open"]), high=_values(candles["high"]), low=_values(candles["low"]),
        close=_values(candles["close"]), name="price",
        increasing=dict(line=dict(color=UP, width=1), fillcolor=UP),
        decreasing=dict(line=dict(color=DOWN, width=1), fillcolor=DOWN)), row=1, col=1)
    for i, name in enumerate(lines):
        row, line_format = (1, fmt) if name in overlay else (2, ",.4~g")
        fig.add_trace(go.Scatter(**_line_x(candles.index), y=_values(lines[name]), name=name, mode="lines",
                                 line=dict(width=1.3, color=LINE_COLORS[i % len(LINE_COLORS)]),
                                 hovertemplate=f"%{{y:{line_format}}}"), row=row, col=1)
    if trades is not None and len(trades):
        for trace in _trade_traces(go, trades, decimals):
            fig.add_trace(trace, row=1, col=1)
    if fills is not None and len(fills):
        for trace in _fill_traces(go, fills, decimals):
            fig.add_trace(trace, row=1, col=1)
    if has_volume:
        rising = candles["close"].to_numpy() >= candles["open"].to_numpy()
        volume = _values(candles["volume"])
        for pick, color in ((rising, UP), (~rising, DOWN)):  # two disjoint traces: each bar's time sent once
            fig.add_trace(go.Bar(x=x[pick], y=volume[pick], name="volume", showlegend=False, opacity=0.6,
                                 marker=dict(color=color, line=dict(width=0)),
                                 hovertemplate="volume %{y:,.4~g}<extra></extra>"), row=len(heights), col=1)
        fig.update_yaxes(title_text="volume", row=len(heights), col=1, tickformat=",.3~s")
    if below:
        fig.update_yaxes(title_text="indicators", row=2, col=1, tickformat=",.4~g")
    fig.update_yaxes(title_text="price", row=1, col=1, tickformat=",", hoverformat=fmt)
    fig.update_xaxes(type="date", rangeslider=dict(visible=False))
    _layout(fig, title, height=int(500 + 130 * (len(heights) - 1)))
    return fig


def on_price_scale(values: np.ndarray, close: pd.Series) -> bool:
    """Whether an indicator belongs over the candles (a moving average, a band) rather than in its own panel
    (an RSI, a MACD): most of its values lie within 0.6x-1.4x of the close on the same bar."""
    with np.errstate(all="ignore"):
        ratio = values / close.to_numpy(dtype=float)
    known = np.isfinite(ratio)
    return bool(known.any()) and float(np.mean((ratio[known] > 0.6) & (ratio[known] < 1.4))) > 0.6


def _trade_traces(go, trades: pd.DataFrame, decimals: int) -> list:
    """Lines from entry to exit (green when the trade made money, red otherwise), then entry and exit markers
    coloured the same way and sized by the trade's P&L."""
    pnl = trades["pnl"].to_numpy(dtype=float)
    won = pnl > 0
    scale = float(np.nanmax(np.abs(pnl))) if np.isfinite(pnl).any() and np.nanmax(np.abs(pnl)) > 0 else 1.0
    sizes = 8 + 8 * np.nan_to_num(np.abs(pnl) / scale)
    colors = np.where(won, WIN, LOSS)
    closed = (trades["status"].astype(str) == "closed").to_numpy()
    long = (trades["direction"].astype(str) == "long").to_numpy()
    returns = trades["return_pct"].to_numpy(dtype=float) if "return_pct" in trades else np.full(len(trades), np.nan)
    entry_t, exit_t = pd.to_datetime(trades["entry_time"], utc=True), pd.to_datetime(trades["exit_time"], utc=True)
    entry_p, exit_p = trades["entry_price"].to_numpy(dtype=float), trades["exit_price"].to_numpy(dtype=float)
    texts = []
    for i in range(len(trades)):
        state = "closed" if closed[i] else "open (marked at the last close)"
        texts.append(f"{'long' if long[i] else 'short'} trade, {state}<br>"
                     f"entry {entry_t[i]:%Y-%m-%d %H:%M} at {number(entry_p[i], decimals)}<br>"
                     + (f"exit {exit_t[i]:%Y-%m-%d %H:%M} at {number(exit_p[i], decimals)}<br>" if closed[i] else "")
                     + f"P&L {number(pnl[i], 2, sign=True)} ({percent(returns[i], 2, sign=True)})")
    texts = np.array(texts, dtype=object)
    traces = []
    for wins, label, color in ((True, "trades won", WIN), (False, "trades lost", LOSS)):
        pick = np.flatnonzero((won == wins) & closed)
        if pick.size:
            xs = np.column_stack([_times(entry_t[pick]), _times(exit_t[pick]), np.full(pick.size, np.nan)]).ravel()
            ys = np.column_stack([entry_p[pick], exit_p[pick], np.full(pick.size, np.nan)]).ravel()
            traces.append(go.Scatter(x=xs, y=ys, mode="lines", name=label, hoverinfo="skip",
                                     line=dict(color=color, width=1.5, dash="dot")))
    symbols = np.where(long, "triangle-up", "triangle-down")
    symbols = np.where(closed, symbols, np.char.add(symbols.astype(str), "-open"))
    traces.append(go.Scatter(x=_times(entry_t), y=entry_p, mode="markers", name="entries",
                             marker=dict(symbol=symbols.tolist(), size=sizes, color=colors.tolist(),
                                         line=dict(width=1, color="#222")),
                             text=texts, hovertemplate="%{text}<extra></extra>"))
    if closed.any():
        traces.append(go.Scatter(x=_times(exit_t[closed]), y=exit_p[closed], mode="markers", name="exits",
                                 marker=dict(symbol="circle", size=sizes[closed], color=colors[closed].tolist(),
                                             line=dict(width=1, color="#222")),
                                 text=texts[closed], hovertemplate="%{text}<extra></extra>"))
    return traces


def _fill_traces(go, fills: pd.DataFrame, decimals: int) -> list:
    """The fills that really happened (a paper bot's or a broker's): small buy and sell ticks."""
    traces = []
    for side, symbol, color in (("buy", "triangle-right", "#0050b3"), ("sell", "triangle-left", "#d46b08")):
        part = fills[fills["side"].astype(str) == side]
        if part.empty:
            continue
        times = pd.to_datetime(part["time"], utc=True)
        texts = [f"{side} {number(a, 6).rstrip('0').rstrip('.')} at {number(p, decimals)}<br>{t:%Y-%m-%d %H:%M}"
                 for a, p, t in zip(part["amount"], part["price"], times, strict=True)]
        traces.append(go.Scatter(x=_times(times), y=part["price"].to_numpy(dtype=float), mode="markers",
                                 name=f"{side} fills", marker=dict(symbol=symbol, size=9, color=color),
                                 text=texts, hovertemplate="%{text}<extra></extra>"))
    return traces


# ---------------------------------------------------------------- equity and drawdown


def drawdown_pct(equity: pd.Series) -> pd.Series:
    """How far below its running peak the equity is, in percent (0 at a new high, negative below)."""
    return (equity / equity.cummax() - 1.0) * 100.0


def equity_figure(equity: pd.Series, *, benchmark: pd.Series | None = None, title: str = "") -> Any:
    """Equity (and buy-and-hold `benchmark`, same index) with a drawdown panel below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=[0.7, 0.3])
    x = _line_x(equity.index)
    fig.add_trace(go.Scatter(**x, y=_values(equity), name="strategy", mode="lines",
                             line=dict(color=EQUITY, width=1.5), hovertemplate="%{y:,.2f}"), row=1, col=1)
    if benchmark is not None:
        fig.add_trace(go.Scatter(**_line_x(benchmark.index), y=_values(benchmark), name="buy and hold",
                                 mode="lines", line=dict(color=HOLD, width=1.2, dash="dot"),
                                 hovertemplate="%{y:,.2f}"), row=1, col=1)
    fig.add_trace(go.Scatter(**x, y=_values(drawdown_pct(equity)), name="drawdown", mode="lines",
                             fill="tozeroy", line=dict(color=LOSS, width=1), fillcolor="rgba(215,48,39,0.25)",
                             hovertemplate="%{y:,.2f} %"), row=2, col=1)
    fig.update_yaxes(title_text="equity", tickformat=",", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", ticksuffix=" %", row=2, col=1)
    fig.update_xaxes(type="date")
    _layout(fig, title, height=480)
    return fig


def _layout(fig, title: str, height: int) -> None:
    fig.update_layout(title=dict(text=html.escape(title)) if title else None, height=height, template="plotly_white",
                      hovermode="x unified", margin=dict(l=60, r=20, t=50 if title else 20, b=30),
                      legend=dict(orientation="h", yanchor="bottom", y=1.01, xanchor="right", x=1))


# ---------------------------------------------------------------- monthly returns

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Returns in percent, one row per year and one column per month (1..12) plus ``year``: each month from the
    last equity of the month before (the first month: from the first equity) to its own last equity."""
    equity = equity.dropna()
    if equity.empty:
        return pd.DataFrame(columns=[*range(1, 13), "year"], dtype=float)
    index = pd.DatetimeIndex(equity.index)
    periods = index.tz_convert("UTC").tz_localize(None).to_period("M") if index.tz is not None else index.to_period("M")
    month_end = equity.groupby(periods).last()
    previous = month_end.shift(1)
    previous.iloc[0] = float(equity.iloc[0])
    returns = (month_end / previous - 1.0) * 100.0
    table = pd.DataFrame({"year": returns.index.year, "month": returns.index.month, "value": returns.to_numpy()})
    grid = table.pivot(index="year", columns="month", values="value").reindex(columns=range(1, 13))
    year_end = month_end.groupby(month_end.index.year).last()
    year_start = previous.groupby(previous.index.year).first()
    grid["year"] = ((year_end / year_start - 1.0) * 100.0).reindex(grid.index)
    return grid


def monthly_returns_html(equity: pd.Series) -> str:
    """A year x month table of returns in percent (HTML, numbers formatted for people)."""
    grid = monthly_returns(equity)
    if grid.empty:
        return "<p>No equity to tabulate.</p>"
    head = "".join(f"<th>{m}</th>" for m in (*MONTHS, "Year"))
    rows = []
    for year, row in grid.iterrows():
        cells = "".join(_return_cell(row[c], c == "year") for c in (*range(1, 13), "year"))
        rows.append(f"<tr><th>{year}</th>{cells}</tr>")
    return (f"<table class='monthly'><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _return_cell(value: float, is_year: bool) -> str:
    if value is None or not np.isfinite(value):
        return "<td></td>"
    strength = min(abs(value) / 10.0, 1.0) * 0.55 + 0.08  # up to ±10 % a month the colour deepens
    rgb = "26,152,80" if value > 0 else "215,48,39"
    weight = "font-weight:bold;" if is_year else ""
    return (f"<td style='{weight}background:rgba({rgb},{strength:.2f})'>"
            f"{html.escape(percent(value, 1, sign=True))}</td>")
