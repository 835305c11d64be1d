"""Korea Investment & Securities (KIS) Open API: our own httpx client, its candle source, live market and orders.

The rest of systrade calls only ``candle_source``, ``live_market`` and ``order_gateway``. Secrets come from the
environment only (``SYSTRADE_KIS_APP_KEY``, ``SYSTRADE_KIS_APP_SECRET``, ``SYSTRADE_KIS_ACCOUNT``) and never appear
in a message: errors name the path and KIS's msg_cd/msg1, and pass through ``redact``.

Protocol notes (from koreainvestment/open-trading-api, ``examples_llm/kis_auth.py`` and
``examples_llm/domestic_stock/*``): an access token from ``POST /oauth2/tokenP`` (one issue per minute, each issue
notifies the account holder, so it is cached on disk and shared by processes), then every call carries
``authorization``, ``appkey``, ``appsecret``, ``tr_id`` and ``custtype`` headers; answers hold ``rt_cd`` ("0" = ok),
``msg_cd`` and ``msg1``; list inquiries page with the ``tr_cont`` header (``M``/``F`` = more) and the
``ctx_area_fk100``/``ctx_area_nk100`` keys. The TR ids differ between mock trading (``V...``) and the real-money
host; ``tr_id`` picks them from one table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pandas as pd

from systrade.config import Settings
from systrade.errors import UserError
from systrade.exchange import RetryPolicy, call_with_retry, redact
from systrade.venues.base import BrokerOrder, MarketRules, OrderIntent
from systrade.venues.errors import (
    BrokerAuthError,
    BrokerError,
    BrokerMarketClosed,
    BrokerRateLimited,
    BrokerRetryable,
)

KST = ZoneInfo("Asia/Seoul")
REAL_HOST = "openapi.koreainvestment.com"  # the real-money host; every other host gets mock-trading TR ids
ENV_APP_KEY, ENV_APP_SECRET, ENV_ACCOUNT = "SYSTRADE_KIS_APP_KEY", "SYSTRADE_KIS_APP_SECRET", "SYSTRADE_KIS_ACCOUNT"

PATHS = {
    "token": "/oauth2/tokenP",
    "hashkey": "/uapi/hashkey",
    "order_cash": "/uapi/domestic-stock/v1/trading/order-cash",
    "balance": "/uapi/domestic-stock/v1/trading/inquire-balance",
    "daily_ccld": "/uapi/domestic-stock/v1/trading/inquire-daily-ccld",
    "daily_chart": "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice",
    "price": "/uapi/domestic-stock/v1/quotations/inquire-price",
    "asking_price": "/uapi/domestic-stock/v1/quotations/inquire-asking-price-exp-ccn",
}

# The one table of TR ids: (mock, real). From open-trading-api examples_llm/domestic_stock (order_cash.py,
# inquire_balance.py, inquire_daily_ccld.py with pd_dv="inner" (the last 3 months), inquire_daily_itemchartprice.py,
# inquire_price.py, inquire_asking_price_exp_ccn.py).
TR_IDS: dict[str, tuple[str, str]] = {
    "buy": ("VTTC0012U", "TTTC0012U"),
    "sell": ("VTTC0011U", "TTTC0011U"),
    "balance": ("VTTC8434R", "TTTC8434R"),
    "daily_ccld": ("VTTC0081R", "TTTC0081R"),
    "daily_chart": ("FHKST03010100", "FHKST03010100"),
    "price": ("FHKST01010100", "FHKST01010100"),
    "asking_price": ("FHKST01010200", "FHKST01010200"),
}

TOKEN_EXPIRED_CODES = frozenset({"EGW00123", "EGW00121"})  # expired / invalid token: issue a new one, once
TOKEN_RATE_CODE = "EGW00133"  # "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"
RATE_LIMIT_CODES = frozenset({"EGW00201"})  # "초당 거래건수를 초과하였습니다."
# Orders refused outside the session: mock trading's 40580000 "모의투자 장종료 입니다." and 40570000 "모의투자
# 장시작전 입니다.", and APBK0918/APBK0919 ("장운영시간이 아닙니다", "장운영일자가 주문일과 상이합니다", e.g. a
# holiday). Not in the official examples (seen in users' code); the message text is matched as well.
MARKET_CLOSED_CODES = frozenset({"40580000", "40570000", "APBK0918", "APBK0919"})
MARKET_CLOSED_WORDS = ("장종료", "장시작전", "장운영시간", "장운영일자", "장마감")
TOKEN_MARGIN_SECONDS = 300.0  # a cached token is used until 5 minutes before it expires
CHART_ROWS = 100  # rows per daily-chart answer
SESSION_CLOSE_KST = (15, 30)
_SYMBOL = re.compile(r"^\d{6}$")
_ACCOUNT = re.compile(r"^(\d{8})-?(\d{2})$")


def is_real_host(url: str) -> bool:
    """True only for KIS's real-money host (then real TR ids are used)."""
    return (urlsplit(url).hostname or "").lower() == REAL_HOST


