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

from systrade.backtest.output import _fmt
from systrade.errors import UserError
from systrade.fsutil import atomic_write_text
from systrade.optimize.grid import Grid
from systrade.optimize.sweep import METRICS, Sweep

STYLE = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:12px}"
         "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} .synthetic{color:#b00;font-weight:bold}")


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
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["#", *names, *columns])
    body = []
    for row in rows:
        cells = [str(row["rank"]), *[html.escape(str(row["params"][n])) for n in names],
                 *[_fmt(row.get(c)) for c in columns]]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _page(title: str, synthetic: bool, body: str) -> str:
    warning = "<p class='synthetic'>SYNTHETIC DATA: made up, not a real market.</p>" if synthetic else ""
    title = html.escape(title)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style>"
            f"</head><body><h1>{title}</h1>{warning}{body}</body></html>")


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
                      hovertemplate=f"{x}=%{{x}}<br>{y or ''}=%{{y}}<br>{sweep.metric}=%{{z}}<extra></extra>")
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
    info = (f"<p>data: {html.escape(session.candles.note)} ({session.candles.symbol} {session.candles.timeframe}, "
            f"{frame.index[0]} to {frame.index[-1]}, {len(frame):,} bars)</p>"
            f"<p>{sweep.n_combos:,} {_searched(session)}, ranked by {html.escape(sweep.metric)}; "
            f"{'grid' if session.space is None else 'space'}: "
            f"{html.escape(str(session.grid.describe()))}; rules: "
            f"{html.escape(str(session.prepared.rules.to_dict()))}; annualised with {session.prepared.year_days:g} "
            "days a year</p>"
            + "".join(f"<p>note: {html.escape(note)}</p>" for note in session.prepared.notes)
            + "".join(f"<p>{html.escape(line)}</p>" for line in luck_lines(result.luck)))
    body = (info + fig.to_html(full_html=False, include_plotlyjs=True)
            + f"<h2>top {min(top, sweep.n_combos)}</h2>" + _table(top_rows(sweep, top), session.grid.names, columns))
    return _page(f"systrade optimize: {session.job.strategy_cls.strategy_name()}", session.candles.synthetic, body)


def write_optimize_report(path: str | Path, result, top: int, axes: tuple[str, str | None]) -> Path:
    return atomic_write_text(path, render_optimize_report(result, top, axes))


def render_walkforward_report(result) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from systrade.optimize.output import luck_verdicts
    from systrade.optimize.walkforward import SUMMARY_METRICS

    frame = result.candles.frame
    equity = result.oos_equity
    first = frame.index.get_loc(equity.index[0])
    hold = result.session.prepared.cash * frame["close"].iloc[first:] / frame["open"].iloc[first]
    names = result.session.grid.names
    fig = make_subplots(rows=1 + len(names), cols=1, shared_xaxes=True,
                        row_heights=[0.6] + [0.4 / max(len(names), 1)] * len(names), vertical_spacing=0.04,
                        subplot_titles=["out-of-sample equity (stitched) vs buy and hold",
                                        *[f"chosen {n}" for n in names]])
    fig.add_trace(go.Scattergl(x=equity.index, y=equity, name="out-of-sample equity"), row=1, col=1)
    fig.add_trace(go.Scattergl(x=hold.index, y=hold, name="buy and hold", line=dict(dash="dot")), row=1, col=1)
    index = frame.index
    starts = [index[w.split.test_start] for w in result.windows]
    for row, name in enumerate(names, 2):
        fig.add_trace(go.Scatter(x=starts, y=[w.params[name] for w in result.windows], mode="lines+markers",
                                 line=dict(shape="hv"), name=name), row=row, col=1)
    fig.update_layout(height=500 + 150 * len(names), hovermode="x unified", margin=dict(l=50, r=20, t=40, b=20))
    key = METRICS[result.metric]
    rows = "".join(
        f"<tr><td>{i}</td><td>{index[w.split.train_start].date()}</td><td>{index[w.split.test_start].date()}</td>"
        f"<td>{index[w.split.stop - 1].date()}</td>"
        + "".join(f"<td>{html.escape(str(w.params[n]))}</td>" for n in names)
        + f"<td>{_fmt(w.in_sample.get(key))}</td><td>{_fmt(w.out_of_sample.get(key))}</td>"
          f"<td>{_fmt(w.out_of_sample.get('total_return_pct'))}</td>"
        + "".join(f"<td>{html.escape(v.short())}</td>" for v in luck_verdicts(w.luck).values()) + "</tr>"
        for i, w in enumerate(result.windows, 1))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in
                   ["#", "train from", "test from", "test to", *names, f"IS {key}", f"OOS {key}", "OOS return %",
                    "DSR", "PBO"])
    summary = "".join(f"<tr><td>{n}</td><td>{_fmt(result.in_sample_mean.get(n))}</td>"
                      f"<td>{_fmt(result.oos_metrics.get(n))}</td></tr>" for n in SUMMARY_METRICS)
    body = ("".join(f"<p>note: {html.escape(note)}</p>" for note in result.session.prepared.notes)
            + "".join(f"<p>{html.escape(line)}</p>" for line in result.summary_lines())
            + fig.to_html(full_html=False, include_plotlyjs=True)
            + "<h2>in-sample (mean over windows) vs out-of-sample (stitched)</h2>"
            + f"<table><tr><th>metric</th><th>in-sample</th><th>out-of-sample</th></tr>{summary}</table>"
            + f"<h2>windows</h2><table><tr>{head}</tr>{rows}</table>")
    title = (f"systrade walkforward: {result.session.job.strategy_cls.strategy_name()} on {result.candles.symbol} "
             f"{result.candles.timeframe}")
    return _page(title, result.candles.synthetic, body)


def write_walkforward_report(path: str | Path, result) -> Path:
    return atomic_write_text(path, render_walkforward_report(result))
