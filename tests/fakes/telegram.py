"""Local fakes of Telegram's Bot API and of a generic webhook receiver, for notification tests.

Why: the notifier must be tested with the HTTP client it really uses (httpx),
against servers that answer like the real ones, fail on demand, and never
leave 127.0.0.1. Both fakes run a ``ThreadingHTTPServer`` on 127.0.0.1 (random
free port) in a daemon thread, like ``tests/fakes/binance.py``::

    with FakeTelegram() as tg:               # token "123456:ABC-fake-token", chat "42"
        httpx.post(f"{tg.url}/bot{tg.token}/sendMessage", json={"chat_id": "42", "text": "hi"})
        assert tg.messages == [("42", "hi", None)]

``tg.url`` is the base URL, what systrade's ``api_url`` setting points at;
``tg.method_url("sendMessage")`` is ``f"{tg.url}/bot{tg.token}/sendMessage"``.

FakeTelegram
------------
Serves ``/bot<token>/<method>`` for GET and POST (as Telegram does), with
parameters from the query string and from a JSON (``application/json``) or
form (``application/x-www-form-urlencoded``) body; multipart is not served.
Method names are matched case-insensitively, like Telegram.

* ``sendMessage`` (chat_id, text, parse_mode, disable_web_page_preview):
  ``{"ok": true, "result": {"message_id", "from", "chat": {"id", "type"}, "date", "text"}}``
  (``text`` is the text as the user sees it: tags removed, entities decoded).
  Accepted calls are appended to ``fake.messages`` as
  ``SentMessage(chat_id: str, text: str, parse_mode: str | None)`` (a
  NamedTuple, so it compares equal to a plain 3-tuple); every parameter as
  received (e.g. ``disable_web_page_preview``, JSON types kept) is in
  ``fake.requests[i].params``.
  Errors, checked in this order (``{"ok": false, "error_code", "description"}``):

  - token other than ``fake.token`` (any method) -> 401 ``Unauthorized``
  - unknown method -> 404 ``Not Found``
  - body declared JSON but not JSON -> 400 ``Bad Request: can't parse JSON`` (the fake's wording)
  - chat_id missing -> 400 ``Bad Request: chat_id is empty``
  - chat_id other than ``fake.chat_id`` -> 400 ``Bad Request: chat not found``
  - parse_mode not HTML/Markdown/MarkdownV2 (any case) -> 400 ``Bad Request: unsupported parse_mode``
  - parse_mode HTML and the text is not valid Telegram HTML -> 400
    ``Bad Request: can't parse entities: <detail>``. Valid: tags from
    ``fake.html_tags`` (default b, i, u, s, code, pre, a; real Telegram also
    takes strong, em, ins, strike, del, span, tg-spoiler, tg-emoji and
    blockquote, so the fake is STRICTER), properly nested and closed, no
    attributes on closing tags; ``&`` only as ``&lt;`` ``&gt;`` ``&amp;``
    ``&quot;`` or a numeric entity (``&#39;``, ``&#x27;``: what
    ``html.escape`` produces); a bare ``>`` is fine. Markdown modes are
    not validated.
  - text empty (after parsing) -> 400 ``Bad Request: message text is empty``
  - text longer than 4096 characters after entity parsing (tags not
    counted, ``&amp;`` counts 1) -> 400 ``Bad Request: message is too long``

* ``getUpdates`` (offset, limit, timeout): the updates queued with
  ``fake.send_command(text, chat_id=None, from_id=None)`` as
  ``{"ok": true, "result": [{"update_id", "message": {"message_id", "from",
  "chat": {"id"}, "date", "text", "entities"?}}]}``. Updates with an
  ``update_id`` below ``offset`` are confirmed and dropped for good; a
  negative offset keeps only the last ``-offset`` updates (Telegram's rule).
  With ``timeout`` > 0 it long-polls: answers as soon as an update at or
  above ``offset`` is queued, else ``[]`` after ``timeout`` seconds (give
  the client a longer read timeout). Concurrent pollers are NOT answered
  409 Conflict as Telegram would.
* ``getMe``: the bot (id = the number before ``:`` in the token).

FakeWebhook
-----------
``POST`` on any path -> 200 ``{"ok": true}`` and
``fake.received.append(Delivery(path, headers, body))`` where ``headers`` is a
dict with lower-case names and ``body`` the parsed JSON (None if the body is
not JSON; the raw bytes are in ``fake.requests[i].body``). Other methods ->
405, recorded in ``fake.requests`` only.

Faults (both fakes)
-------------------
``fake.fail(kind, path_prefix="", count=1, *, retry_after=None, slow_seconds=None)``
queues ``count`` faults for requests whose path starts with ``path_prefix``
(for FakeTelegram also matched against the part after ``/bot<token>``, so
``"/sendMessage"`` works; any token, also a wrong one). A request takes the
oldest queued fault that matches; faults are applied BEFORE the request is
looked at (no message is recorded for a faulted sendMessage, except "slow",
which answers normally after the delay)::

    "429"   Telegram: 429 {"ok": false, "error_code": 429,
                           "description": "Too Many Requests: retry after N",
                           "parameters": {"retry_after": N}}  (no Retry-After header)
            webhook:  429 text/plain "Too Many Requests" with header Retry-After: N
            N = retry_after of the fault, else fake.retry_after (default 1)
    "500"   Telegram: 500 {"ok": false, "error_code": 500, "description": "Internal Server Error"}
            webhook:  500 text/plain
    "502"   both: 502 with an nginx-like HTML page (Telegram's front end answers so)
    "400"   Telegram: 400 {"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}
            webhook:  400 text/plain  (a client error: do not retry)
    "slow"  the normal answer, after slow_seconds of the fault, else fake.slow_seconds (default 3)
    "drop"  the request is read, then the connection is closed without an answer
            -> httpx raises httpx.RemoteProtocolError ("Server disconnected
               without sending a response."), asserted in tests/test_fake_telegram.py

``fake.requests`` lists every request, faulted ones included, as
``RecordedRequest(method, path, params, body, time, wall_time, fault, status)``;
``time`` is ``time.monotonic()`` at arrival (for retry spacing), ``status``
stays None for "drop" and until a "slow" one is answered.

Secrets: nothing is ever logged or printed (per-request logging and error
reports are silenced; ``repr`` does not show the token). The recording does
hold the token (in paths), which is fine for a fake one.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from .http import LocalFake, QuietServer, TrackedHandler

FAULT_KINDS: tuple[str, ...] = ("429", "500", "502", "slow", "drop", "400")
MAX_MESSAGE_LENGTH = 4096
DEFAULT_TOKEN = "123456:ABC-fake-token"
DEFAULT_CHAT_ID = "42"
HTML_TAGS: frozenset[str] = frozenset({"b", "i", "u", "s", "code", "pre", "a"})
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
_ATTRS_RE = re.compile(r"""(?:\s+[a-zA-Z_-]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>]+))*\s*""")
_BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class HtmlError(ValueError):
    """Text that Telegram would refuse with "can't parse entities"."""


def parse_telegram_html(text: str, tags: frozenset[str] = HTML_TAGS) -> str:
    """The text a user sees for ``text`` sent with parse_mode HTML, or raise HtmlError (see module doc)."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "&":
            m = _ENTITY_RE.match(text, i)
            if m is None:
                raise HtmlError(f"Character entity expected at byte offset {len(text[:i].encode())}")
            if m.group(1):
                out.append(_NAMED_ENTITIES[m.group(1)])
            else:
                code = int(m.group(2)) if m.group(2) else int(m.group(3), 16)
                if code > 0x10FFFF:
                    raise HtmlError(f"Invalid character entity at byte offset {len(text[:i].encode())}")
                out.append(chr(code))
            i = m.end()
        elif ch == "<":
            offset = len(text[:i].encode())
            m = _TAG_RE.match(text, i)
            if m is None:
                raise HtmlError(f'Unsupported start tag "" at byte offset {offset}')
            closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
            if closing:
                if attrs.strip():
                    raise HtmlError(f'Unexpected end tag at byte offset {offset}')
                if not stack or stack[-1] != name:
                    raise HtmlError(f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1]}>", '
                                    f'found "</{name}>"' if stack else f"Unexpected end tag at byte offset {offset}")
                stack.pop()
            else:
                if name not in tags:
                    raise HtmlError(f'Unsupported start tag "{name}" at byte offset {offset}')
                if _ATTRS_RE.fullmatch(attrs) is None:
                    raise HtmlError(f"Can't parse attributes of \"{name}\" at byte offset {offset}")
                stack.append(name)
            i = m.end()
        else:
            out.append(ch)
            i += 1
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


