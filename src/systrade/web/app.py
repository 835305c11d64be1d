"""The dashboard's application: the checks made before it listens, and the FastAPI app reading the ledger."""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from systrade.config import Settings
from systrade.errors import UserError
from systrade.live.ledger import Ledger, sqlite_file
from systrade.web.ledger_view import open_read_only

TOKEN_VARIABLE = "SYSTRADE_WEB_TOKEN"
STATIC = Path(__file__).with_name("static")


CACHE_SECONDS = 30.0  # the longest a read of an unchanged ledger file is reused (a safety net)


@dataclass
class Dashboard:
    """What every request reads: the settings, the ledger (read-only) and the token for actions (None: read-only).

    Pages poll every few seconds; reading every fill for each answer would cost seconds per poll on a large
    ledger, so what was read is reused until the ledger's file or its write-ahead log changes (any commit
    changes one of them).
    """

    settings: Settings
    ledger: Ledger
    token: str | None
    quote: str = field(init=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.quote = next(iter(self.settings.paper.balances), "USDT")  # as `paper status` values the account

    def _ledger_version(self) -> tuple | None:
        """The SQLite ledger's and its WAL's modification times and sizes (None for other databases)."""
        path = sqlite_file(self.settings.paper.database)
        if path is None:
            return None
        version = []
        for part in (path, path.with_name(path.name + "-wal")):
            try:
                stat = os.stat(part)
                version.append((stat.st_mtime_ns, stat.st_size))
            except FileNotFoundError:
                version.append(None)
        return tuple(version)

    def cached(self, name: str, build: Callable[[], Any]) -> Any:
        """``build()``, or what it returned last while the ledger has not changed (never to be modified)."""
        version, now = self._ledger_version(), time.monotonic()
        hit = self._cache.get(name)
        if version is not None and hit is not None and hit[0] == version and now - hit[1] < CACHE_SECONDS:
            return hit[2]
        value = build()
        self._cache[name] = (version, now, value)
        return value


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def web_token() -> str | None:
    """The token that allows halt and resume, from the environment only (empty counts as unset)."""
    return os.environ.get(TOKEN_VARIABLE) or None


def check_listen(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token: anyone who reaches the port could halt the bots."""
    if not is_loopback(host) and token is None:
        raise UserError(f"--host {host} is reachable from other machines; set {TOKEN_VARIABLE} to a long random "
                        "secret first (it guards halt and resume), or listen on 127.0.0.1")


def create_app(settings: Settings, token: str | None = None, loopback: bool = True) -> FastAPI:
    """The dashboard for ``settings``' ledger (which must exist: a missing one is a ``UserError``)."""
    from systrade.web import api, pages

    dashboard = Dashboard(settings, open_read_only(settings.paper.database), token)
    app = FastAPI(title="systrade dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = dashboard
    app.add_exception_handler(api.ApiError, api.api_error)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if loopback:
        app.middleware("http")(_local_host_only)
    return app


async def _local_host_only(request: Request, call_next):
    """On a loopback address, answer only requests addressed to it (a web page elsewhere cannot reach the
    dashboard through a DNS name it points at 127.0.0.1)."""
    host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
    if not is_loopback(host):
        return JSONResponse({"error": f"host {host!r} is not served; open the dashboard at http://127.0.0.1"},
                            status_code=400)
    return await call_next(request)


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another program listens on, in one line (rather than the server's own error)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UserError(f"--host {host} is not an address of this machine ({exc}); e.g. --host 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserError(f"cannot listen on {host} port {port} ({exc.strerror or exc}); another program may use "
                            "it: pick another with --port") from None


def serve(settings: Settings, host: str, port: int) -> None:
    """Check, then listen until stopped (Ctrl-C)."""
    import uvicorn

    token = web_token()
    check_listen(host, token)
    check_port_free(host, port)
    app = create_app(settings, token, loopback=is_loopback(host))
    mode = "halt and resume need the token" if token else f"read-only ({TOKEN_VARIABLE} is not set)"
    shown = f"[{host}]" if ":" in host else host
    print(f"systrade web: http://{shown}:{port}/ ({mode}); Ctrl-C stops it", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
