"""The JSON API under ``/api/`` (schemas in docs/web.md). ``/api/status`` and ``/api/trades`` are what
``systrade paper status --json`` and ``paper trades --json`` print, built by the same functions."""

from __future__ import annotations

import csv
import hmac
import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from systrade.errors import UserError
from systrade.live import status as ledger_status
from systrade.web import history, ledger_view

router = APIRouter(prefix="/api")
MAX_LIMIT = 5000


class ApiError(Exception):
    """An answer other than 200: its status code and a message saying what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def as_json(document: Any) -> str:
    """Strict JSON (NaN and infinities as null), as ``--json`` writes it."""
    from systrade.backtest.output import clean

    return json.dumps(clean(document), allow_nan=False)


def answer(document: Any, status: int = 200) -> Response:
    return Response(as_json(document), status_code=status, media_type="application/json")


def cached_answer(dashboard, key: str, build: Callable[[], Any]) -> Response:
    """The JSON of ``build()``, reused while the ledger (and the candle store's file, part of ``key``) is unchanged."""
    return Response(dashboard.cached(key, lambda: as_json(build())), media_type="application/json")


def _store_version(dashboard, bot: dict[str, Any]) -> str:
    from systrade.data.store import SeriesKey

    path = SeriesKey(bot["exchange"], bot["symbol"], bot["timeframe"]).path(dashboard.settings.data.dir)
    try:
        return str(path.stat().st_mtime_ns)
    except FileNotFoundError:
        return "none"


def _dashboard(request: Request):
    return request.app.state.dashboard


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, f"limit {limit} is not valid; give 1 to {MAX_LIMIT}")
    return limit


def _bot_row(dashboard, name: str) -> dict[str, Any]:
    report = _status(dashboard)
    for bot in report["bots"]:
        if bot["name"] == name:
            return bot
    known = ", ".join(b["name"] for b in report["bots"]) or "none yet"
    raise ApiError(404, f"unknown bot {name!r}; bots in the ledger: {known}")


def _status(dashboard) -> dict[str, Any]:
    ledger = dashboard.ledger
    return dashboard.cached("status", lambda: ledger_status.status(ledger, dashboard.quote,
                                                                   ledger_status.last_prices(ledger)))


def _trades(dashboard) -> list[dict[str, Any]]:
    return dashboard.cached("trades", lambda: ledger_status.trades(dashboard.ledger))


@router.get("/info")
def info(request: Request) -> Response:
    """What the pages need once: the account's currency and whether halt and resume are allowed."""
    dashboard = _dashboard(request)
    return answer({"quote": dashboard.quote, "read_only": dashboard.token is None})


@router.get("/status")
def status(request: Request) -> Response:
    """The account and every bot, as ``systrade paper status --json``."""
    return answer(_status(_dashboard(request)))


def _filtered_trades(dashboard, bot: str | None, symbol: str | None, side: str | None) -> list[dict[str, Any]]:
    rows = _trades(dashboard)
    return [r for r in reversed(rows) if (not bot or r["bot"] == bot) and (not symbol or r["symbol"] == symbol)
            and (not side or r["side"] == side)]


def _before_time(before: str | None) -> datetime | None:
    if before is None:
        return None
    try:
        moment = datetime.fromisoformat(before.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"before={before!r} is not a time; give an ISO time such as 2026-12-01T09:00:00+00:00 "
                            "(the `time` of the last trade of the previous page)") from None
    if moment.tzinfo is None:
        raise ApiError(400, f"before={before!r} has no time zone; add one, e.g. {before}+00:00")
    return moment


@router.get("/trades")
def trades(request: Request, limit: int = 500, before: str | None = None, bot: str | None = None,
           symbol: str | None = None, side: str | None = None) -> Response:
    """Fills newest first, rows as ``paper trades --json``. ``before`` is a time cursor: only fills whose ``time``
    is earlier (pass the last row's ``time`` for the next page)."""
    limit, moment = _limit(limit), _before_time(before)
    rows = _filtered_trades(_dashboard(request), bot, symbol, side)
    if moment is not None:
        rows = [r for r in rows if datetime.fromisoformat(r["time"]) < moment]
    return answer(rows[:limit])


TRADE_COLUMNS = ["time", "bot", "symbol", "side", "amount", "price", "fee", "fee_currency", "fee_quote", "bar_time",
                 "action", "exit_reason", "client_order_id"]


