"""Walk-forward analysis: optimize on a training window, trade the winner on the test window that follows.

Windows are laid out in time: training ``[t, t + train)`` then test ``[t + train, t + train + test)``; the next
window starts one test length later (``--anchored``: every training window starts at the data's start). The
last test window may be shorter. In-sample, each training window is swept exactly like ``optimize --start
--end`` on it, or searched (``--search random|tpe``) with its own seed derived from ``--seed`` and the window's
number (``window_seed``), so windows do not all draw the same trials. Out of sample, the chosen params get
signals computed on the training and test bars together (indicators are warm, and a signal on bar t still sees
only bars up to t) and are traded on the test bars only, starting flat with the cash the previous test window
ended with. At each seam the position is not carried: a position still open is closed at the open of the test
window's last bar, through the fill model with its fees and slippage, so every change of parameters pays the
exit (and a later entry pays its own costs). The stitched out-of-sample equity is those test windows end to
end; its metrics use the formulas of ``metrics.py``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from systrade.backtest.metrics import compute_metrics
from systrade.backtest.output import _fmt, clean
from systrade.backtest.run import buy_and_hold_pct
from systrade.config import Settings
from systrade.data.load import Candles
from systrade.durations import duration_text, parse_duration
from systrade.errors import UserError
from systrade.optimize.output import luck_verdicts
from systrade.optimize.run import SweepOptions, SweepSession
from systrade.optimize.sweep import METRICS, Detail, Window, luck
from systrade.optimize.verdicts import Verdict, efficiency_verdict

SUMMARY_METRICS = ("total_return_pct", "cagr_pct", "sharpe", "sortino", "calmar", "max_drawdown_pct",
                   "win_rate_pct", "profit_factor", "total_trades")


def span_text(span: pd.Timedelta) -> str:
    """180 days -> ``180d``; 182.625 days -> ``6mo``; 36 hours -> ``36h`` (``durations.duration_text``)."""
    return duration_text(span)


def parse_span(text: str, option: str) -> pd.Timedelta:
    """``180d`` -> 180 days; units min, h, d, w, mo, y (``durations.parse_duration``; a bare ``m`` is refused)."""
    return parse_duration(text, option)


@dataclass(frozen=True)
class Split:
    """One walk-forward step as bar positions: training ``[train_start, test_start)``, test ``[test_start, stop)``."""

    train_start: int
    test_start: int
    stop: int


def make_splits(index: pd.DatetimeIndex, train: pd.Timedelta, test: pd.Timedelta, anchored: bool) -> list[Split]:
    """Training/test windows over ``index`` (time-based; the last test window may be shorter)."""
    splits = []
    origin = index[0]
    step = 0
    while True:
        test_from = origin + train + step * test
        train_from = origin if anchored else test_from - train
        test_to = test_from + test
        a = int(index.searchsorted(train_from, "left"))
        b = int(index.searchsorted(test_from, "left"))
        c = int(index.searchsorted(test_to, "left"))
        if b >= len(index):
            break
        if b - a >= 2 and c - b >= 2:
            splits.append(Split(a, b, c))
        step += 1
    if not splits:
        days = (index[-1] - index[0]) / pd.Timedelta(days=1)
        raise UserError(f"the data spans {days:,.1f} days, too short for one training window of {span_text(train)} "
                        f"({train / pd.Timedelta(days=1):,.4g} days) followed by a test window of at least 2 bars; "
                        "shorten --train/--test or use more data")
    return splits


def window_seed(seed: int, number: int) -> int:
    """The seed of window ``number``'s (1, 2, ...) sampled search: a deterministic mix of ``--seed`` and the number
    (NumPy's ``SeedSequence``), the same whatever the worker count."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1, dtype=np.uint32)[0])


@dataclass
class WindowResult:
    split: Split
    params: dict[str, Any]
    in_sample: dict[str, Any]
    out_of_sample: dict[str, Any]
    oos: Detail
    luck: dict[str, Any]
    combos: int  # combinations (grid) or trials (sampled search) evaluated in sample
    seed: int | None = None  # the window's search seed (None for a grid)
    stopped: str = ""  # why the window's search ended before --trials, if it did


@dataclass
class WalkForwardResult:
    candles: Candles
    session: SweepSession
    train: pd.Timedelta
    test: pd.Timedelta
    anchored: bool
    metric: str
    windows: list[WindowResult]
    oos_equity: pd.Series
    oos_metrics: dict[str, Any]
    in_sample_mean: dict[str, Any]
    stability: dict[str, Any]
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def verdicts(self) -> dict[str, Verdict]:
        """The mean DSR and PBO over the windows and the walk-forward efficiency, in plain words."""
        scope = f" (mean over {len(self.windows)} windows)"
        stats = {"deflated_sharpe": _mean([w.luck["deflated_sharpe"] for w in self.windows]),
                 "pbo": _mean([w.luck["pbo"] for w in self.windows]), "n_trials": self.windows[0].combos}
        return {**luck_verdicts(stats, scope),
                "efficiency": efficiency_verdict(self.stability["efficiency"], self.oos_metrics.get("cagr_pct"),
                                                 self.in_sample_mean.get("cagr_pct"))}

    def summary_lines(self) -> list[str]:
        key = METRICS[self.metric]
        verdicts = self.verdicts()
        lines = [
            f"{len(self.windows)} windows; out-of-sample {key}: {_fmt(self.oos_metrics.get(key))} "
            f"(stitched), in-sample mean: {_fmt(self.in_sample_mean.get(key))}",
            f"out-of-sample return {_fmt(self.oos_metrics['total_return_pct'], '%')}, max drawdown "
            f"{_fmt(self.oos_metrics['max_drawdown_pct'], '%')}",
            verdicts["efficiency"].text,
            verdicts["deflated_sharpe"].text,
            verdicts["pbo"].text,
        ]
        for number, w in enumerate(self.windows, 1):
            if w.stopped:
                lines.append(f"window {number}: the search stopped at {w.combos:,} trials: {w.stopped}")
        for name, info in self.stability["params"].items():
            lines.append(f"param {name}: {info['distinct']} distinct value(s) in {len(self.windows)} windows, "
                         f"most often {info['mode']!r} ({info['mode_share'] * 100:.0f}%), "
                         f"{info['changes']} change(s)")
        return lines


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def param_stability(params: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    """How stable the chosen params are across windows: distinct values, the mode and its share, changes,
    and for numbers the mean, standard deviation and coefficient of variation."""
    out: dict[str, Any] = {}
    for name in names:
        values = [p[name] for p in params]
        counts = Counter(values)
        mode, mode_count = max(counts.items(), key=lambda kv: (kv[1], -values.index(kv[0])))
        info: dict[str, Any] = {"values": values, "distinct": len(counts), "mode": mode,
                                "mode_share": mode_count / len(values),
                                "changes": sum(1 for a, b in zip(values, values[1:], strict=False) if a != b)}
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            arr = np.asarray(values, dtype=float)
            mean = float(arr.mean())
            std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
            info.update(mean=mean, std=std, cv=std / abs(mean) if mean else math.nan)
        out[name] = info
    return out


def stitch(windows: list[WindowResult], year_days: float, bar_seconds: float) -> tuple[pd.Series, dict[str, Any]]:
    """The out-of-sample equity end to end and its metrics (trades of every test window)."""
    equity = pd.concat([w.oos.equity for w in windows])
    pnls = np.concatenate([w.oos.closed_pnls for w in windows])
    fees = float(sum(w.oos.fees for w in windows))
    exposure = sum(w.oos.exposed_bars for w in windows) / len(equity)
    metrics = compute_metrics(equity.to_numpy(), bar_seconds, pnls, fees, exposure, year_days)
    closed = len(pnls)
    open_trades = sum(w.oos.open_trades for w in windows)
    metrics.update(total_trades=closed + open_trades, closed_trades=closed, open_trades=open_trades)
    return equity, metrics


def run_walkforward(options: SweepOptions, settings: Settings, train: pd.Timedelta, test: pd.Timedelta,
                    anchored: bool) -> WalkForwardResult:
    """Every window: sweep the training part, trade the winner on the test part; then stitch and summarise."""
    import time

    started = time.perf_counter()
    with SweepSession(options, settings) as session:
        job = session.job
        frame = session.candles.frame
        splits = make_splits(frame.index, train, test, anchored)
        windows: list[WindowResult] = []
        cash = job.cash
        for number, split in enumerate(splits, 1):
            train_window = Window(split.train_start, split.train_start, split.test_start)
            label = f"window {number}/{len(splits)}"
            seed = None if session.space is None else window_seed(options.seed, number)
            sweep = session.sweep(train_window, label) if seed is None else session.search(train_window, label, seed)
            best = sweep.best
            in_sample = session.detail(best, train_window)
            stats = luck(sweep, in_sample)
            oos = session.detail(best, Window(split.train_start, split.test_start, split.stop), cash=cash,
                         exit_at_end=True)
            cash = float(oos.equity.iloc[-1])
            windows.append(WindowResult(split, in_sample.params, in_sample.metrics, oos.metrics, oos, stats,
                                        sweep.n_combos, seed, getattr(session.grid, "stopped", "")))
    equity, oos_metrics = stitch(windows, job.year_days, job.bar_seconds)
    oos_metrics["buy_and_hold_return_pct"] = buy_and_hold_pct(frame.iloc[splits[0].test_start:splits[-1].stop])
    is_mean = {name: _mean([w.in_sample[name] for w in windows]) for name in SUMMARY_METRICS}
    stability = {"params": param_stability([w.params for w in windows], session.grid.names)}
    is_cagr = is_mean["cagr_pct"]
    stability["efficiency"] = (oos_metrics["cagr_pct"] / is_cagr if is_cagr and math.isfinite(is_cagr)
                               else math.nan)
    return WalkForwardResult(session.candles, session, train, test, anchored, options.metric, windows, equity,
                             oos_metrics, is_mean, stability, time.perf_counter() - started)


def walkforward_payload(result: WalkForwardResult) -> dict[str, Any]:
    """The ``--json`` document of ``systrade walkforward`` (schema in docs/optimize.md)."""
    index = result.candles.frame.index
    windows = []
    for w in result.windows:
        s = w.split
        windows.append({
            "train_start": index[s.train_start], "train_end": index[s.test_start - 1],
            "test_start": index[s.test_start], "test_end": index[s.stop - 1],
            "combos": w.combos, "params": w.params,
            **({} if w.seed is None else {"trials": w.combos, "seed": w.seed, "stopped": w.stopped or None}),
            "in_sample": w.in_sample, "out_of_sample": w.out_of_sample,
            "deflated_sharpe": w.luck["deflated_sharpe"], "pbo": w.luck["pbo"],
            "verdicts": {name: v.to_dict() for name, v in luck_verdicts(w.luck).items()},
        })
    session = result.session
    payload = {
        "strategy": session.job.strategy_cls.strategy_name(),
        "symbol": result.candles.symbol,
        "timeframe": result.candles.timeframe,
        "metric": result.metric,
        "train": span_text(result.train), "test": span_text(result.test), "anchored": result.anchored,
        "search": session.options.search,
        "grid": session.grid.describe(),
        "combos": len(session.grid) if session.space is None else None,
        **({} if session.space is None else {"trials": session.n_planned, "seed": session.options.seed}),
        "windows": windows,
        "out_of_sample": result.oos_metrics,
        "in_sample_mean": result.in_sample_mean,
        "param_stability": result.stability["params"],
        "efficiency": result.stability["efficiency"],
        "deflated_sharpe": _mean([w.luck["deflated_sharpe"] for w in result.windows]),
        "pbo": _mean([w.luck["pbo"] for w in result.windows]),
        "verdicts": {name: v.to_dict() for name, v in result.verdicts().items()},
        "oos_equity": {"time": list(result.oos_equity.index), "equity": result.oos_equity.to_list()},
        "elapsed_s": result.elapsed_s,
        "initial_cash": session.prepared.cash,
        "year_days": session.prepared.year_days,
        "year_days_source": session.prepared.year_days_source,
        "rules": session.prepared.rules.to_dict(),
        "data_source": result.candles.note,
        "synthetic": result.candles.synthetic,
    }
    return clean(payload)


def walkforward_tables(result: WalkForwardResult) -> list[Table]:
    """Per-window table (params, in-sample vs out-of-sample) and the stitched summary."""
    key = METRICS[result.metric]
    index = result.candles.frame.index
    session = result.session
    names = session.grid.names
    sampled = session.space is not None
    searched = (f"{session.options.search} search, {session.n_planned:,} trials per window, seed "
                f"{session.options.seed}" if sampled else "grid search")
    windows = Table(title=f"walk-forward {session.job.strategy_cls.strategy_name()} on "
                          f"{result.candles.symbol} {result.candles.timeframe}: train {span_text(result.train)}, test "
                          f"{span_text(result.test)}{', anchored' if result.anchored else ''}; {searched}")
    for column in ("#", "test from", "test to", "trials" if sampled else "combos", *names, f"IS {key}",
                   f"OOS {key}", "OOS return %", "DSR", "PBO"):
        windows.add_column(column, justify="right")
    for number, w in enumerate(result.windows, 1):
        windows.add_row(str(number), str(index[w.split.test_start].date()), str(index[w.split.stop - 1].date()),
                        f"{w.combos:,}", *[str(w.params[n]) for n in names], _fmt(w.in_sample.get(key)),
                        _fmt(w.out_of_sample.get(key)), _fmt(w.out_of_sample.get("total_return_pct")),
                        *[v.short() for v in luck_verdicts(w.luck).values()])
    summary = Table(title="in-sample (mean over windows) vs out-of-sample (stitched)")
    summary.add_column("metric")
    summary.add_column("in-sample", justify="right")
    summary.add_column("out-of-sample", justify="right")
    for name in SUMMARY_METRICS:
        summary.add_row(name, _fmt(result.in_sample_mean.get(name)), _fmt(result.oos_metrics.get(name)))
    return [windows, summary]
