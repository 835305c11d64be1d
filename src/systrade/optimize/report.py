"""Self-contained HTML reports (Plotly, embedded: they open offline) for sweeps and walk-forward runs.

The optimize report shows the metric as a heatmap over two swept parameters (when more are swept, each
cell shows the best value over the others) and the top-N table; the walk-forward report shows the stitched
out-of-sample equity against buy-and-hold, the chosen params per window and the per-window table.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from systrade.charts import equity_figure, monthly_returns_html
from systrade.errors import UserError
from systrade.fsutil import atomic_write_text
from systrade.optimize.grid import Grid
from systrade.optimize.sweep import METRICS, Sweep
from systrade.reporting import METRIC_LABELS, figure_html, metric_text, metrics_table, page, params_text, rules_sentence

KIND = {name: kind for name, _, kind in METRIC_LABELS}
LABEL = {name: label for name, label, _ in METRIC_LABELS}


def heatmap_axes(grid: Grid, choice: str | None) -> tuple[str, str | None]:
    """The heatmap's x and y parameters: ``--heatmap x,y``, else the first two swept parameters."""
    if choice is None:
        names = grid.names
        return names[0], names[1] if len(names) > 1 else None
    parts = [p.strip() for p in choice.split(",")]
    if len(parts) != 2 or parts[0] == parts[1]:
        raise UserError(f"--heatmap {choice!r} must name two different swept parameters: x,y")
    for name in parts:
        if name not in grid.names:
            raise UserError(f"--heatmap: {name!r} is not a swept parameter; swept: {', '.join(grid.names)}")
    return parts[0], parts[1]


def heatmap_matrix(sweep: Sweep, x: str, y: str | None) -> tuple[list, list, np.ndarray]:
    """Metric values on a (y, x) grid; over other swept parameters each cell keeps the best (NaN ignored).

    Works for any set of evaluated combinations (a grid, a constrained grid, sampled trials): cells nothing
    was evaluated in are NaN.
    """
    grid = sweep.job.grid
    if isinstance(grid, Grid) and grid.keep is None:
        return _full_grid_matrix(sweep, x, y)
    metric = sweep.column(METRICS[sweep.metric])
    axes = list(grid.names)
    xs = list(grid.values[axes.index(x)])
    ys = [] if y is None else list(grid.values[axes.index(y)])
    x_pos = {v: i for i, v in enumerate(xs)}
    y_pos = {v: i for i, v in enumerate(ys)}
    best = np.full((max(len(ys), 1), len(xs)), np.nan)
    for k in range(sweep.n_combos):
        value = metric[k]
        if np.isnan(value):
            continue
        params = grid.combo(k)
        cell = (0 if y is None else y_pos[params[y]], x_pos[params[x]])
        if np.isnan(best[cell]) or value > best[cell]:
            best[cell] = value
    return xs, ys, best


def _full_grid_matrix(sweep: Sweep, x: str, y: str | None) -> tuple[list, list, np.ndarray]:
    """``heatmap_matrix`` of a whole Cartesian grid, vectorised."""
    grid = sweep.job.grid
    values = sweep.column(METRICS[sweep.metric]).reshape(grid.shape())
    axes = list(grid.names)
    xi = axes.index(x)
    keep = [xi] if y is None else [axes.index(y), xi]
    other = tuple(i for i in range(len(axes)) if i not in keep)
    moved = np.moveaxis(values, keep, list(range(len(keep))))
    flat = moved.reshape(*moved.shape[:len(keep)], -1)
    with np.errstate(all="ignore"):
        finite = np.where(np.isnan(flat), -np.inf, flat)
        best = finite.max(axis=-1) if other else finite[..., 0]
    best = np.where(np.isneginf(best) & np.all(np.isnan(flat), axis=-1), np.nan, best)
    if y is None:
        best = best[None, :]
    return list(grid.values[xi]), ([] if y is None else list(grid.values[axes.index(y)])), best


def _table(rows: list[dict[str, Any]], names: tuple[str, ...], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["#", *names, *(LABEL.get(c, c) for c in columns)])
    body = []
    for row in rows:
        cells = [f"<td class='num'>{row['rank']}</td>",
                 *[f"<td class='num'>{html.escape(str(row['params'][n]))}</td>" for n in names],
                 *[f"<td class='num'>{metric_text(row.get(c), KIND.get(c, 'ratio'))}</td>" for c in columns]]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _page(title: str, synthetic: bool, body: str) -> str:
    return page(title, body, synthetic)