@router.get("/trades.csv")
def trades_csv(request: Request, bot: str | None = None, symbol: str | None = None,
               side: str | None = None) -> Response:
    """Every fill matching the filters as CSV, newest first (a spreadsheet's download)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TRADE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(_filtered_trades(_dashboard(request), bot, symbol, side))
    return Response(buffer.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="systrade-trades.csv"'})


@router.get("/events")
def events(request: Request, limit: int = 200, before: int | None = None, bot: str | None = None) -> Response:
    """The ledger's events newest first; ``before`` is an event id cursor (the last ``id`` of the previous page)."""
    return answer(ledger_view.events(_dashboard(request).ledger, _limit(limit), before, bot))


@router.get("/ticks")
def ticks(request: Request) -> Response:
    """Each bot's last tick: when, on which bar, its outcome and message."""
    return answer(ledger_view.last_ticks(_dashboard(request).ledger))


def _bot_settings(dashboard, name: str):
    return next((b for b in dashboard.settings.paper.bots if b.name == name), None)


def _bot_history(dashboard, bot: dict[str, Any], limit: int):
    """The bot's stored candles (or None), its fills and its equity curve on those candles."""
    candles = history.stored_candles(dashboard.settings.data.dir, bot["exchange"], bot["symbol"], bot["timeframe"],
                                     limit)
    fills = history.bot_fills(_trades(dashboard), bot["name"], bot["timeframe"])
    closes = candles["close"] if candles is not None else None
    return candles, fills, history.equity_curve(bot["cash"], bot["position"], fills, closes)


@router.get("/bots/{name}/candles")
def candles(request: Request, name: str, limit: int = 500) -> Response:
    """The bot's last ``limit`` stored candles with its strategy's signals and plots, its fills and round trips,
    and the figure the page draws (``figure``: Plotly JSON from ``charts.price_figure``)."""
    dashboard = _dashboard(request)
    bot, limit = _bot_row(dashboard, name), _limit(limit)
    return cached_answer(dashboard, f"candles {name} {limit} {_store_version(dashboard, bot)}",
                         lambda: _candles_document(dashboard, bot, limit))


def _candles_document(dashboard, bot: dict[str, Any], limit: int) -> dict[str, Any]:
    from systrade import charts
    from systrade.web.overlay import strategy_overlay

    name = bot["name"]
    frame, fills, _ = _bot_history(dashboard, bot, limit)
    trips = history.round_trips(fills)
    if frame is not None and len(frame):  # what falls on the candles drawn (a long history stays light)
        shown_from = frame.index[0]
        fills = fills[fills["time"] >= shown_from].reset_index(drop=True)
        trips = trips[trips["exit_time"].isna() | (pd.to_datetime(trips["exit_time"], utc=True) >= shown_from)]
        trips = trips.reset_index(drop=True)
    document: dict[str, Any] = {"bot": name, "symbol": bot["symbol"], "timeframe": bot["timeframe"],
                                "exchange": bot["exchange"], "candles": [], "signals": {}, "plots": {},
                                "fills": _records(fills), "trades": _records(trips), "note": None, "figure": None}
    if frame is None:
        document["note"] = (f"no stored candles for {bot['symbol']} {bot['timeframe']} on {bot['exchange']}; "
                            f"`systrade data download {bot['exchange']} {bot['symbol']} --timeframe "
                            f"{bot['timeframe']} --since <date>` stores them (`systrade data update` keeps them "
                            "current)")
        return document
    overlay = strategy_overlay(_bot_settings(dashboard, name), dashboard.settings.strategies.folders, frame)
    document["candles"] = [{"time": t.isoformat(), **row} for t, row in zip(frame.index, frame.to_dict("records"),
                                                                              strict=True)]
    document["signals"] = overlay["signals"]
    document["plots"] = {k: [None if v != v else v for v in s.tolist()] for k, s in overlay["plots"].items()}
    document["note"] = overlay["error"]
    figure = charts.price_figure(frame, plots=overlay["plots"] or None, trades=trips if len(trips) else None,
                                 fills=fills if len(fills) else None,
                                 title=f"{name}: {bot['symbol']} {bot['timeframe']}")
    _add_signal_markers(figure, frame, overlay["signals"])
    document["figure"] = json.loads(figure.to_json())
    return document


