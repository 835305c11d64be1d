"""``systrade web``."""

from __future__ import annotations

import typer

from systrade.cli import app, settings


@app.command("web")
def web(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (beyond this machine only with "
                             "SYSTRADE_WEB_TOKEN set)."),
    port: int = typer.Option(8710, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """A dashboard of the paper bots in the browser, and a JSON API, reading the ledger while the daemon runs.

    Halt and resume need SYSTRADE_WEB_TOKEN (without it the dashboard is read-only). Exit code 2: no ledger
    yet, a non-loopback --host without the token, or a port in use.
    """
    from systrade.web.app import serve

    serve(settings(), host, port)