def tr_id(name: str, url: str) -> str:
    """The TR id of call ``name`` (a key of ``TR_IDS``) for the host of ``url``."""
    mock, real = TR_IDS[name]
    return real if is_real_host(url) else mock


def krx_tick(price: float) -> float:
    """KRX's price step for stocks at ``price`` (KRW; the 2023 unified table)."""
    for bound, tick in ((2_000, 1.0), (5_000, 5.0), (20_000, 10.0), (50_000, 50.0), (200_000, 100.0),
                        (500_000, 500.0)):
        if price < bound:
            return tick
    return 1_000.0


def split_account(account: str) -> tuple[str, str]:
    """(CANO, ACNT_PRDT_CD) of an account written ``50012345-01``; ``UserError`` (without the value) otherwise."""
    match = _ACCOUNT.match(account.strip())
    if not match:
        raise UserError(f"{ENV_ACCOUNT} must be the account number as 8 digits, a dash and 2 digits "
                        "(like 50012345-01)")
    return match.group(1), match.group(2)


def check_symbol(symbol: str) -> str:
    if not _SYMBOL.match(symbol):
        raise UserError(f"kis symbols are 6-digit KRX stock codes (like 005930), got {symbol!r}")
    return symbol


def _num(value: Any) -> float:
    try:
        return float(str(value).replace(",", "")) if value not in (None, "") else 0.0
    except ValueError:
        return 0.0