@dataclass
class RecordedRequest:
    """One request as the fake saw it (``status`` None for "drop" and until a "slow" one is answered)."""

    method: str
    path: str
    params: dict[str, Any]  # query string plus parsed JSON/form body (FakeTelegram); query only (FakeWebhook)
    body: bytes
    time: float  # time.monotonic() at arrival: use differences for retry spacing
    wall_time: float  # time.time() at arrival
    fault: str | None = None
    status: int | None = None


class SentMessage(NamedTuple):
    """One accepted sendMessage call."""

    chat_id: str
    text: str  # as sent (HTML source for parse_mode HTML)
    parse_mode: str | None


class Delivery(NamedTuple):
    """One POST the webhook fake accepted."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, None if the body was not JSON


@dataclass
class _Fault:
    kind: str
    prefix: str
    remaining: int
    retry_after: int | None
    slow_seconds: float | None


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


def _json_answer(status: int, payload: Any) -> _Answer:
    return _Answer(status, json.dumps(payload, ensure_ascii=False).encode())


def _tg_error(code: int, description: str, **extra: Any) -> _Answer:
    return _json_answer(code, {"ok": False, "error_code": code, "description": description, **extra})


class _Handler(TrackedHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: request lines carry the bot token."""

    def log_error(self, format: str, *args: Any) -> None:
        """Silenced too (malformed request lines would be echoed)."""

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = fake._take_fault(split.path)
        rec = RecordedRequest(
            method=method,
            path=split.path,
            params=dict(parse_qsl(split.query, keep_blank_values=True)),
            body=body,
            time=time.monotonic(),
            wall_time=time.time(),
            fault=fault.kind if fault else None,
        )
        fake._record(rec)
        try:
            if fault is not None and fault.kind == "drop":
                self._drop()
                return
            if fault is not None and fault.kind == "slow":
                delay = fault.slow_seconds if fault.slow_seconds is not None else fake.slow_seconds
                if fake._stopping.wait(delay):
                    self._drop()
                    return
                fault = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = fake._fault_answer(fault) if fault is not None else fake._handle(rec, headers)
            self._send(rec, answer)
        except OSError:  # the client gave up (timeout) or went away
            self.close_connection = True

    def _send(self, rec: RecordedRequest, answer: _Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for k, v in (answer.headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        rec.status = answer.status
        self.wfile.write(answer.body)


class _FakeServer(LocalFake):
    """Request recording and the fault queue shared by both fakes (lifecycle: ``LocalFake``)."""

    handler_class = _Handler

    def __init__(self, *, retry_after: int = 1, slow_seconds: float = 3.0) -> None:
        self.retry_after = retry_after  # N of "429" faults without their own
        self.slow_seconds = slow_seconds  # delay of "slow" faults without their own
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)  # notified when state changes (long polls wait on it)
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- faults
    def fail(
        self,
        kind: str,
        path_prefix: str = "",
        count: int = 1,
        *,
        retry_after: int | None = None,
        slow_seconds: float | None = None,
    ) -> None:
        """Queue ``count`` faults of ``kind`` for requests whose path starts with ``path_prefix``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        with self._lock:
            self._faults.append(_Fault(kind, path_prefix, count, retry_after, slow_seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many queued faults no request has taken yet."""
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def _fault_paths(self, path: str) -> tuple[str, ...]:
        return (path,)

    def _take_fault(self, path: str) -> _Fault | None:
        candidates = self._fault_paths(path)
        with self._lock:
            for fault in self._faults:
                if any(p.startswith(fault.prefix) for p in candidates):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _fault_answer(self, fault: _Fault) -> _Answer:
        raise NotImplementedError

    def _handle(self, rec: RecordedRequest, headers: dict[str, str]) -> _Answer:
        raise NotImplementedError

    # -------------------------------------------------------- recording
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, faulted ones included, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)

    # -------------------------------------------------------- lifecycle
    def _on_start(self) -> None:
        self._stopping.clear()

    def _on_stop(self) -> None:
        self._stopping.set()  # wakes "slow" handlers
        with self._cond:
            self._cond.notify_all()  # wakes long polls