def hold_from(frame: pd.DataFrame, equity: pd.Series, cash: float) -> pd.Series:
    """Buy-and-hold over ``equity``'s bars: all of ``cash`` at the open of its first bar, no costs."""
    start = frame.index.get_loc(equity.index[0])
    return cash * frame["close"].iloc[start:].reindex(equity.index) / float(frame["open"].iloc[start])


def equity_section(title: str, equity: pd.Series, frame: pd.DataFrame, cash: float) -> str:
    """Equity against buy-and-hold with its drawdown, then its monthly returns (as in the backtest report)."""
    return (figure_html(equity_figure(equity, benchmark=hold_from(frame, equity, cash), title=title))
            + "<h3>monthly returns</h3>" + monthly_returns_html(equity))


def _values_text(values: Any) -> str:
    """``2 to 100 step 1 (99 values)`` for evenly spaced numbers, else the values (the first 8 and a count)."""
    if not isinstance(values, list):
        return str(values)
    numbers = len(values) > 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numbers:
        steps = np.diff(np.asarray(values, dtype=float))
        if np.allclose(steps, steps[0]):
            step = values[1] - values[0]
            return f"{values[0]} to {values[-1]} step {round(step, 10):g} ({len(values):,} values)"
    shown = ", ".join(str(v) for v in values[:8])
    return shown + (f", ... ({len(values):,} values)" if len(values) > 8 else "")


def _space_text(described: Any) -> str:
    """A grid's or a space's description (name -> values or range) as ``fast: 2 to 100 step 1 (99 values); ...``."""
    if isinstance(described, dict):
        return "; ".join(f"{name}: {_values_text(value)}" for name, value in described.items())
    return str(described)


def _searched(session) -> str:
    """``combinations`` for a grid, ``trials (tpe search, seed 0)`` for a sampled search."""
    if session.space is None:
        skipped = session.grid.skipped
        return "combinations" + (f" ({skipped:,} skipped: refused by valid())" if skipped else "")
    return f"trials ({session.options.search} search, seed {session.options.seed})"


def render_optimize_report(result, top: int, axes: tuple[str, str | None]) -> str:
    import plotly.graph_objects as go

    from systrade.optimize.output import luck_lines, top_rows

    sweep, session = result.sweep, result.session
    x, y = axes
    xs, ys, matrix = heatmap_matrix(sweep, x, y)
    z = [[None if not math.isfinite(v) else float(v) for v in row] for row in matrix]
    heat = go.Heatmap(x=[str(v) for v in xs], y=[str(v) for v in ys] if y else [sweep.metric], z=z,
                      colorscale="Viridis", colorbar=dict(title=sweep.metric),
                      hovertemplate=f"{x}=%{{x}}<br>{y or ''}=%{{y}}<br>{sweep.metric}=%{{z:,.2f}}<extra></extra>")
    fig = go.Figure(heat)
    others = [n for n in session.grid.names if n not in (x, y)]
    subtitle = f" (best over {', '.join(others)})" if others else ""
    fig.update_layout(title=f"{sweep.metric} over {x}{' and ' + y if y else ''}{subtitle}", xaxis_title=x,
                      yaxis_title=y or "", height=700, margin=dict(l=60, r=20, t=60, b=50))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    columns = ["total_return_pct", "cagr_pct", "sharpe", "sortino", "calmar", "max_drawdown_pct",
               "profit_factor", "win_rate_pct", "total_trades", "fees_paid"]
    frame = session.candles.frame
    prepared = session.prepared
    info = (f"<p class='lead'>data: {html.escape(session.candles.note)} ({html.escape(session.candles.symbol)} "
            f"{html.escape(session.candles.timeframe)}, {frame.index[0]:%Y-%m-%d %H:%M} to "
            f"{frame.index[-1]:%Y-%m-%d %H:%M} UTC, {len(frame):,} bars)</p>"
            f"<p class='lead'>{sweep.n_combos:,} {_searched(session)}, ranked by {html.escape(sweep.metric)}; "
            f"{'grid' if session.space is None else 'space'}: {html.escape(_space_text(session.grid.describe()))}</p>"
            f"<p class='lead rules'>Rules: {html.escape(rules_sentence(prepared.rules, prepared.cash))}; "
            f"ratios annualised with {prepared.year_days:g} days a year.</p>"
            + "".join(f"<p class='lead'>note: {html.escape(note)}</p>" for note in prepared.notes)
            + "".join(f"<p class='lead'>{html.escape(line)}</p>" for line in luck_lines(result.luck)))
    best = result.best
    body = (info + figure_html(fig)
            + f"<h2>top {min(top, sweep.n_combos)}</h2>" + _table(top_rows(sweep, top), session.grid.names, columns)
            + f"<h2>best: {html.escape(params_text(best.params))}</h2>" + metrics_table(best.metrics)
            + equity_section("best combination: equity vs buy and hold, drawdown", best.equity, frame, prepared.cash))
    return _page(f"systrade optimize: {session.job.strategy_cls.strategy_name()}", session.candles.synthetic, body)