class _NoQueryInLogs(logging.Filter):
    """httpx logs every request URL at INFO; KIS inquiries carry the account number (CANO) in the query, so the
    query is cut from those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(arg.copy_with(query=None) if isinstance(arg, httpx.URL) else arg
                                for arg in record.args)
        return True


_HTTPX_LOGGER = logging.getLogger("httpx")
if not any(isinstance(f, _NoQueryInLogs) for f in _HTTPX_LOGGER.filters):
    _HTTPX_LOGGER.addFilter(_NoQueryInLogs())


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "systrade"


class KisClient:
    """One KIS account on one host: token handling, pacing, error classification. ``request`` makes one attempt;
    ``call`` makes it under the retry policy."""

    def __init__(self, url: str, app_key: str, app_secret: str, account: str, timeout: float, policy: RetryPolicy,
                 token_cache_dir: str | os.PathLike[str] | None = None, min_interval: float | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        self.url = url.rstrip("/")
        self.real = is_real_host(url)
        self.cano, self.product = split_account(account)
        self._app_key, self._app_secret = app_key, app_secret
        self.policy = policy
        self.min_interval = (0.06 if self.real else 0.5) if min_interval is None else float(min_interval)
        self._sleep, self._clock = sleep, clock
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        cache_dir = Path(token_cache_dir) if token_cache_dir is not None else _cache_root()
        digest = hashlib.sha256(f"{urlsplit(self.url).netloc}\n{app_key}".encode()).hexdigest()
        self.token_path = cache_dir / f"kis-token-{digest}.json"
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.RLock()
        self._last_call = 0.0

    def close(self) -> None:
        self._http.close()

    def tr_id(self, name: str) -> str:
        return TR_IDS[name][1 if self.real else 0]

    # ---------------------------------------------------------------- token
    def _read_cache(self) -> tuple[str, float] | None:
        try:
            data = json.loads(self.token_path.read_text())
            token, expires = str(data["access_token"]), float(data["expires_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (token, expires) if expires - TOKEN_MARGIN_SECONDS > self._clock() else None

    def _write_cache(self, token: str, expires: float) -> None:
        self.token_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.token_path.with_name(f"{self.token_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"access_token": token, "expires_at": expires}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.token_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _forget_token(self, token: str) -> None:
        """Drop ``token`` (KIS said it expired) from memory and from the cache, unless another process already
        replaced it there."""
        self._token, self._token_expires = None, 0.0
        try:
            cached = json.loads(self.token_path.read_text()).get("access_token")
        except (OSError, ValueError, AttributeError):
            return
        if cached == token:
            with contextlib.suppress(OSError):
                self.token_path.unlink()

    def access_token(self) -> str:
        """A valid token: in memory, else from the disk cache, else a new issue (under the retry policy; KIS's
        one-per-minute refusal waits ``retry_after`` seconds)."""
        with self._lock:
            if self._token and self._token_expires - TOKEN_MARGIN_SECONDS > self._clock():
                return self._token
            self._token, self._token_expires = call_with_retry(self._issue_once, self.policy, "kis token",
                                                               sleep=self._sleep)
            return self._token

    def _issue_once(self) -> tuple[str, float]:
        cached = self._read_cache()  # another process may have issued one meanwhile
        if cached is not None:
            return cached
        body = {"grant_type": "client_credentials", "appkey": self._app_key, "appsecret": self._app_secret}
        response = self._send("POST", PATHS["token"], {"content-type": "application/json"}, None, body)
        data = self._decode(response, PATHS["token"])
        self._raise_for(response, data, PATHS["token"])
        token = data.get("access_token")
        if not token:
            raise BrokerError("kis /oauth2/tokenP: the answer holds no access_token")
        now = self._clock()
        if data.get("expires_in"):
            expires = now + float(data["expires_in"])
        else:
            try:
                stamp = datetime.strptime(str(data["access_token_token_expired"]), "%Y-%m-%d %H:%M:%S")
                expires = stamp.replace(tzinfo=KST).timestamp()
            except (KeyError, ValueError):
                expires = now + 86_400.0
        self._write_cache(str(token), expires)
        return str(token), expires

    # ---------------------------------------------------------------- requests
    def _send(self, method: str, path: str, headers: dict[str, str], params: dict[str, str] | None,
              body: dict[str, Any] | None) -> httpx.Response:
        with self._lock:
            wait = self._last_call + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_call = time.monotonic()
        try:
            return self._http.request(method, path, headers=headers, params=params,
                                      content=None if body is None else json.dumps(body))
        except httpx.TimeoutException as error:
            raise BrokerRetryable(f"kis {path}: timed out ({type(error).__name__})") from None
        except httpx.TransportError as error:
            raise BrokerRetryable(f"kis {path}: connection failed ({type(error).__name__})") from None

    @staticmethod
    def _decode(response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            if response.status_code >= 500 or response.status_code == 429:
                return {}
            if response.status_code in (401, 403):
                raise BrokerAuthError(f"kis {path}: HTTP {response.status_code}") from None
            raise BrokerRetryable(f"kis {path}: HTTP {response.status_code} with an answer that is not JSON") \
                from None
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _raise_for(response: httpx.Response, data: dict[str, Any], path: str) -> None:
        """Raise the error an answer means (nothing for a good one)."""
        status = response.status_code
        code = str(data.get("msg_cd") or data.get("error_code") or "")
        msg = str(data.get("msg1") or data.get("error_description") or "").strip()
        text = redact(f"kis {path}: {code} {msg}".strip() if code or msg else f"kis {path}: HTTP {status}")
        if code in RATE_LIMIT_CODES or "초당 거래건수" in msg:
            raise BrokerRateLimited(text)
        if code == TOKEN_RATE_CODE:
            raise BrokerRateLimited(text, retry_after=60.0)
        if status == 429:
            retry = response.headers.get("retry-after")
            raise BrokerRateLimited(text, retry_after=float(retry) if retry and retry.isdigit() else None)
        if code in MARKET_CLOSED_CODES or any(word in msg for word in MARKET_CLOSED_WORDS):
            raise BrokerMarketClosed(text)
        if status in (401, 403) or code in TOKEN_EXPIRED_CODES:
            raise BrokerAuthError(text)
        if status >= 500 and not code:  # gateway trouble; KIS also sends its own refusals as HTTP 500 with a msg_cd
            raise BrokerRetryable(text)
        if status >= 400:
            raise BrokerError(text)
        if "rt_cd" in data and str(data["rt_cd"]) != "0":
            raise BrokerError(text)

    def _hashkey(self, body: dict[str, Any]) -> str:
        headers = {"content-type": "application/json", "appkey": self._app_key, "appsecret": self._app_secret}
        response = self._send("POST", PATHS["hashkey"], headers, None, body)
        data = self._decode(response, PATHS["hashkey"])
        self._raise_for(response, data, PATHS["hashkey"])
        if not data.get("HASH"):
            raise BrokerRetryable("kis /uapi/hashkey: the answer holds no HASH")
        return str(data["HASH"])

    def request(self, method: str, name: str, params: dict[str, str] | None = None,
                body: dict[str, Any] | None = None, tr: str | None = None, tr_cont: str = "",
                hashkey: bool = False) -> tuple[dict[str, Any], str]:
        """One attempt at call ``name`` (a key of ``PATHS``): (answer, ``tr_cont`` header). A token KIS calls
        expired is replaced once."""
        path = PATHS[name]
        for attempt in range(2):
            token = self.access_token()
            headers = {"content-type": "application/json; charset=utf-8", "authorization": f"Bearer {token}",
                       "appkey": self._app_key, "appsecret": self._app_secret, "tr_id": tr or self.tr_id(name),
                       "custtype": "P", "tr_cont": tr_cont}
            if hashkey and body is not None:
                headers["hashkey"] = self._hashkey(body)
            response = self._send(method, path, headers, params, body)
            data = self._decode(response, path)
            code = str(data.get("msg_cd") or data.get("error_code") or "")
            if code in TOKEN_EXPIRED_CODES and attempt == 0:
                with self._lock:
                    self._forget_token(token)
                continue
            self._raise_for(response, data, path)
            return data, response.headers.get("tr_cont", "")
        raise AssertionError("unreachable")

    def call(self, method: str, name: str, params: dict[str, str] | None = None,
             body: dict[str, Any] | None = None, **kwargs: Any) -> tuple[dict[str, Any], str]:
        """``request`` under the retry policy."""
        return call_with_retry(lambda: self.request(method, name, params, body, **kwargs), self.policy,
                               f"kis {name}", sleep=self._sleep)

    def paged(self, name: str, params: dict[str, str], output: str = "output1") -> list[dict[str, Any]]:
        """Every row of a list inquiry, following ``tr_cont`` and the CTX_AREA keys (each page retried alone)."""
        rows: list[dict[str, Any]] = []
        params = {**params, "CTX_AREA_FK100": "", "CTX_AREA_NK100": ""}
        tr_cont = ""
        for _ in range(1000):
            data, more = self.call("GET", name, params, tr_cont=tr_cont)
            rows.extend(row for row in data.get(output) or [] if isinstance(row, dict))
            if more not in ("M", "F"):
                return rows
            params = {**params, "CTX_AREA_FK100": str(data.get("ctx_area_fk100") or ""),
                      "CTX_AREA_NK100": str(data.get("ctx_area_nk100") or "")}
            tr_cont = "N"
        raise BrokerError(f"kis {PATHS[name]}: more than 1000 pages")

    def price(self, symbol: str) -> dict[str, Any]:
        data, _ = self.call("GET", "price", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol})
        output = data.get("output")
        return output if isinstance(output, dict) else {}


def client_from_env(settings: Settings, policy: RetryPolicy, **kwargs: Any) -> KisClient:
    """A ``KisClient`` for ``[brokers.kis]`` with the secrets from the environment."""
    missing = [name for name in (ENV_APP_KEY, ENV_APP_SECRET, ENV_ACCOUNT) if not os.environ.get(name, "").strip()]
    if missing:
        raise UserError(f"kis needs the environment variable(s) {', '.join(missing)} (the app key, app secret and "
                        "account number 50012345-01 from KIS Developers)")
    kis = settings.brokers.kis
    kwargs.setdefault("min_interval", kis.min_interval_seconds)
    return KisClient(kis.url, os.environ[ENV_APP_KEY].strip(), os.environ[ENV_APP_SECRET].strip(),
                     os.environ[ENV_ACCOUNT], kis.timeout, policy, **kwargs)


def _closed_sessions(frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """``frame`` without today's (KST) row while today's session is still open (before 15:30 KST)."""
    local = now.astimezone(KST)
    if (local.hour, local.minute) >= SESSION_CLOSE_KST:
        return frame
    today = pd.Timestamp(local.date().isoformat(), tz="UTC")
    return frame[frame.index != today]


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in ("open", "high", "low", "close", "volume")})
    frame.index = pd.DatetimeIndex([], tz="UTC", name="time")
    return frame


class KisCandles:
    """Daily candles from KIS's daily chart, paged backwards 100 sessions at a time."""

    venue = "kis"

    def __init__(self, client: KisClient, fees: float, adjustment: str = "all") -> None:
        if adjustment not in ("all", "raw"):
            raise UserError(f"kis prices are adjusted ('all') or raw ('raw'), not {adjustment!r}")
        self.client, self.fees, self.adjustment = client, fees, adjustment

    @staticmethod
    def _check_timeframe(timeframe: str) -> None:
        if timeframe != "1d":
            raise UserError(f"kis serves daily history only: use timeframe 1d, not {timeframe!r}")

    def check(self, symbol: str, timeframe: str) -> None:
        self._check_timeframe(timeframe)
        check_symbol(symbol)
        try:
            output = self.client.price(symbol)
        except BrokerError as error:
            if isinstance(error, (BrokerAuthError, BrokerMarketClosed)):
                raise
            raise UserError(f"kis has no stock {symbol!r} ({error})") from None
        if _num(output.get("stck_prpr")) <= 0:
            raise UserError(f"kis has no stock {symbol!r}")

    def candles(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp,
                on_page: Callable[[int], None] | None = None) -> pd.DataFrame:
        self._check_timeframe(timeframe)
        check_symbol(symbol)
        start, end = _utc(start), _utc(end)
        first = start.ceil("D")
        last = (end - pd.Timedelta(1, "ns")).floor("D")
        if last < first:
            return _empty_frame()
        date1 = first.strftime("%Y%m%d")
        date2 = last
        rows: dict[str, dict[str, Any]] = {}
        while date2 >= first:
            params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol, "FID_INPUT_DATE_1": date1,
                      "FID_INPUT_DATE_2": date2.strftime("%Y%m%d"), "FID_PERIOD_DIV_CODE": "D",
                      "FID_ORG_ADJ_PRC": "0" if self.adjustment == "all" else "1"}
            data, _ = self.client.call("GET", "daily_chart", params)
            page = [row for row in data.get("output2") or []
                    if isinstance(row, dict) and re.fullmatch(r"\d{8}", str(row.get("stck_bsop_date") or ""))]
            if on_page is not None:
                on_page(len(page))
            if not page:
                break
            for row in page:
                rows[row["stck_bsop_date"]] = row
            oldest = pd.Timestamp(min(row["stck_bsop_date"] for row in page), tz="UTC")
            if oldest >= date2 + pd.Timedelta(days=1):  # no progress: stop rather than loop
                break
            date2 = oldest - pd.Timedelta(days=1)
        if not rows:
            return _empty_frame()
        index = pd.DatetimeIndex([pd.Timestamp(d, tz="UTC") for d in rows], name="time")
        frame = pd.DataFrame({
            "open": [_num(r.get("stck_oprc")) for r in rows.values()],
            "high": [_num(r.get("stck_hgpr")) for r in rows.values()],
            "low": [_num(r.get("stck_lwpr")) for r in rows.values()],
            "close": [_num(r.get("stck_clpr")) for r in rows.values()],
            "volume": [_num(r.get("acml_vol")) for r in rows.values()],
        }, index=index, dtype=float)
        frame = frame.sort_index()
        frame = frame[~frame.index.duplicated(keep="last")]
        frame = frame[(frame.index >= start) & (frame.index < end)]
        return _closed_sessions(frame, datetime.fromtimestamp(self.client._clock(), tz=KST))

    def market(self, symbol: str) -> dict:
        check_symbol(symbol)
        price = _num(self.client.price(symbol).get("stck_prpr"))
        return {"exchange": "kis", "symbol": symbol, "base": symbol, "quote": "KRW", "lot": 1.0,
                "tick": krx_tick(price), "min_amount": 1.0, "min_cost": None, "taker_fee": self.fees,
                "maker_fee": self.fees}