def _chat_json(chat_id: str) -> int | str:
    """Chat ids are integers in Telegram's JSON; keep anything else (e.g. "@channel") as given."""
    return int(chat_id) if re.fullmatch(r"-?[0-9]+", chat_id) else chat_id


class FakeTelegram(_FakeServer):
    """Fake Telegram Bot API (sendMessage, getUpdates, getMe) for one bot and one chat; see the module doc."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        chat_id: str = DEFAULT_CHAT_ID,
        *,
        retry_after: int = 1,
        slow_seconds: float = 3.0,
    ) -> None:
        super().__init__(retry_after=retry_after, slow_seconds=slow_seconds)
        self.token = token
        self.chat_id = str(chat_id)
        self.html_tags: frozenset[str] = HTML_TAGS
        self._messages: list[SentMessage] = []
        self._updates: list[dict[str, Any]] = []  # queued, not yet confirmed
        self._next_update_id = 100_000_001
        self._next_message_id = 1
        bot_id = token.split(":", 1)[0]
        self.bot = {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "Fake Bot",
            "username": "fake_systrade_bot",
        }

    def __repr__(self) -> str:  # never show the token
        state = self.url if self._server is not None else "stopped"
        return f"<FakeTelegram {state} chat_id={self.chat_id!r}>"

    def method_url(self, method: str) -> str:
        """``f"{url}/bot{token}/{method}"``."""
        return f"{self.url}/bot{self.token}/{method}"

    @property
    def messages(self) -> list[SentMessage]:
        """Accepted sendMessage calls in order (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates queued and not yet confirmed by an ``offset`` (a copy)."""
        with self._lock:
            return [dict(u) for u in self._updates]

    def send_command(self, text: str, chat_id: str | int | None = None, from_id: int | None = None) -> dict[str, Any]:
        """Queue an incoming message (e.g. "/status") for getUpdates; returns the update.

        ``chat_id`` defaults to ``fake.chat_id``; ``from_id`` to the chat id
        (a private chat's id is the user's id), or 1001 if that is not a number.
        """
        chat = str(chat_id) if chat_id is not None else self.chat_id
        chat_json = _chat_json(chat)
        if from_id is None:
            from_id = chat_json if isinstance(chat_json, int) else 1001
        with self._cond:
            message: dict[str, Any] = {
                "message_id": self._next_message_id,
                "from": {"id": from_id, "is_bot": False, "first_name": "Tester", "language_code": "en"},
                "chat": {"id": chat_json, "type": "private" if chat_json == from_id else "group"},
                "date": int(time.time()),
                "text": text,
            }
            command = re.match(r"/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?", text)
            if command:
                message["entities"] = [{"offset": 0, "length": len(command.group()), "type": "bot_command"}]
            update = {"update_id": self._next_update_id, "message": message}
            self._next_update_id += 1
            self._next_message_id += 1
            self._updates.append(update)
            self._cond.notify_all()
        return update

    # ---------------------------------------------------------- serving
    def _split(self, path: str) -> tuple[str, str] | None:
        m = re.fullmatch(r"/bot([^/]*)/([^/]+)/?", path)
        return (m.group(1), m.group(2)) if m else None

    def _fault_paths(self, path: str) -> tuple[str, ...]:
        m = re.match(r"/bot[^/]*(/.*)", path)
        return (path, m.group(1)) if m else (path,)

    def _fault_answer(self, fault: _Fault) -> _Answer:
        if fault.kind == "429":
            n = fault.retry_after if fault.retry_after is not None else self.retry_after
            return _tg_error(429, f"Too Many Requests: retry after {n}", parameters={"retry_after": n})
        if fault.kind == "500":
            return _tg_error(500, "Internal Server Error")
        if fault.kind == "502":
            return _Answer(502, _BAD_GATEWAY_HTML, "text/html")
        if fault.kind == "400":
            return _tg_error(400, "Bad Request: chat not found")
        raise AssertionError(fault.kind)

    def _handle(self, rec: RecordedRequest, headers: dict[str, str]) -> _Answer:
        parts = self._split(rec.path)
        if parts is None or rec.method not in ("GET", "POST"):
            return _tg_error(404, "Not Found")
        token, method = parts
        if token != self.token:
            return _tg_error(401, "Unauthorized")
        params: dict[str, Any] = dict(rec.params)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if rec.body:
            if ctype == "application/json":
                try:
                    data = json.loads(rec.body)
                except ValueError:
                    return _tg_error(400, "Bad Request: can't parse JSON")
                if not isinstance(data, dict):
                    return _tg_error(400, "Bad Request: can't parse JSON")
                params.update(data)
            elif ctype == "application/x-www-form-urlencoded" or not ctype:
                params.update(parse_qsl(rec.body.decode("utf-8", "replace"), keep_blank_values=True))
        rec.params = params
        handler = {
            "sendmessage": self._send_message,
            "getupdates": self._get_updates,
            "getme": self._get_me,
        }.get(method.lower())
        if handler is None:
            return _tg_error(404, "Not Found")
        return handler(params)

    def _get_me(self, params: dict[str, Any]) -> _Answer:
        return _json_answer(200, {"ok": True, "result": dict(self.bot)})

    def _send_message(self, params: dict[str, Any]) -> _Answer:
        raw_chat = params.get("chat_id")
        if raw_chat is None or str(raw_chat) == "":
            return _tg_error(400, "Bad Request: chat_id is empty")
        chat = str(raw_chat)
        if chat != self.chat_id:
            return _tg_error(400, "Bad Request: chat not found")
        text = params.get("text")
        text = "" if text is None else str(text)
        parse_mode = params.get("parse_mode") or None
        shown = text
        if parse_mode is not None:
            mode = str(parse_mode).lower()
            if mode not in ("html", "markdown", "markdownv2"):
                return _tg_error(400, "Bad Request: unsupported parse_mode")
            if mode == "html":
                try:
                    shown = parse_telegram_html(text, self.html_tags)
                except HtmlError as exc:
                    return _tg_error(400, f"Bad Request: can't parse entities: {exc}")
        if not shown.strip():
            return _tg_error(400, "Bad Request: message text is empty")
        if len(shown) > MAX_MESSAGE_LENGTH:
            return _tg_error(400, "Bad Request: message is too long")
        with self._lock:
            message_id = self._next_message_id
            self._next_message_id += 1
            self._messages.append(SentMessage(chat, text, None if parse_mode is None else str(parse_mode)))
        result = {
            "message_id": message_id,
            "from": dict(self.bot),
            "chat": {"id": _chat_json(chat), "type": "private"},
            "date": int(time.time()),
            "text": shown,
        }
        return _json_answer(200, {"ok": True, "result": result})

    def _get_updates(self, params: dict[str, Any]) -> _Answer:
        try:
            offset = int(params.get("offset") or 0)
            limit = int(params.get("limit") or 100)
            timeout = float(params.get("timeout") or 0)
        except (TypeError, ValueError):
            return _tg_error(400, "Bad Request: wrong parameter value")
        limit = min(max(limit, 1), 100)
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                if offset < 0:
                    del self._updates[: max(len(self._updates) + offset, 0)]
                    offset = self._updates[0]["update_id"] if self._updates else self._next_update_id
                elif offset > 0:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = [u for u in self._updates if u["update_id"] >= offset]
                left = deadline - time.monotonic()
                if ready or left <= 0 or self._stopping.is_set():
                    return _json_answer(200, {"ok": True, "result": ready[:limit]})
                self._cond.wait(left)


class FakeWebhook(_FakeServer):
    """Fake webhook receiver: POST on any path -> 200 {"ok": true}; see the module doc."""

    def __init__(self, *, retry_after: int = 1, slow_seconds: float = 3.0) -> None:
        super().__init__(retry_after=retry_after, slow_seconds=slow_seconds)
        self._received: list[Delivery] = []

    def __repr__(self) -> str:
        state = self.url if self._server is not None else "stopped"
        return f"<FakeWebhook {state}>"

    @property
    def received(self) -> list[Delivery]:
        """Accepted POSTs in order (a copy)."""
        with self._lock:
            return list(self._received)

    def _fault_answer(self, fault: _Fault) -> _Answer:
        if fault.kind == "429":
            n = fault.retry_after if fault.retry_after is not None else self.retry_after
            return _Answer(429, b"Too Many Requests", "text/plain", {"Retry-After": str(n)})
        if fault.kind == "500":
            return _Answer(500, b"Internal Server Error", "text/plain")
        if fault.kind == "502":
            return _Answer(502, _BAD_GATEWAY_HTML, "text/html")
        if fault.kind == "400":
            return _Answer(400, b"Bad Request", "text/plain")
        raise AssertionError(fault.kind)

    def _handle(self, rec: RecordedRequest, headers: dict[str, str]) -> _Answer:
        if rec.method != "POST":
            return _Answer(405, b"Method Not Allowed", "text/plain", {"Allow": "POST"})
        try:
            body = json.loads(rec.body) if rec.body else None
        except ValueError:
            body = None
        with self._lock:
            self._received.append(Delivery(rec.path, headers, body))
        return _json_answer(200, {"ok": True})
