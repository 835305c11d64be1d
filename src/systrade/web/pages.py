"""The dashboard's pages: plain HTML files that fetch the JSON API (no template engine, no build step), and
plotly.js served from the installed plotly package (nothing is loaded from the internet)."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from systrade.web.app import STATIC

router = APIRouter()


def _page(name: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse((STATIC / name).read_text(encoding="utf-8"), status_code=status)


@router.get("/", response_class=HTMLResponse)
def overview() -> HTMLResponse:
    return _page("overview.html")


@router.get("/trades", response_class=HTMLResponse)
def trades() -> HTMLResponse:
    return _page("trades.html")


@router.get("/events", response_class=HTMLResponse)
def events() -> HTMLResponse:
    return _page("events.html")


@router.get("/bots/{name}", response_class=HTMLResponse)
def bot(request: Request, name: str) -> HTMLResponse:
    known = {b.name for b in request.app.state.dashboard.ledger.bots()}
    return _page("bot.html", 200 if name in known else 404)


@cache
def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


@router.get("/plotly.js")
def plotly_js() -> Response:
    """The plotly.js of the installed plotly package (no CDN)."""
    return Response(_plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
