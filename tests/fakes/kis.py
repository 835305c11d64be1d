"""A local fake of the Korea Investment & Securities (KIS) Open API for tests.

``FakeKis`` runs a ``ThreadingHTTPServer`` on 127.0.0.1 (random free port) speaking KIS's JSON (field names from
koreainvestment/open-trading-api ``examples_llm``) for mock trading::

    POST /oauth2/tokenP                       one issue per 60 s of the fake's clock (else 403 EGW00133)
    POST /uapi/hashkey                        {"BODY": ..., "HASH": sha256 of the body}
    POST .../trading/order-cash               market orders (ORD_DVSN 01), VTTC0012U buy / VTTC0011U sell
    GET  .../trading/inquire-balance          VTTC8434R
    GET  .../trading/inquire-daily-ccld       VTTC0081R, ``ccld_page_size`` rows a page (mock KIS: 15), paged by
                                              CTX_AREA_NK100 and the ``tr_cont`` header (M = more, D = done)
    GET  .../quotations/inquire-daily-itemchartprice  FHKST03010100, newest first, at most 100 rows
    GET  .../quotations/inquire-price         FHKST01010100
    GET  .../quotations/inquire-asking-price-exp-ccn  FHKST01010200

Every data request must carry the fake's ``appkey``/``appsecret`` and a live bearer token (an expired one gets
HTTP 500 ``EGW00123``, an unknown one ``EGW00121``) and the mock TR id of its path (a real-money id gets
``FAKE0001`` "모의투자 TR 이 아닙니다", so a wrong TR table shows). Orders must carry the ``hashkey`` of their body.

The clock (``now()``, seconds) is the wall clock plus ``advance``d seconds; token issue and expiry, and order
times (KST), follow it. ``expire_tokens()`` makes every issued token expired. ``set_session(open=False)`` refuses
orders with mock trading's closed-market answer (``40580000`` "모의투자 장종료 입니다."). Orders fill when told:
``fill(odno, qty, price)`` or ``auto_fill = True`` (fills at the last price when placed).

Faults (``fail(path_prefix, kind, count=1, skip=0, method=None)``), consumed in order by matching requests:

    "429"   HTTP 429 with a Retry-After: 0 header
    "500"   HTTP 500, HTML body;  "502": HTTP 502, HTML body
    "drop"  the connection is closed without an answer (nothing processed)
    "lost"  the request IS processed (an order is placed), then the connection is closed
    "rate"  HTTP 500 {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}

Requests are recorded (``requests``) without secrets: no appkey, appsecret, token or account number.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pandas as pd

from .http import LocalFake, QuietServer, TrackedHandler

KST = ZoneInfo("Asia/Seoul")
REDACTED = "<redacted>"
FAULT_KINDS = ("429", "500", "502", "drop", "lost", "rate")
TRADING = "/uapi/domestic-stock/v1/trading/"
QUOTES = "/uapi/domestic-stock/v1/quotations/"
MOCK_TR = {
    TRADING + "order-cash": {"VTTC0012U", "VTTC0011U"},
    TRADING + "inquire-balance": {"VTTC8434R"},
    TRADING + "inquire-daily-ccld": {"VTTC0081R"},
    QUOTES + "inquire-daily-itemchartprice": {"FHKST03010100"},
    QUOTES + "inquire-price": {"FHKST01010100"},
    QUOTES + "inquire-asking-price-exp-ccn": {"FHKST01010200"},
}
OK = {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다."}


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]  # query and JSON body, secrets removed
    tr_id: str
    tr_cont: str
    hashkey: bool
    fault: str | None = None
    status: int | None = None


@dataclass
class Fault:
    path: str
    kind: str
    count: int = 1
    skip: int = 0
    method: str | None = None


@dataclass
class Stock:
    symbol: str
    name: str
    raw: pd.DataFrame
    adjusted: pd.DataFrame
    price: float


@dataclass
class Order:
    odno: str
    side: str  # "01" sell, "02" buy
    symbol: str
    qty: int
    ord_dt: str
    ord_tmd: str
    filled: int = 0
    amount: float = 0.0
    cancelled: bool = False
    rejected: int = 0
    fills: list[tuple[int, float]] = field(default_factory=list)

    def row(self) -> dict[str, str]:
        return {
            "ord_dt": self.ord_dt, "ord_gno_brno": "00950", "odno": self.odno, "orgn_odno": "",
            "ord_dvsn_name": "시장가", "sll_buy_dvsn_cd": self.side,
            "sll_buy_dvsn_cd_name": "매도" if self.side == "01" else "매수", "pdno": self.symbol,
            "prdt_name": "", "ord_qty": str(self.qty), "ord_unpr": "0", "ord_tmd": self.ord_tmd,
            "tot_ccld_qty": str(self.filled),
            "avg_prvs": _fmt(round(self.amount / self.filled)) if self.filled else "0",
            "cncl_yn": "Y" if self.cancelled else "N", "tot_ccld_amt": _fmt(self.amount), "ord_dvsn_cd": "01",
            "cnc_cfrm_qty": str(self.qty - self.filled) if self.cancelled else "0",
            "rmn_qty": "0" if self.cancelled else str(self.qty - self.filled - self.rejected),
            "rjct_qty": str(self.rejected), "excg_id_dvsn_cd": "KRX",
        }


class _Handler(TrackedHandler):
    methods = ("GET", "POST")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        logged = {k: (REDACTED if k in ("CANO", "appkey", "appsecret") else v)
                  for k, v in {**query, **(body if isinstance(body, dict) else {})}.items()}
        fault = fake._take_fault(method, split.path)
        rec = RecordedRequest(method, split.path, logged, headers.get("tr_id", ""), headers.get("tr_cont", ""),
                              "hashkey" in headers, fault)
        fake._record(rec)
        try:
            if fault == "drop":
                self._drop()
                return
            if fault in ("429", "500", "502"):
                html = f"<html><body><h1>{fault}</h1></body></html>".encode()
                self._send(rec, int(fault), html, "text/html", {"Retry-After": "0"} if fault == "429" else None)
                return
            if fault == "rate":
                payload = {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}
                self._send(rec, 500, json.dumps(payload).encode(), "application/json; charset=utf-8")
                return
            status, payload, extra = fake._dispatch(method, split.path, query, body, raw, headers)
            if fault == "lost":
                self._drop()
                return
            self._send(rec, status, json.dumps(payload, ensure_ascii=False).encode(),
                       "application/json; charset=utf-8", extra)
        except OSError:
            self.close_connection = True

    def _send(self, rec: RecordedRequest, status: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        rec.status = status
        self.wfile.write(body)


class FakeKis(LocalFake):
    """A mock-trading KIS account and its market data (see the module docstring)."""

    handler_class = _Handler
    _fake_name = "FakeKis"

    def __init__(self, app_key: str = "PSfakeAppKey0123456789abcdef", app_secret: str = "fakeAppSecret+/9876543210==",
                 account: str = "50098765-01", cash: float = 10_000_000.0) -> None:
        self.app_key, self.app_secret, self.account = app_key, app_secret, account
        self.cano, self.product = account.split("-")
        self.cash = cash
        self.holdings: dict[str, int] = {}
        self.stocks: dict[str, Stock] = {}
        self.orders: list[Order] = []
        self.tokens: dict[str, float] = {}  # token -> expiry (fake clock)
        self.token_issues = 0
        self.token_refusals = 0
        self.token_lifetime = 86_400.0
        self.last_issue: float | None = None
        self.session_open = True
        self.auto_fill = False
        self.ccld_page_size = 15
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._offset = 0.0
        self._next_odno = 1000
        self._lock = threading.RLock()
        self._conns: set[socket.socket] = set()
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- control
    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def expire_tokens(self) -> None:
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = self.now() - 1

    def set_session(self, open: bool) -> None:
        self.session_open = open

    def add_stock(self, symbol: str, raw: pd.DataFrame, adjusted: pd.DataFrame | None = None,
                  price: float | None = None, name: str = "테스트") -> None:
        """Daily candles (index: session dates, columns open high low close volume); ``adjusted`` defaults to
        ``raw``, ``price`` (the last price) to the last close."""
        adjusted = raw if adjusted is None else adjusted
        last = float(raw["close"].iloc[-1]) if price is None and len(raw) else float(price or 0)
        self.stocks[symbol] = Stock(symbol, name, raw, adjusted, last)

    def fail(self, path: str, kind: str, count: int = 1, skip: int = 0, method: str | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}")
        with self._lock:
            self.faults.append(Fault(path, kind, count, skip, method))

    def _take_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            for fault in self.faults:
                if fault.count <= 0 or not path.startswith(fault.path):
                    continue
                if fault.method and fault.method != method:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.count -= 1
                return fault.kind
        return None

    def fill(self, odno: str, qty: int, price: float) -> None:
        with self._lock:
            order = next(o for o in self.orders if o.odno == odno)
            if order.filled + qty > order.qty:
                raise ValueError("fill exceeds the order")
            order.filled += qty
            order.amount += qty * price
            order.fills.append((qty, price))
            sign = 1 if order.side == "02" else -1
            self.holdings[order.symbol] = self.holdings.get(order.symbol, 0) + sign * qty
            self.cash -= sign * qty * price

    def count(self, path_prefix: str = "", status: int | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path.startswith(path_prefix)
                       and (status is None or r.status == status))

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    # ----------------------------------------------------------------- protocol
    def _dispatch(self, method: str, path: str, query: dict[str, str], body: Any, raw: str,
                  headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str] | None]:
        with self._lock:
            if path == "/oauth2/tokenP" and method == "POST":
                return self._token(body)
            if headers.get("appkey") != self.app_key or headers.get("appsecret") != self.app_secret:
                return 403, {"error_code": "EGW00103", "error_description": "유효하지 않은 AppKey입니다."}, None
            if path == "/uapi/hashkey" and method == "POST":
                return 200, {"BODY": body, "HASH": _hash(raw)}, None
            if path not in MOCK_TR:
                return 404, {"rt_cd": "1", "msg_cd": "FAKE0404", "msg1": f"no such path {path}"}, None
            auth = headers.get("authorization", "")
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
            if token not in self.tokens:
                return 500, {"rt_cd": "1", "msg_cd": "EGW00121", "msg1": "유효하지 않은 token 입니다."}, None
            if self.tokens[token] <= self.now():
                return 500, {"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "기간이 만료된 token 입니다."}, None
            if headers.get("tr_id") not in MOCK_TR[path] or headers.get("custtype") != "P":
                return 500, {"rt_cd": "1", "msg_cd": "FAKE0001",
                             "msg1": f"모의투자 TR 이 아닙니다 (fake expects {sorted(MOCK_TR[path])})"}, None
            params = body if method == "POST" else query
            if not isinstance(params, dict):
                return 500, {"rt_cd": "1", "msg_cd": "FAKE0400", "msg1": "body is not JSON"}, None
            if path.startswith(TRADING) and (params.get("CANO") != self.cano
                                             or params.get("ACNT_PRDT_CD") != self.product):
                return 200, {"rt_cd": "7", "msg_cd": "APAC0081", "msg1": "계좌번호 입력 오류입니다"}, None
            name = path.rsplit("/", 1)[1]
            if name == "order-cash":
                if headers.get("hashkey") != _hash(raw):
                    return 200, {"rt_cd": "1", "msg_cd": "FAKE0002", "msg1": "hashkey does not match the body"}, None
                return self._order(params, headers["tr_id"])
            if name == "inquire-balance":
                return self._balance()
            if name == "inquire-daily-ccld":
                return self._ccld(params, headers.get("tr_cont", ""))
            if name == "inquire-daily-itemchartprice":
                return self._chart(params)
            if name == "inquire-price":
                return self._price(params)
            return self._asking(params)

    def _token(self, body: Any) -> tuple[int, dict[str, Any], None]:
        if (not isinstance(body, dict) or body.get("grant_type") != "client_credentials"
                or body.get("appkey") != self.app_key or body.get("appsecret") != self.app_secret):
            return 403, {"error_code": "EGW00103", "error_description": "유효하지 않은 AppKey입니다."}, None
        now = self.now()
        if self.last_issue is not None and now - self.last_issue < 60:
            self.token_refusals += 1
            return 403, {"error_code": "EGW00133",
                         "error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"}, None
        token = "eyJ" + secrets.token_urlsafe(48)
        self.tokens[token] = now + self.token_lifetime
        self.token_issues += 1
        self.last_issue = now
        expired = datetime.fromtimestamp(now + self.token_lifetime, tz=KST).strftime("%Y-%m-%d %H:%M:%S")
        return 200, {"access_token": token, "access_token_token_expired": expired, "token_type": "Bearer",
                     "expires_in": int(self.token_lifetime)}, None

    def _order(self, params: dict[str, Any], tr: str) -> tuple[int, dict[str, Any], None]:
        if not self.session_open:
            return 200, {"rt_cd": "1", "msg_cd": "40580000", "msg1": "모의투자 장종료 입니다."}, None
        symbol = str(params.get("PDNO", ""))
        if symbol not in self.stocks:
            return 200, {"rt_cd": "1", "msg_cd": "40070000",
                         "msg1": "모의투자 주문처리가 안되었습니다(매매불가 종목)"}, None
        if params.get("ORD_DVSN") != "01" or str(params.get("ORD_UNPR")) != "0":
            return 200, {"rt_cd": "1", "msg_cd": "FAKE0003", "msg1": "the fake takes market orders only"}, None
        try:
            qty = int(str(params.get("ORD_QTY")))
        except ValueError:
            qty = 0
        if qty <= 0:
            return 200, {"rt_cd": "1", "msg_cd": "FAKE0004", "msg1": "주문수량을 확인하세요"}, None
        self._next_odno += 1
        local = datetime.fromtimestamp(self.now(), tz=KST)
        side = "02" if tr == "VTTC0012U" else "01"
        order = Order(f"{self._next_odno:010d}", side, symbol, qty, local.strftime("%Y%m%d"), local.strftime("%H%M%S"))
        self.orders.append(order)
        if self.auto_fill:
            self.fill(order.odno, qty, self.stocks[symbol].price)
        word = "매수" if side == "02" else "매도"
        return 200, {"rt_cd": "0", "msg_cd": "40600000", "msg1": f"모의투자 {word}주문이 완료 되었습니다.",
                     "output": {"KRX_FWDG_ORD_ORGNO": "00950", "ODNO": order.odno, "ORD_TMD": order.ord_tmd}}, None

    def _balance(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        rows = [{"pdno": s, "prdt_name": self.stocks[s].name if s in self.stocks else "", "hldg_qty": str(q),
                 "ord_psbl_qty": str(q), "prpr": _fmt(self.stocks[s].price) if s in self.stocks else "0"}
                for s, q in self.holdings.items() if q]
        cash = _fmt(round(self.cash))
        summary = {"dnca_tot_amt": cash, "nxdy_excc_amt": cash, "prvs_rcdl_excc_amt": cash}
        return 200, {**OK, "ctx_area_fk100": "", "ctx_area_nk100": "", "output1": rows, "output2": [summary]}, \
            {"tr_cont": "D"}

    def _ccld(self, params: dict[str, str], tr_cont: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        lo, hi = params.get("INQR_STRT_DT", ""), params.get("INQR_END_DT", "")
        side = params.get("SLL_BUY_DVSN_CD", "00")
        rows = [o for o in self.orders if lo <= o.ord_dt <= hi
                and (not params.get("PDNO") or o.symbol == params["PDNO"])
                and (side == "00" or o.side == side)
                and (not params.get("ODNO") or o.odno == params["ODNO"])]
        rows.sort(key=lambda o: (o.ord_dt, o.ord_tmd, o.odno), reverse=params.get("INQR_DVSN") != "01")
        offset = 0
        if params.get("CTX_AREA_NK100"):
            if tr_cont != "N":
                return 500, {"rt_cd": "1", "msg_cd": "FAKE0005", "msg1": "a next page needs tr_cont N"}, None
            offset = int(params["CTX_AREA_NK100"])
        page = rows[offset:offset + self.ccld_page_size]
        more = offset + self.ccld_page_size < len(rows)
        nk = str(offset + self.ccld_page_size) if more else ""
        fk = f"{self.cano}^{self.product}^{lo}^{hi}^" if more else ""
        filled = sum(o.filled for o in rows)
        return 200, {**OK, "ctx_area_fk100": fk, "ctx_area_nk100": nk, "output1": [o.row() for o in page],
                     "output2": {"tot_ord_qty": str(sum(o.qty for o in rows)), "tot_ccld_qty": str(filled),
                                 "tot_ccld_amt": _fmt(sum(o.amount for o in rows))}}, {"tr_cont": "M" if more else "D"}

    def _chart(self, params: dict[str, str]) -> tuple[int, dict[str, Any], None]:
        stock = self.stocks.get(params.get("FID_INPUT_ISCD", ""))
        if params.get("FID_PERIOD_DIV_CODE") != "D" or params.get("FID_COND_MRKT_DIV_CODE") != "J":
            return 500, {"rt_cd": "1", "msg_cd": "FAKE0006", "msg1": "the fake serves J / D only"}, None
        if stock is None:
            return 200, {**OK, "output1": {}, "output2": []}, None
        frame = stock.adjusted if params.get("FID_ORG_ADJ_PRC") == "0" else stock.raw
        lo, hi = params.get("FID_INPUT_DATE_1", ""), params.get("FID_INPUT_DATE_2", "")
        rows = []
        for ts, row in frame.sort_index(ascending=False).iterrows():
            date = pd.Timestamp(ts).strftime("%Y%m%d")
            if lo <= date <= hi:
                rows.append({"stck_bsop_date": date, "stck_oprc": _fmt(row["open"]), "stck_hgpr": _fmt(row["high"]),
                             "stck_lwpr": _fmt(row["low"]), "stck_clpr": _fmt(row["close"]),
                             "acml_vol": _fmt(row["volume"]), "acml_tr_pbmn": "0", "flng_cls_code": "00",
                             "prtt_rate": "0.00", "mod_yn": "N", "prdy_vrss_sign": "3", "prdy_vrss": "0"})
            if len(rows) == 100:
                break
        return 200, {**OK, "output1": {"hts_kor_isnm": stock.name, "stck_prpr": _fmt(stock.price),
                                       "stck_shrn_iscd": stock.symbol}, "output2": rows}, None

    def _price(self, params: dict[str, str]) -> tuple[int, dict[str, Any], None]:
        stock = self.stocks.get(params.get("FID_INPUT_ISCD", ""))
        if stock is None:
            return 200, {**OK, "output": {"stck_prpr": "0", "stck_shrn_iscd": "", "acml_vol": "0"}}, None
        return 200, {**OK, "output": {"stck_prpr": _fmt(stock.price), "stck_shrn_iscd": stock.symbol,
                                      "acml_vol": "0", "stck_mxpr": "0", "stck_llam": "0"}}, None

    def _asking(self, params: dict[str, str]) -> tuple[int, dict[str, Any], None]:
        stock = self.stocks.get(params.get("FID_INPUT_ISCD", ""))
        out: dict[str, str] = {}
        if stock is not None:
            tick = 100.0 if stock.price < 200_000 else 500.0
            for level in range(1, 11):
                out[f"askp{level}"] = _fmt(stock.price + tick * level)
                out[f"askp_rsqn{level}"] = str(100 * level)
                out[f"bidp{level}"] = _fmt(stock.price - tick * (level - 1))
                out[f"bidp_rsqn{level}"] = str(90 * level)
        return 200, {**OK, "output1": out, "output2": {"stck_prpr": _fmt(stock.price) if stock else "0"}}, None
