"""How long the dashboard's API takes to answer as a ledger grows: the JSON the overview polls every 5 s.

A ledger with one bot and N fills (alternating buys and sells, written straight through the ledger's tables)
and 500 stored one-minute candles; the app of `systrade web` answers in-process (Starlette's test client: no
network, so the figures are the server's own work). Median of 5 requests per endpoint: "changed" is the first
answer after the ledger changed (the dashboard's reuse of what it read is emptied before each request), "same"
an answer while it has not (what a page polling an idle ledger costs). Run from the repository root:

    python benchmarks/web_api.py          # BENCH_WEB_FILLS=1000,10000 overrides the ledger sizes
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_report import code_version, machine, update_results, uptime

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

ENDPOINTS = ["/api/status", "/api/trades?limit=10", "/api/trades?limit=500", "/api/events?limit=12",
             "/api/bots/btc/candles", "/api/bots/btc/equity", "/api/equity"]


def build_ledger(folder: Path, fills: int) -> Path:
    import pandas as pd
    from paper_helpers import flat_candles
    from sqlalchemy import insert

    from systrade.data.store import SeriesKey, write_series
    from systrade.live.ledger import Fill, Ledger, Order, client_order_id

    ledger = Ledger(f"sqlite:///{folder / 'paper.sqlite'}")
    ledger.ensure_account({"USDT": 10_000.0})
    ledger.ensure_bot("btc", "sma_cross", "binance", "BTC/USDT", "1m", 10_000.0)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    orders, rows = [], []
    for i in range(fills):
        bar = start + timedelta(minutes=i)
        side = "buy" if i % 2 == 0 else "sell"
        coid = client_order_id("btc", bar)
        orders.append({"id": i + 1, "client_order_id": coid, "bot": "btc", "symbol": "BTC/USDT", "side": side,
                       "amount": 1.0, "bar_time": bar, "action": "buy" if side == "buy" else "close",
                       "status": "filled", "reason": "", "created": bar})
        rows.append({"order_id": i + 1, "client_order_id": coid, "bot": "btc", "symbol": "BTC/USDT", "side": side,
                     "amount": 1.0, "price": 100.0 + i % 7, "fee": 0.1, "fee_currency": "USDT", "fee_quote": 0.1,
                     "bar_time": bar, "time": bar + timedelta(minutes=1)})
    with ledger.engine.begin() as connection:
        connection.execute(insert(Order.__table__), orders)
        connection.execute(insert(Fill.__table__), rows)
    ledger.engine.dispose()
    candles = flat_candles(500, pd.Timestamp(start) + pd.Timedelta(minutes=max(fills - 400, 0)), "1min")
    write_series(candles, SeriesKey("binance", "BTC/USDT", "1m"), folder / "data")
    (folder / "systrade.toml").write_text(f'[data]\ndir = "{folder / "data"}"\n[paper]\n'
                                          f'database = "sqlite:///{folder / "paper.sqlite"}"\n')
    return folder / "systrade.toml"


def measure(fills: int) -> dict[str, tuple[float, float]]:
    from fastapi.testclient import TestClient

    from systrade.config import load_settings
    from systrade.web.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        config = build_ledger(Path(folder), fills)
        client = TestClient(create_app(load_settings(str(config)), None), base_url="http://127.0.0.1")
        reused = client.app.state.dashboard._cache
        figures = {}
        for path in ENDPOINTS:
            assert client.get(path).status_code == 200, path  # warm: imports, the strategy, plotly
            changed, same = [], []
            for _ in range(5):
                reused.clear()
                began = time.perf_counter()
                client.get(path)
                changed.append(time.perf_counter() - began)
                began = time.perf_counter()
                client.get(path)
                same.append(time.perf_counter() - began)
            figures[path] = (statistics.median(changed), statistics.median(same))
        client.close()
    return figures


def main() -> None:
    sizes = [int(n) for n in os.environ.get("BENCH_WEB_FILLS", "100,10000").split(",")]
    load_before = uptime()
    results = {n: measure(n) for n in sizes}
    head = "| endpoint | " + " | ".join(f"{n:,} fills: changed | same" for n in sizes) + " |"
    lines = [head, "|---" * (2 * len(sizes) + 1) + "|"]
    for path in ENDPOINTS:
        cells = [f"{results[n][path][0] * 1000:,.0f} ms | {results[n][path][1] * 1000:,.1f} ms" for n in sizes]
        lines.append(f"| `{path}` | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    body = (f"## Web dashboard: API answer times as the ledger grows (`benchmarks/web_api.py`)\n\n"
            f"{datetime.now(UTC):%Y-%m-%d}, {machine()}, {code_version()}.\n"
            "One bot, N fills, 500 stored 1m candles; in-process requests (no network), median of 5; "
            "changed: the first answer after the ledger changed; same: while it has not.\n\n"
            f"{table}\n\nLoad before: `{load_before}`; after: `{uptime()}`.\n")
    update_results("web_api", body)


if __name__ == "__main__":
    main()