class KisMarket:
    """Live market data for the paper daemon (``LiveMarket``)."""

    def __init__(self, client: KisClient, fees: float, sell_tax: float = 0.0,
                 now: Callable[[], float] = time.time) -> None:
        self.client, self.fees, self.sell_tax, self.now = client, fees, sell_tax, now
        self._candles = KisCandles(client, fees)
        self._rules: dict[str, tuple[float, MarketRules]] = {}

    def rules(self, symbol: str) -> MarketRules:
        """KRW, whole shares, the KRX tick at the current price (asked again after a minute), the commission on
        both sides and the transaction tax on sells."""
        now = time.monotonic()
        cached = self._rules.get(symbol)
        if cached is None or now - cached[0] > 60:
            rules = MarketRules(symbol=symbol, base=symbol, quote="KRW", taker_fee=self.fees, min_amount=1.0,
                                min_cost=None, lot=1.0, tick=krx_tick(self.last_price(symbol)),
                                sell_fee=self.fees + self.sell_tax)
            cached = self._rules[symbol] = (now, rules)
        return cached[1]

    def amount_to_precision(self, symbol: str, amount: float) -> float:
        return float(math.floor(amount + 1e-9))

    def server_time_ms(self) -> int:
        """The local clock: KIS has no server-time call (keep the machine's clock synchronised)."""
        return int(self.now() * 1000)

    def closed_candles(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame:
        end = pd.Timestamp.now(tz="UTC").floor("D") + pd.Timedelta(days=1)
        start = end - pd.Timedelta(days=int(count * 1.6) + 20)  # weekends and holidays
        return self._candles.candles(symbol, timeframe, start, end).tail(count)

    def order_book(self, symbol: str) -> dict:
        check_symbol(symbol)
        data, _ = self.client.call("GET", "asking_price", {"FID_COND_MRKT_DIV_CODE": "J",
                                                           "FID_INPUT_ISCD": symbol})
        out = data.get("output1") or {}
        book: dict[str, list[list[float]]] = {"bids": [], "asks": []}
        for level in range(1, 11):
            for side, price_key, size_key in (("asks", "askp", "askp_rsqn"), ("bids", "bidp", "bidp_rsqn")):
                price, size = _num(out.get(f"{price_key}{level}")), _num(out.get(f"{size_key}{level}"))
                if price > 0:
                    book[side].append([price, size])
        return book

    def last_price(self, symbol: str) -> float:
        check_symbol(symbol)
        price = _num(self.client.price(symbol).get("stck_prpr"))
        if price <= 0:
            raise BrokerError(f"kis has no price for {symbol}")
        return price

    def conversion_price(self, asset: str, quote: str) -> float | None:
        return None


class KisOrders:
    """Market orders on a KIS account (``OrderGateway``). KIS has no client order ids: orders are found again
    through the daily order/fill inquiry, by order number (ODNO) or by matching symbol, side and quantity."""

    def __init__(self, client: KisClient, fees: float, sell_tax: float) -> None:
        self.client, self.fees, self.sell_tax = client, fees, sell_tax

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        check_symbol(intent.symbol)
        if intent.side not in ("buy", "sell"):
            raise BrokerError(f"order side must be buy or sell, not {intent.side!r}")
        quantity = int(math.floor(intent.amount + 1e-9))
        if quantity < 1:
            raise BrokerError(f"kis orders whole shares; {intent.amount} is less than one")
        found = self.lookup(intent)
        if found is not None:
            return found
        body = {"CANO": self.client.cano, "ACNT_PRDT_CD": self.client.product, "PDNO": intent.symbol,
                "ORD_DVSN": "01", "ORD_QTY": str(quantity), "ORD_UNPR": "0", "EXCG_ID_DVSN_CD": "KRX",
                "SLL_TYPE": "", "CNDT_PRIC": ""}
        try:
            data, _ = self.client.request("POST", "order_cash", body=body, tr=self.client.tr_id(intent.side),
                                          hashkey=True)
        except BrokerRetryable:
            found = self.lookup(intent)  # the order may have arrived although the answer did not
            if found is not None:
                return found
            raise
        odno = str((data.get("output") or {}).get("ODNO") or "")
        if not odno:
            raise BrokerError("kis order-cash: the answer holds no order number (ODNO)")
        return BrokerOrder(client_order_id=intent.client_order_id, status="submitted", broker_order_id=odno)

    def _orders(self, intent: OrderIntent) -> list[dict[str, Any]]:
        created = intent.created if intent.created.tzinfo else intent.created.replace(tzinfo=KST)
        first = created.astimezone(KST).date()
        today = datetime.fromtimestamp(self.client._clock(), tz=KST).date()
        params = {"CANO": self.client.cano, "ACNT_PRDT_CD": self.client.product,
                  "INQR_STRT_DT": first.strftime("%Y%m%d"), "INQR_END_DT": max(first, today).strftime("%Y%m%d"),
                  "SLL_BUY_DVSN_CD": "00", "INQR_DVSN": "01", "PDNO": intent.symbol, "CCLD_DVSN": "00",
                  "ORD_GNO_BRNO": "", "ODNO": "", "INQR_DVSN_3": "00", "INQR_DVSN_1": "", "EXCG_ID_DVSN_CD": "KRX"}
        return self.client.paged("daily_ccld", params)

    def lookup(self, intent: OrderIntent) -> BrokerOrder | None:
        rows = self._orders(intent)
        if intent.broker_order_id:
            for row in rows:
                if str(row.get("odno")).lstrip("0") == intent.broker_order_id.lstrip("0"):
                    return self._order(intent, row)
            return None
        created = intent.created if intent.created.tzinfo else intent.created.replace(tzinfo=KST)
        since = created.astimezone(KST).replace(microsecond=0, tzinfo=None)  # KIS times are whole seconds
        side = "01" if intent.side == "sell" else "02"
        quantity = int(math.floor(intent.amount + 1e-9))
        claimed = {c.lstrip("0") for c in intent.claimed}
        candidates = []
        for row in rows:
            odno = str(row.get("odno") or "")
            if (row.get("pdno") != intent.symbol or row.get("sll_buy_dvsn_cd") != side
                    or int(_num(row.get("ord_qty"))) != quantity or odno.lstrip("0") in claimed
                    or str(row.get("orgn_odno") or "").strip("0")):  # a modify/cancel order, not a new one
                continue
            try:
                placed = datetime.strptime(f"{row.get('ord_dt')}{row.get('ord_tmd')}", "%Y%m%d%H%M%S")
            except ValueError:
                continue
            if placed >= since:
                candidates.append((placed, odno, row))
        if not candidates:
            return None
        candidates.sort(key=lambda item: (item[0], item[1]))
        return self._order(intent, candidates[0][2])

    def _order(self, intent: OrderIntent, row: dict[str, Any]) -> BrokerOrder:
        ordered = _num(row.get("ord_qty"))
        filled = _num(row.get("tot_ccld_qty"))
        amount = _num(row.get("tot_ccld_amt"))
        average = amount / filled if amount and filled else _num(row.get("avg_prvs"))  # avg_prvs is rounded
        value = amount or average * filled
        fee = value * (self.fees + (self.sell_tax if row.get("sll_buy_dvsn_cd") == "01" else 0.0))
        reason = ""
        if ordered > 0 and filled >= ordered:
            status = "filled"
        elif _num(row.get("rjct_qty")) > 0 and filled == 0:
            status, reason = "rejected", "refused by KIS"
        elif (str(row.get("cncl_yn") or "").upper() == "Y" or _num(row.get("cnc_cfrm_qty")) > 0
              or _num(row.get("rjct_qty")) > 0):
            status, reason = "cancelled", "cancelled at KIS"
        elif str(row.get("ord_dt") or "") < datetime.fromtimestamp(self.client._clock(), tz=KST).strftime("%Y%m%d"):
            status, reason = "cancelled", "a day order that expired at the end of its session"
        elif filled > 0:
            status = "partially_filled"
        else:
            status = "submitted"
        return BrokerOrder(client_order_id=intent.client_order_id, status=status, filled=filled,
                           average_price=average if filled else None, fee=fee, reason=reason,
                           broker_order_id=str(row.get("odno") or "") or None)

    def _balance(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        params = {"CANO": self.client.cano, "ACNT_PRDT_CD": self.client.product, "AFHR_FLPR_YN": "N",
                  "OFL_YN": "", "INQR_DVSN": "02", "UNPR_DVSN": "01", "FUND_STTL_ICLD_YN": "N",
                  "FNCG_AMT_AUTO_RDPT_YN": "N", "PRCS_DVSN": "00", "CTX_AREA_FK100": "", "CTX_AREA_NK100": ""}
        holdings: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}
        tr_cont = ""
        for _ in range(1000):
            data, more = self.client.call("GET", "balance", params, tr_cont=tr_cont)
            holdings.extend(row for row in data.get("output1") or [] if isinstance(row, dict))
            out2 = data.get("output2")
            if isinstance(out2, list) and out2:
                summary = out2[0]
            elif isinstance(out2, dict):
                summary = out2
            if more not in ("M", "F"):
                break
            params = {**params, "CTX_AREA_FK100": str(data.get("ctx_area_fk100") or ""),
                      "CTX_AREA_NK100": str(data.get("ctx_area_nk100") or "")}
            tr_cont = "N"
        return holdings, summary

    def position(self, symbol: str) -> float:
        holdings, _ = self._balance()
        return sum(_num(row.get("hldg_qty")) for row in holdings if row.get("pdno") == symbol)

    def cash(self) -> float:
        """``prvs_rcdl_excc_amt`` (the deposit after the trades still settling, D+2): KRX settles two days after
        the trade, so ``dnca_tot_amt`` (today's deposit) still holds the money of today's buys and would overstate
        what can be spent."""
        _, summary = self._balance()
        return _num(summary.get("prvs_rcdl_excc_amt"))


def candle_source(settings: Settings, policy: RetryPolicy, adjustment: str = "all", **kwargs: Any) -> KisCandles:
    """Daily candles of KRX stocks (``adjustment`` "all" = adjusted prices, "raw" = as traded)."""
    return KisCandles(client_from_env(settings, policy, **kwargs), settings.brokers.kis.fees, adjustment)


def live_market(settings: Settings, policy: RetryPolicy, **kwargs: Any) -> KisMarket:
    kis = settings.brokers.kis
    return KisMarket(client_from_env(settings, policy, **kwargs), kis.fees, kis.sell_tax)


def order_gateway(settings: Settings, policy: RetryPolicy, **kwargs: Any) -> KisOrders:
    kis = settings.brokers.kis
    return KisOrders(client_from_env(settings, policy, **kwargs), kis.fees, kis.sell_tax)