def _add_signal_markers(figure, frame, signals: dict[str, list[str]]) -> None:
    """The strategy's own entry and exit signals as small marks above and below the bars they were given on."""
    looks = {"entries": ("triangle-up-open", "#2e7d32", "low"), "exits": ("triangle-down-open", "#c62828", "high"),
             "short_entries": ("triangle-down-open", "#6a1b9a", "high"),
             "short_exits": ("triangle-up-open", "#ef6c00", "low")}
    for column, times in signals.items():
        if not times:
            continue
        symbol, colour, side = looks[column]
        index = pd.DatetimeIndex(times)
        epoch_ms = index.tz_convert("UTC").tz_localize(None).as_unit("ms").asi8.astype(float)  # as charts sends x
        figure.add_scatter(x=epoch_ms, y=frame.loc[index, side] * (0.997 if side == "low" else 1.003), mode="markers",
                           name=f"signal: {column.replace('_', ' ')}",
                           marker={"symbol": symbol, "size": 8, "color": colour}, row=1, col=1)


def _records(frame) -> list[dict[str, Any]]:
    """Rows of a frame as JSON objects: times as ISO strings, a missing time or value as null."""
    return [{k: None if v is None or (not isinstance(v, str) and pd.isna(v)) else
             v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
            for row in frame.to_dict("records")]


@router.get("/bots/{name}/equity")
def equity(request: Request, name: str, limit: int = 500) -> Response:
    """The bot's equity and drawdown at each stored candle's close (``figure``: ``charts.equity_figure``)."""
    dashboard = _dashboard(request)
    bot, limit = _bot_row(dashboard, name), _limit(limit)
    return cached_answer(dashboard, f"equity {name} {limit} {_store_version(dashboard, bot)}",
                         lambda: _equity_document(dashboard, bot, limit))


def _equity_document(dashboard, bot: dict[str, Any], limit: int) -> dict[str, Any]:
    from systrade import charts

    name = bot["name"]
    _, _, curve = _bot_history(dashboard, bot, limit)
    figure = charts.equity_figure(curve, title=f"{name}: equity ({bot['quote']})") if len(curve) else None
    return {"bot": name, "quote": bot["quote"], **_curve_document(curve),
            "figure": json.loads(figure.to_json()) if figure is not None else None}


def _curve_document(curve) -> dict[str, Any]:
    return {"time": [t.isoformat() for t in curve.index], "equity": curve.tolist(),
            "drawdown": history.drawdown(curve).tolist() if len(curve) else []}


@router.get("/equity")
def account_equity(request: Request, limit: int = 500) -> Response:
    """The account's equity (its bots' curves summed, plus what no bot holds) and each bot's curve."""
    dashboard, limit = _dashboard(request), _limit(limit)
    stores = " ".join(_store_version(dashboard, bot) for bot in _status(dashboard)["bots"])
    return cached_answer(dashboard, f"account {limit} {stores}", lambda: _account_document(dashboard, limit))


def _account_document(dashboard, limit: int) -> dict[str, Any]:
    from systrade import charts

    report = _status(dashboard)
    curves, total_bots = {}, 0.0
    for bot in report["bots"]:
        if bot["quote"] != dashboard.quote or bot["equity"] is None:
            continue
        curves[bot["name"]] = _bot_history(dashboard, bot, limit)[2]
        total_bots += bot["equity"]
    account = history.account_curve(list(curves.values()), report["equity"], total_bots)
    figure = charts.equity_figure(account, title=f"account equity ({dashboard.quote})") if len(account) else None
    return {"quote": dashboard.quote, **_curve_document(account),
            "bots": {name: {"time": [t.isoformat() for t in c.index], "equity": c.tolist()}
                     for name, c in curves.items()},
            "figure": json.loads(figure.to_json()) if figure is not None else None}


def _check_token(request: Request) -> None:
    token = _dashboard(request).token
    if token is None:
        raise ApiError(401, "the dashboard is read-only: start `systrade web` with SYSTRADE_WEB_TOKEN set to allow "
                            "halt and resume")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "missing or wrong token: send the header `Authorization: Bearer <SYSTRADE_WEB_TOKEN>`")


def _set_halted(request: Request, name: str, halted: bool) -> Response:
    _check_token(request)
    dashboard = _dashboard(request)
    _bot_row(dashboard, name)
    try:
        names, warnings = ledger_view.halt(dashboard.settings, name, halted)
    except UserError as exc:
        raise ApiError(409, str(exc)) from None
    return answer({"halted" if halted else "resumed": names, "warnings": warnings})


@router.post("/bots/{name}/halt")
def halt(request: Request, name: str) -> Response:
    """Stop the bot from trading until resumed, written and announced as ``systrade paper halt NAME`` does it."""
    return _set_halted(request, name, True)


@router.post("/bots/{name}/resume")
def resume(request: Request, name: str) -> Response:
    """Let the bot trade again, as ``systrade paper resume NAME``."""
    return _set_halted(request, name, False)


def api_error(_request: Request, exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)