def write_optimize_report(path: str | Path, result, top: int, axes: tuple[str, str | None]) -> Path:
    return atomic_write_text(path, render_optimize_report(result, top, axes))


def render_walkforward_report(result) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from systrade.optimize.output import luck_verdicts
    from systrade.optimize.walkforward import SUMMARY_METRICS

    frame = result.candles.frame
    prepared = result.session.prepared
    equity = result.oos_equity
    names = result.session.grid.names
    index = frame.index
    starts = [index[w.split.test_start] for w in result.windows]
    chosen = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=[f"chosen {n}" for n in names])
    for row, name in enumerate(names, 1):
        chosen.add_trace(go.Scatter(x=starts, y=[w.params[name] for w in result.windows], mode="lines+markers",
                                    line=dict(shape="hv"), name=name), row=row, col=1)
    chosen.update_layout(height=140 + 130 * len(names), template="plotly_white", showlegend=False,
                         margin=dict(l=60, r=20, t=40, b=30), title="parameters chosen for each test window")
    key = METRICS[result.metric]
    kind = KIND.get(key, "ratio")
    rows = "".join(
        f"<tr><td class='num'>{i}</td><td>{index[w.split.train_start]:%Y-%m-%d}</td>"
        f"<td>{index[w.split.test_start]:%Y-%m-%d}</td><td>{index[w.split.stop - 1]:%Y-%m-%d}</td>"
        + "".join(f"<td class='num'>{html.escape(str(w.params[n]))}</td>" for n in names)
        + f"<td class='num'>{metric_text(w.in_sample.get(key), kind)}</td>"
          f"<td class='num'>{metric_text(w.out_of_sample.get(key), kind)}</td>"
          f"<td class='num'>{metric_text(w.out_of_sample.get('total_return_pct'), 'pct')}</td>"
        + "".join(f"<td>{html.escape(v.short())}</td>" for v in luck_verdicts(w.luck).values()) + "</tr>"
        for i, w in enumerate(result.windows, 1))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in
                   ["#", "train from", "test from", "test to", *names, f"in-sample {LABEL.get(key, key)}",
                    f"out-of-sample {LABEL.get(key, key)}", "out-of-sample return", "DSR", "PBO"])
    summary = "".join(f"<tr><td>{html.escape(LABEL.get(n, n))}</td>"
                      f"<td class='num'>{metric_text(result.in_sample_mean.get(n), KIND.get(n, 'ratio'))}</td>"
                      f"<td class='num'>{metric_text(result.oos_metrics.get(n), KIND.get(n, 'ratio'))}</td></tr>"
                      for n in SUMMARY_METRICS)
    body = (f"<p class='lead rules'>Rules: {html.escape(rules_sentence(prepared.rules, prepared.cash))}; "
            f"ratios annualised with {prepared.year_days:g} days a year.</p>"
            + "".join(f"<p class='lead'>note: {html.escape(note)}</p>" for note in prepared.notes)
            + "".join(f"<p class='lead'>{html.escape(line)}</p>" for line in result.summary_lines())
            + "<h2>out-of-sample equity (stitched)</h2>"
            + equity_section("out-of-sample equity (stitched) vs buy and hold, drawdown", equity, frame,
                             prepared.cash)
            + figure_html(chosen)
            + "<h2>in-sample (mean over windows) vs out-of-sample (stitched)</h2>"
            + f"<table><tr><th>metric</th><th>in-sample</th><th>out-of-sample</th></tr>{summary}</table>"
            + f"<h2>windows</h2><table><tr>{head}</tr>{rows}</table>")
    title = (f"systrade walkforward: {result.session.job.strategy_cls.strategy_name()} on {result.candles.symbol} "
             f"{result.candles.timeframe}")
    return _page(title, result.candles.synthetic, body)


def write_walkforward_report(path: str | Path, result) -> Path:
    return atomic_write_text(path, render_walkforward_report(result))
