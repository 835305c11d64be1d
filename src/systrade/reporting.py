"""The words and tables of the HTML reports (backtest, optimize, walk-forward): the rules in a sentence, metrics
and trades formatted for people, and the page around the figures with plotly.js embedded once."""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import html
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from systrade.charts import number, percent, price_decimals

if TYPE_CHECKING:
    from systrade.sim.rules import PositionRules

STYLE = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1400px;
  padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{margin-top:1.2em}
p.lead{color:#444;margin:.3em 0} .synthetic{color:#b00;font-weight:bold}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #e3e3e3;padding:3px 8px} th{background:#f6f6f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.win{color:#1a7f37} td.loss{color:#c62828}
table.metrics{display:inline-table;margin-right:2em;vertical-align:top} table.metrics td:first-child{color:#555}
table.monthly td{text-align:right;min-width:3.5em;font-variant-numeric:tabular-nums}
table.trades{font-size:12px}
div.scroll{max-height:32em;overflow:auto;display:inline-block}
"""

METRIC_LABELS = [  # (field, label, kind): kind money | pct | ratio | count
    ("final_equity", "Final equity", "money"),
    ("total_return_pct", "Total return", "pct"),
    ("buy_and_hold_return_pct", "Buy and hold return", "pct"),
    ("cagr_pct", "CAGR (annual growth)", "pct"),
    ("max_drawdown_pct", "Max drawdown", "pct"),
    ("sharpe", "Sharpe ratio", "ratio"),
    ("sortino", "Sortino ratio", "ratio"),
    ("calmar", "Calmar ratio", "ratio"),
    ("win_rate_pct", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"),
    ("expectancy", "Expectancy (mean P&L a trade)", "money"),
    ("exposure_pct", "Exposure (time in the market)", "pct"),
    ("fees_paid", "Fees paid", "money"),
    ("total_trades", "Trades", "count"),
    ("closed_trades", "Closed trades", "count"),
    ("open_trades", "Open trades", "count"),
]


def fraction_text(fraction: float) -> str:
    """A rate given as a fraction in percent: 0.001 -> ``0.10 %``, 0.00075 -> ``0.075 %``."""
    value = fraction * 100.0
    for decimals in (2, 3, 4):
        if abs(round(value, decimals) - value) < 1e-12:
            break
    return f"{value:,.{decimals}f} %"


def amount_text(value: float) -> str:
    """A quantity (units, a lot) to 6 significant digits, without trailing zeros: 1,234.57, 0.001, 100.158."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if abs(value) >= 1e6:
        return f"{value:,.0f}"
    return f"{value:,.6g}"


def rules_sentence(rules: PositionRules, cash: float | None = None) -> str:
    """The run's rules and costs in words: ``long only; each entry uses all the available cash; fees 0.10 % per
    fill, slippage 0.05 %; no stop loss, no take profit; starting cash 10,000.00``."""
    direction = {"long": "long only", "short": "short only",
                 "both": "long and short (an opposite signal reverses the position)"}[rules.direction]
    if rules.size == "all":
        size = "each entry uses all the available cash"
    elif rules.size_type == "percent":
        size = f"each entry uses {number(rules.size, 2).rstrip('0').rstrip('.')} % of the available cash"
    elif rules.size_type == "amount":
        size = f"each entry is {amount_text(rules.size)} units"
    else:
        size = f"each entry is worth {number(rules.size, 2)} in the quote currency"
    if rules.sell_fees is None or rules.sell_fees == rules.fees:
        fees = f"fees {fraction_text(rules.fees)} per fill"
    else:
        fees = f"fees {fraction_text(rules.fees)} on buys and {fraction_text(rules.sell_fees)} on sells"
    costs = f"{fees}, slippage {fraction_text(rules.slippage)}"
    stop = (f"stop loss {fraction_text(rules.stop_loss)} from the entry price" if rules.stop_loss
            else "no stop loss")
    take = (f"take profit {fraction_text(rules.take_profit)} from the entry price" if rules.take_profit
            else "no take profit")
    parts = [direction, size, costs, f"{stop}, {take}"]
    market = [f"{label} {amount_text(value)}" for label, value in
              (("lot", rules.granularity), ("price tick", rules.tick), ("minimum amount", rules.min_amount),
               ("minimum order value", rules.min_cost)) if value is not None]
    if rules.cost_step is not None:
        market.append(f"market buys rounded down to {amount_text(rules.cost_step)} of the quote currency")
    if market:
        parts.append("market rules: " + ", ".join(market))
    if cash is not None:
        parts.append(f"starting cash {number(cash, 2)}")
    return "; ".join(parts)


def params_text(params: dict[str, Any]) -> str:
    """``fast = 10, slow = 30`` (or ``no parameters``)."""
    return ", ".join(f"{name} = {value}" for name, value in params.items()) or "no parameters"


def metric_text(value: Any, kind: str) -> str:
    if kind == "pct":
        return percent(value, 2)
    if kind == "count":
        return "n/a" if value is None else f"{int(value):,}"
    return number(value, 2)


def metrics_table(metrics: dict[str, Any], fields: Iterable[tuple[str, str, str]] = METRIC_LABELS) -> str:
    """Label and value of each metric present, in two tables side by side (returns and risk, then trades)."""
    rows = [f"<tr><td>{html.escape(label)}</td><td class='num'>{metric_text(metrics.get(name), kind)}</td></tr>"
            for name, label, kind in fields if name in metrics]
    half = (len(rows) + 1) // 2
    return "".join(f"<table class='metrics'>{''.join(part)}</table>" for part in (rows[:half], rows[half:]) if part)


def _time_text(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"


def trades_table(trades: pd.DataFrame, prices: Any = None) -> str:
    """The trade list for people: times to the minute, prices in the market's decimals, P&L signed and coloured."""
    if trades.empty:
        return "<p>No trades.</p>"
    decimals = price_decimals(prices if prices is not None else trades["entry_price"])
    head = ["#", "direction", "entry time", "entry price", "exit time", "exit price", "size", "P&L", "return",
            "fees", "exit reason"]
    rows = []
    for i, trade in enumerate(trades.itertuples(index=False), 1):
        pnl = float(trade.pnl)
        tone = "win" if pnl > 0 else "loss"
        cells = [f"<td class='num'>{i}</td>", f"<td>{html.escape(str(trade.direction))}</td>",
                 f"<td>{_time_text(trade.entry_time)}</td>",
                 f"<td class='num'>{number(trade.entry_price, decimals)}</td>",
                 f"<td>{_time_text(trade.exit_time)}</td>",
                 f"<td class='num'>{'' if pd.isna(trade.exit_price) else number(trade.exit_price, decimals)}</td>",
                 f"<td class='num'>{amount_text(float(trade.size))}</td>",
                 f"<td class='num {tone}'>{number(pnl, 2, sign=True)}</td>",
                 f"<td class='num {tone}'>{percent(trade.return_pct, 2, sign=True)}</td>",
                 f"<td class='num'>{number(trade.fees, 2)}</td>",
                 f"<td>{html.escape(str(trade.exit_reason))}</td>"]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return (f"<div class='scroll'><table class='trades'><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def figure_html(fig) -> str:
    """A figure as an empty div and its JSON (drawn by ``page``'s loader once plotly.js is unpacked)."""
    data = fig.to_json().replace("</", "<\\/")  # a JSON string never closes the script element
    target = "figure-" + hashlib.sha1(data.encode("utf-8")).hexdigest()[:12]  # the same report, the same bytes
    return (f"<div class='figure' id='{target}'></div>"
            f"<script type='application/json' data-figure='{target}'>{data}</script>")

# plotly.js travels gzip-compressed (about a third of its 4.8 MB) and is unpacked by the browser's own
# DecompressionStream (Chrome/Edge 80+, Firefox 113+, Safari 16.4+): the report stays one offline file.
LOADER = """
(async function () {
  const note = document.getElementById("needs-browser");
  try {
    const packed = document.getElementById("plotly-js-gzip").textContent;
    const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    const code = await new Response(stream).text();
    const script = document.createElement("script");
    script.text = code;
    document.head.appendChild(script);
    for (const holder of document.querySelectorAll("script[data-figure]")) {
      const figure = JSON.parse(holder.textContent);
      Plotly.newPlot(holder.dataset.figure, figure.data, figure.layout,
                     {displaylogo: false, responsive: true});
    }
    note.remove();
  } catch (error) {
    note.textContent = "The charts could not be drawn in this browser (" + error + "); open the report in a " +
      "current Chrome, Edge, Firefox or Safari.";
  }
})();
"""


@functools.cache
def packed_plotly_js() -> str:
    """plotly.js (the version plotly.py ships), gzip-compressed and base64-encoded; the same bytes every time."""
    from plotly.offline import get_plotlyjs

    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def page(title: str, body: str, synthetic: bool = False) -> str:
    """A whole self-contained page: plotly.js embedded once (compressed), so it opens offline."""
    warning = "<p class='synthetic'>SYNTHETIC DATA: made up, not a real market.</p>" if synthetic else ""
    title = html.escape(title)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style>"
            f"</head><body><h1>{title}</h1>{warning}"
            "<p id='needs-browser' class='lead'>Drawing the charts...</p>"
            f"{body}<script type='application/octet-stream' id='plotly-js-gzip'>{packed_plotly_js()}</script>"
            f"<script>{LOADER}</script></body></html>")
