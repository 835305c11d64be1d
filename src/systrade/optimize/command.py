"""What ``systrade optimize`` and ``systrade walkforward`` do once their arguments are parsed."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from systrade.config import Settings
from systrade.data.load import data_notes
from systrade.errors import UserError
from systrade.fsutil import check_output_path
from systrade.optimize.run import SweepOptions


def _check_outputs(json_path: str | None, report_path: str | None) -> None:
    check_output_path(json_path, "--json")
    check_output_path(report_path, "--report")


def optimize_command(options: SweepOptions, settings: Settings, out: Console, top: int, json_path: str | None,
                     report_path: str | None, heatmap: str | None) -> None:
    from systrade.backtest.output import write_json
    from systrade.optimize.output import luck_lines, optimize_payload, top_table
    from systrade.optimize.report import heatmap_axes, write_optimize_report
    from systrade.optimize.run import run_optimize

    if top < 1:
        raise UserError(f"--top {top} is not valid; give 1 or more")
    _check_outputs(json_path, report_path)
    if heatmap is not None and report_path is None:
        raise UserError("--heatmap chooses the report's axes; add --report PATH.html")
    chosen: dict[str, tuple] = {}

    def check(session) -> None:
        if report_path:
            chosen["axes"] = heatmap_axes(session.grid, heatmap)

    result = run_optimize(options, settings, check=check)
    session, sweep = result.session, result.sweep
    axes = chosen.get("axes")
    for note in data_notes(session.candles) + session.prepared.notes:
        out.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if session.plan.note:
        out.print(f"[yellow]note:[/] {session.plan.note}", highlight=False)
    if session.grid.skipped:
        what = "proposals" if session.space is not None else "combinations"
        out.print(f"[yellow]note:[/] {session.grid.skipped:,} {what} skipped: "
                  f"{session.job.strategy_cls.strategy_name()}.valid() refuses them", highlight=False)
    if getattr(session.grid, "stopped", ""):
        out.print(f"[yellow]note:[/] the search stopped at {sweep.n_combos:,} trials: "
                  f"{escape(session.grid.stopped)}", highlight=False)
    rate = sweep.n_combos / sweep.elapsed_s if sweep.elapsed_s > 0 else float("nan")
    out.print(top_table(sweep, top, f"{session.job.strategy_cls.strategy_name()} on {session.candles.symbol} "
                                    f"{session.candles.timeframe}: top {min(top, sweep.n_combos)} of "
                                    f"{sweep.n_combos:,} by {sweep.metric}"))
    out.print(f"best: {result.best.params}", highlight=False)
    for line in luck_lines(result.luck):
        out.print(line, highlight=False)
    searched = "combinations" if session.space is None else \
        f"trials ({options.search} search, seed {options.seed})"
    out.print(f"{sweep.n_combos:,} {searched} in {sweep.elapsed_s:.2f} s ({rate:,.0f}/s; "
              f"{session.runner.workers} worker(s), {session.runner.kind}, chunks of "
              f"{session.plan.chunk_size})", highlight=False)
    if json_path:
        write_json(json_path, optimize_payload(result, top))
    if report_path:
        write_optimize_report(report_path, result, top, axes)


def walkforward_command(options: SweepOptions, settings: Settings, out: Console, train: str, test: str,
                        anchored: bool, json_path: str | None, report_path: str | None) -> None:
    from systrade.backtest.output import write_json
    from systrade.optimize.walkforward import parse_span, run_walkforward, walkforward_payload, walkforward_tables

    _check_outputs(json_path, report_path)
    train_span, test_span = parse_span(train, "--train"), parse_span(test, "--test")
    result = run_walkforward(options, settings, train_span, test_span, anchored)
    candles = result.candles
    for note in data_notes(candles) + result.session.prepared.notes:
        out.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for table in walkforward_tables(result):
        out.print(table)
    for line in result.summary_lines():
        out.print(line, highlight=False)
    if json_path:
        write_json(json_path, walkforward_payload(result))
    if report_path:
        from systrade.optimize.report import write_walkforward_report

        write_walkforward_report(report_path, result)
