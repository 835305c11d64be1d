"""The HTTP plumbing every local fake server shares.

Each fake (``FakeBinance``, ``FakeAlpaca``, ``FakeKis``, ``FakeUpbit``, ``FakeTelegram``...) runs a
``QuietServer`` on 127.0.0.1 (random free port) in a daemon thread; its handler subclasses ``TrackedHandler``
and implements only ``_serve(method)``. The fake itself mixes in ``LocalFake`` for ``start``/``stop``/``url``,
the context manager and connection tracking; it must set ``_lock`` (an ``RLock``), ``_conns`` (a set),
``_server`` and ``_thread`` (both ``None``) and name its handler class in ``handler_class``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: LocalFake, handler: type[TrackedHandler]) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, drops) are expected; and nothing may be printed (tokens in paths)."""


class TrackedHandler(BaseHTTPRequestHandler):
    """Keep-alive handler whose connections the fake tracks (so ``stop`` can unblock them).

    Subclasses implement ``_serve(method)``; ``do_<METHOD>`` is made for each of ``methods`` (others get
    the standard 501).
    """

    protocol_version = "HTTP/1.1"  # keep-alive, like the real thing
    timeout = 10  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out separately: avoid 40 ms stalls
    methods: ClassVar[tuple[str, ...]] = ("GET", "POST", "PUT", "DELETE")
    server: QuietServer

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in cls.methods:
            setattr(cls, f"do_{method}", lambda self, method=method: self._serve(method))

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr logging."""

    def _serve(self, method: str) -> None:
        raise NotImplementedError

    def _drop(self) -> None:
        """Hang up without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class LocalFake:
    """Lifecycle of a fake server: ``start``/``stop``, ``url``, ``with fake:`` and connection tracking."""

    handler_class: ClassVar[type[TrackedHandler]]
    _fake_name: ClassVar[str | None] = None  # named in "... is not running" (default: the class name)
    _lock: threading.RLock
    _conns: set[socket.socket]
    _server: QuietServer | None
    _thread: threading.Thread | None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (the server must be started)."""
        if self._server is None:
            raise RuntimeError(f"{self._fake_name or type(self).__name__} is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _on_start(self) -> None:
        """Called before the server starts."""

    def _on_stop(self) -> None:
        """Called before the server shuts down (wake waiting handlers here)."""

    def start(self) -> Self:
        if self._server is None:
            self._on_start()
            self._server = QuietServer(self, self.handler_class)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._on_stop()
        self._server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # unblocks handler threads idling on keep-alive sockets
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)
