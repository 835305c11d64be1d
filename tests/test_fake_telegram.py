"""tests/fakes/telegram.py: the Telegram Bot API and webhook fakes, driven with plain httpx."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.telegram import FakeTelegram, FakeWebhook, SentMessage, parse_telegram_html

TIMEOUT = httpx.Timeout(5.0)


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(slow_seconds=0.3) as fake:
        yield fake


@pytest.fixture
def hook() -> Iterator[FakeWebhook]:
    with FakeWebhook(slow_seconds=0.3) as fake:
        yield fake


def send(tg: FakeTelegram, **params: object) -> httpx.Response:
    return httpx.post(tg.method_url("sendMessage"), json={"chat_id": tg.chat_id, **params}, timeout=TIMEOUT)


# ------------------------------------------------------------- sendMessage
def test_send_message_json_is_accepted_and_recorded(tg: FakeTelegram) -> None:
    assert tg.url.startswith("http://127.0.0.1:") and "bot" not in tg.url
    r = send(tg, text="hello", disable_web_page_preview=True)
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True
    result = body["result"]
    assert result["chat"]["id"] == 42 and result["text"] == "hello"
    assert isinstance(result["message_id"], int) and isinstance(result["date"], int)
    assert tg.messages == [SentMessage("42", "hello", None)]
    assert tg.messages == [("42", "hello", None)]
    assert tg.requests[0].params["disable_web_page_preview"] is True


def test_send_message_form_body_and_int_chat_id(tg: FakeTelegram) -> None:
    r = httpx.post(tg.method_url("sendMessage"), data={"chat_id": "42", "text": "a", "parse_mode": "HTML"})
    assert r.status_code == 200, r.text
    r = httpx.post(tg.method_url("sendMessage"), json={"chat_id": 42, "text": "b"})
    assert r.status_code == 200, r.text
    first, second = tg.messages
    assert first == ("42", "a", "HTML") and second == ("42", "b", None)
    me = httpx.get(tg.method_url("getMe")).json()
    assert me["ok"] is True and me["result"]["id"] == 123456 and me["result"]["is_bot"] is True


def test_wrong_token_is_401(tg: FakeTelegram) -> None:
    r = httpx.post(f"{tg.url}/bot999:wrong/sendMessage", json={"chat_id": "42", "text": "x"})
    assert r.status_code == 401
    assert r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert tg.messages == []
    assert tg.requests[0].status == 401


def test_unknown_chat_and_missing_chat_are_400(tg: FakeTelegram) -> None:
    r = httpx.post(tg.method_url("sendMessage"), json={"chat_id": "43", "text": "x"})
    assert (r.status_code, r.json()["description"]) == (400, "Bad Request: chat not found")
    r = httpx.post(tg.method_url("sendMessage"), json={"text": "x"})
    assert (r.status_code, r.json()["description"]) == (400, "Bad Request: chat_id is empty")
    r = httpx.post(tg.method_url("sendMessage"), json={"chat_id": "42"})
    assert (r.status_code, r.json()["description"]) == (400, "Bad Request: message text is empty")
    assert tg.messages == []


def test_text_over_4096_is_400(tg: FakeTelegram) -> None:
    r = send(tg, text="x" * 4097)
    assert r.status_code == 400
    assert r.json() == {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
    assert send(tg, text="x" * 4096).status_code == 200
    # the limit applies to the text after entity parsing: tags do not count, &amp; counts one
    assert send(tg, text="<b>" + "&amp;" * 4096 + "</b>", parse_mode="HTML").status_code == 200
    assert len(tg.messages) == 2


@pytest.mark.parametrize(
    "text",
    ["a < b", "fish & chips", "<blink>x</blink>", "<b>x", "<b>x</i>", "<b><i>x</b></i>", "x</b>", "&nbsp;", "<div>"],
)
def test_bad_html_is_400(tg: FakeTelegram, text: str) -> None:
    r = send(tg, text=text, parse_mode="HTML")
    assert r.status_code == 400, text
    body = r.json()
    assert body["ok"] is False and body["error_code"] == 400
    assert body["description"].startswith("Bad Request: can't parse entities"), body
    assert tg.messages == []


def test_good_html_is_accepted(tg: FakeTelegram) -> None:
    text = '<b>x</b> &amp; &lt; <i>i</i> <u>u</u> <s>s</s> <pre><code class="language-py">p</code></pre> ' \
           '<a href="https://example.org/?a=1&amp;b=2">l</a> &#x27;q&#39; &quot; a > b'
    r = send(tg, text=text, parse_mode="HTML")
    assert r.status_code == 200, r.text
    assert r.json()["result"]["text"] == "x & < i u s p l 'q' \" a > b"
    assert tg.messages == [("42", text, "HTML")]
    # without parse_mode the same characters are plain text
    assert send(tg, text="a < b & c").status_code == 200


def test_parse_telegram_html_helper() -> None:
    assert parse_telegram_html("<b>x</b> &amp; &lt;") == "x & <"
    assert parse_telegram_html("<B>x</B>") == "x"


# -------------------------------------------------------------- getUpdates
def test_get_updates_returns_queued_commands_and_honours_offset(tg: FakeTelegram) -> None:
    assert httpx.get(tg.method_url("getUpdates")).json() == {"ok": True, "result": []}
    u1 = tg.send_command("/status")
    u2 = tg.send_command("/stop now", from_id=7)
    r = httpx.post(tg.method_url("getUpdates"), json={"offset": 0, "timeout": 0})
    result = r.json()["result"]
    assert [u["update_id"] for u in result] == [u1["update_id"], u2["update_id"]]
    msg = result[0]["message"]
    assert msg["chat"] == {"id": 42, "type": "private"} and msg["text"] == "/status"
    assert msg["entities"] == [{"offset": 0, "length": 7, "type": "bot_command"}]
    assert result[1]["message"]["from"]["id"] == 7
    # not confirmed yet: the same updates again
    assert len(httpx.get(tg.method_url("getUpdates")).json()["result"]) == 2
    # offset = last + 1 confirms both
    nxt = u2["update_id"] + 1
    assert httpx.get(tg.method_url("getUpdates"), params={"offset": nxt}).json()["result"] == []
    assert tg.pending_updates == []
    assert httpx.get(tg.method_url("getUpdates")).json()["result"] == []  # dropped for good
    u3 = tg.send_command("/pnl", chat_id="-100")
    result = httpx.get(tg.method_url("getUpdates"), params={"offset": u2["update_id"]}).json()["result"]
    assert [u["update_id"] for u in result] == [u3["update_id"]]
    assert result[0]["message"]["chat"]["id"] == -100


def test_get_updates_long_poll_answers_when_a_command_arrives(tg: FakeTelegram) -> None:
    timer = threading.Timer(0.3, tg.send_command, args=("/status",))
    t0 = time.monotonic()
    timer.start()
    try:
        r = httpx.get(tg.method_url("getUpdates"), params={"timeout": 5}, timeout=10)
    finally:
        timer.join()
    elapsed = time.monotonic() - t0
    assert [u["message"]["text"] for u in r.json()["result"]] == ["/status"]
    assert 0.25 <= elapsed < 3


def test_get_updates_long_poll_times_out_empty(tg: FakeTelegram) -> None:
    t0 = time.monotonic()
    r = httpx.post(tg.method_url("getUpdates"), data={"timeout": "0.4", "offset": "5"}, timeout=5)
    assert r.json() == {"ok": True, "result": []}
    assert 0.35 <= time.monotonic() - t0 < 3


def test_stop_ends_a_pending_long_poll() -> None:
    fake = FakeTelegram().start()
    url = fake.method_url("getUpdates")
    out: list[object] = []

    def poll() -> None:
        try:
            out.append(httpx.get(url, params={"timeout": 30}, timeout=40).status_code)
        except httpx.HTTPError as exc:
            out.append(exc)

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    fake.stop()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 8 and out


# ----------------------------------------------------------------- webhook
def test_webhook_records_json_and_headers(hook: FakeWebhook) -> None:
    r = httpx.post(f"{hook.url}/hooks/abc", json={"text": "filled", "qty": 1.5}, headers={"X-Signature": "s1"})
    assert r.status_code == 200 and r.json() == {"ok": True}
    (d,) = hook.received
    assert d.path == "/hooks/abc" and d.body == {"text": "filled", "qty": 1.5}
    assert d.headers["x-signature"] == "s1" and d.headers["content-type"] == "application/json"
    r = httpx.post(f"{hook.url}/", content=b"not json", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and hook.received[1].body is None
    assert hook.requests[1].body == b"not json"
    assert httpx.get(f"{hook.url}/hooks/abc").status_code == 405
    assert len(hook.received) == 2 and len(hook.requests) == 3


# ------------------------------------------------------------------ faults
def test_429_carries_retry_after(tg: FakeTelegram, hook: FakeWebhook) -> None:
    tg.fail("429", "/sendMessage")
    tg.fail("429", "/sendMessage", retry_after=7)
    r = send(tg, text="x")
    assert r.status_code == 429
    assert r.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    r = send(tg, text="x")
    assert r.json()["parameters"] == {"retry_after": 7} and r.json()["description"].endswith("after 7")
    assert send(tg, text="x").status_code == 200
    assert tg.messages == [("42", "x", None)]
    assert [(q.fault, q.status) for q in tg.requests] == [("429", 429), ("429", 429), (None, 200)]

    hook.retry_after = 3
    hook.fail("429")
    r = httpx.post(f"{hook.url}/a", json={})
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert hook.received == []


@pytest.mark.parametrize("kind,status", [("500", 500), ("502", 502), ("400", 400)])
def test_status_faults(tg: FakeTelegram, hook: FakeWebhook, kind: str, status: int) -> None:
    tg.fail(kind, count=2)
    for _ in range(2):
        r = send(tg, text="x")
        assert r.status_code == status
    if kind == "502":
        assert r.headers["content-type"].startswith("text/html") and b"502 Bad Gateway" in r.content
    else:
        assert r.json()["ok"] is False and r.json()["error_code"] == status
    assert send(tg, text="x").status_code == 200
    assert [q.fault for q in tg.requests] == [kind, kind, None]

    hook.fail(kind, "/alerts")
    assert httpx.post(f"{hook.url}/other", json={}).status_code == 200  # prefix does not match
    assert httpx.post(f"{hook.url}/alerts/x", json={}).status_code == status
    assert httpx.post(f"{hook.url}/alerts/x", json={}).status_code == 200
    assert [q.status for q in hook.requests] == [200, status, 200]


def test_faults_are_queued_per_path_prefix(tg: FakeTelegram) -> None:
    tg.fail("500", "/getUpdates")
    tg.fail("429", f"/bot{tg.token}/sendMessage")
    assert tg.pending_faults == 2
    assert send(tg, text="x").status_code == 429
    assert httpx.get(tg.method_url("getMe")).status_code == 200
    assert httpx.get(tg.method_url("getUpdates")).status_code == 500
    assert tg.pending_faults == 0
    tg.fail("500", count=3)
    tg.clear_faults()
    assert send(tg, text="x").status_code == 200
    with pytest.raises(ValueError):
        tg.fail("418")


def test_slow_answers_after_slow_seconds(tg: FakeTelegram, hook: FakeWebhook) -> None:
    tg.fail("slow", "/sendMessage")
    t0 = time.monotonic()
    r = httpx.post(tg.method_url("sendMessage"), json={"chat_id": "42", "text": "x"}, timeout=2.0)
    assert time.monotonic() - t0 >= 0.3
    assert r.status_code == 200 and tg.messages == [("42", "x", None)]
    assert (tg.requests[0].fault, tg.requests[0].status) == ("slow", 200)

    hook.fail("slow", slow_seconds=0.2)
    t0 = time.monotonic()
    assert httpx.post(f"{hook.url}/a", json={}, timeout=2.0).status_code == 200
    assert time.monotonic() - t0 >= 0.2


def test_slow_beyond_client_timeout_is_read_timeout(tg: FakeTelegram) -> None:
    tg.fail("slow", slow_seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(tg.method_url("sendMessage"), json={"chat_id": "42", "text": "x"}, timeout=0.2)
    assert tg.requests[0].status is None  # not answered yet
    # the request is processed after the delay even though the client left
    deadline = time.monotonic() + 5
    while not tg.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tg.messages == [("42", "x", None)]


def test_drop_raises_remote_protocol_error(tg: FakeTelegram, hook: FakeWebhook) -> None:
    tg.fail("drop", "/sendMessage")
    with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected without sending a response"):
        send(tg, text="x")
    assert (tg.requests[0].fault, tg.requests[0].status) == ("drop", None)
    assert tg.messages == []
    assert send(tg, text="x").status_code == 200

    # the same on a kept-alive connection of a Client
    with httpx.Client(timeout=TIMEOUT) as client:
        assert client.post(f"{hook.url}/a", json={}).status_code == 200
        hook.fail("drop")
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(f"{hook.url}/a", json={"n": 2})
        assert client.post(f"{hook.url}/a", json={"n": 3}).status_code == 200
    assert [d.body for d in hook.received] == [{}, {"n": 3}]
    assert [q.fault for q in hook.requests] == [None, "drop", None]


def test_retry_spacing_is_measurable(tg: FakeTelegram) -> None:
    tg.fail("429", "/sendMessage", count=2)
    for _ in range(3):
        r = send(tg, text="x")
        if r.status_code == 429:
            time.sleep(0.15)
    times = [q.time for q in tg.requests]
    assert [q.status for q in tg.requests] == [429, 429, 200]
    assert all(b - a >= 0.15 for a, b in zip(times, times[1:], strict=False))


def test_token_is_never_printed(capfd: pytest.CaptureFixture[str]) -> None:
    with FakeTelegram(token="777:SECRET-token-xyz") as fake:
        fake.fail("drop")
        with pytest.raises(httpx.HTTPError):
            httpx.post(fake.method_url("sendMessage"), json={"chat_id": "42", "text": "x"})
        httpx.post(fake.method_url("sendMessage"), json={"chat_id": "42", "text": "<x"})
        httpx.post(fake.method_url("sendMessage"), json={"chat_id": "42", "text": "ok"})
        assert "SECRET" not in repr(fake)
    out, err = capfd.readouterr()
    assert "SECRET" not in out and "SECRET" not in err
