"""Live trading through Angel One SmartAPI (the official SDK, via `sdk.AngelClient`).

Every call goes: shared rate limiter -> logged-in client -> SDK method -> classification
(`parsing`). Three answers are handled here rather than passed up:
- an invalid/expired token (AG8001...): renew the session once and repeat the call (Angel
  did not process a request it refused at the gateway, so repeating an order is safe);
- 403 "exceeding access rate": hold the bucket for every process, back off, repeat (also
  refused before processing, so safe for orders too) a bounded number of times;
- a timeout or dropped connection after sending an order: `UnknownOutcome`, never repeated.
  The caller resolves it with `find_order` (the order book, by ordertag).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import requests

from ats_app.engine.broker import parsing
from ats_app.engine.broker.base import (
    BrokerOrder,
    BrokerPosition,
    ConnectionReport,
    Contract,
    OrderRequest,
    OrderType,
    Quote,
)
from ats_app.engine.broker.errors import (
    BrokerError,
    OrderRejected,
    RateLimited,
    SessionExpired,
    StaticIpRefused,
    UnknownOutcome,
)
from ats_app.engine.broker.ratelimit import RateLimiter
from ats_app.engine.broker.sdk import AngelClient, egress_session
from ats_app.engine.broker.session import AngelSession
from ats_app.engine.core.fsm import OrderStatus, is_terminal

__all__ = ["AngelBroker", "build_order_params", "discover_egress_ip"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ORDERTAG = 20  # Angel refuses longer tags with AB4008
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_BACKOFF_S: tuple[float, ...] = (0.5, 1.0, 2.0)
DEFAULT_IP_ECHO_URL = "https://api.ipify.org"


def build_order_params(request: OrderRequest) -> dict[str, Any]:
    """SmartAPI placeOrder parameters; `ordertag` is our client order id."""
    coid = request.client_order_id
    if not coid or len(coid) > MAX_ORDERTAG:
        raise OrderRejected(f"client order id must be 1-{MAX_ORDERTAG} characters, got {coid!r}")
    if request.quantity <= 0:
        raise OrderRejected(f"quantity must be positive, got {request.quantity}")
    is_stop = request.order_type == OrderType.STOPLOSS_LIMIT
    is_limit = request.order_type == OrderType.LIMIT or is_stop
    if is_limit and (request.price is None or request.price <= 0):
        raise OrderRejected(f"a {request.order_type.value} order needs a positive price")
    if is_stop and (request.trigger_price is None or request.trigger_price <= 0):
        raise OrderRejected("a STOPLOSS_LIMIT order needs a positive trigger price")
    c = request.contract
    params = {
        "variety": request.variety,
        "tradingsymbol": c.tradingsymbol,
        "symboltoken": c.symboltoken,
        "transactiontype": request.side.value,
        "exchange": c.exchange,
        "ordertype": request.order_type.value,
        "producttype": request.product.value,
        "duration": "DAY",
        "price": str(request.price) if is_limit else "0",
        "quantity": str(request.quantity),
        "ordertag": coid,
    }
    if is_stop:
        params["triggerprice"] = str(request.trigger_price)
    return params


def discover_egress_ip(echo_url: str, proxies: dict[str, str], timeout: float = 3.0,
                       source_ip: str | None = None) -> str | None:
    """The public address requests leave from through `proxies` or from the local
    `source_ip` (the same transport the account's orders use), asked of an IP-echo service
    (plain-text answer, like api.ipify.org). None when it cannot be determined."""
    try:
        with egress_session(source_ip) as s:
            r = s.get(echo_url, proxies=proxies, timeout=timeout)
        text = r.text.strip()
        return text if r.status_code == 200 and 0 < len(text) <= 64 else None
    except requests.RequestException:
        return None


class AngelBroker:
    """`Broker` for one Angel One account."""

    def __init__(self, session: AngelSession, limiter: RateLimiter, *,
                 ip_echo_url: str | None = DEFAULT_IP_ECHO_URL,
                 declared_ip: str | None = None) -> None:
        self.session = session
        self.limiter = limiter
        self._ip_echo_url = ip_echo_url
        self._declared_ip = declared_ip
        self._egress_ip: str | None = None
        self.backoff = RATE_LIMIT_BACKOFF_S  # seconds to hold the bucket after each 403

    @property
    def is_paper(self) -> bool:
        return False

    # ------------------------------------------------------------------ plumbing

    def egress_ip(self) -> str | None:
        """Where this account's requests leave from: asked of the echo service through the
        account's proxy or from its source address (cached); else the source address itself
        (behind NAT, e.g. an EC2 private address, that is the local side of the public IP);
        else the address the account declares."""
        if self._egress_ip is None and self._ip_echo_url:
            self._egress_ip = discover_egress_ip(self._ip_echo_url, self.session.proxies,
                                                 source_ip=self.session.source_ip)
        return self._egress_ip or self.session.source_ip or self._declared_ip

    def _call(self, bucket: str, route: str, fn: Callable[[AngelClient], Any]) -> Any:
        renewed = False
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            self.limiter.acquire(bucket)
            client = self.session.client()
            try:
                env = fn(client)
                err = parsing.error_from_envelope(env, route=route)
            except Exception as exc:  # non-SDK errors are re-raised by parsing
                err = parsing.error_from_exception(exc, route=route)
                env = None
            if err is None:
                return env
            if isinstance(err, SessionExpired) and not renewed:
                renewed = True
                self.session.invalidate(client.access_token)
                continue
            if isinstance(err, RateLimited) and attempt < RATE_LIMIT_RETRIES:
                pause = self.backoff[min(attempt, len(self.backoff) - 1)]
                # The hold makes every process on this account wait, this one included (the
                # next acquire sleeps it out): a 403 means Angel did not process the request.
                self.limiter.penalize(bucket, pause)
                log.warning("Angel rate-limited %s; retrying in %.1f s", route, pause)
                continue
            if isinstance(err, StaticIpRefused):
                err = StaticIpRefused(parsing.static_ip_message(self.egress_ip()),
                                      broker_message=err.broker_message)
            raise err
        raise RateLimited(f"Angel kept refusing {route} for exceeding the access rate")

    # ------------------------------------------------------------------ Broker

    def place_order(self, request: OrderRequest) -> BrokerOrder:
        params = build_order_params(request)
        # dict(params): the SDK deletes None values from the dict it is given, in place.
        env = self._call("order", "placeOrder",
                         lambda c: c.placeOrderFullResponse(dict(params)))
        data = env.get("data") if isinstance(env, dict) else None
        orderid = str(data.get("orderid") or "") if isinstance(data, dict) else ""
        if not orderid:
            # "Success" without an order id: Angel may or may not hold the order.
            raise UnknownOutcome(f"Angel accepted the order without an order id: {env!r}")
        return BrokerOrder(client_order_id=request.client_order_id, broker_order_id=orderid,
                           status=OrderStatus.OPEN, quantity=request.quantity,
                           requested_price=request.price)

    def orders(self) -> list[BrokerOrder]:
        """Today's order book (one request, 1/s per account)."""
        env = self._call("orderbook", "getOrderBook", lambda c: c.orderBook())
        return parsing.orders_from_book(env)

    def find_order(self, client_order_id: str) -> BrokerOrder | None:
        matches = [o for o in self.orders() if o.client_order_id == client_order_id]
        if not matches:
            return None
        if len(matches) > 1:  # Angel does not deduplicate ordertags; we never resend
            log.error("ordertag %s appears %d times in the order book", client_order_id,
                      len(matches))
        return matches[-1]

    def modify_order(self, broker_order_id: str, request: OrderRequest) -> BrokerOrder:
        params = build_order_params(request)
        params.pop("ordertag")  # not a field of modifyOrder: the order keeps its tag
        params["orderid"] = broker_order_id
        self._call("order", "modifyOrder", lambda c: c.modifyOrder(dict(params)))
        # Accepted: what the order does next comes by the order-update stream. No book read
        # here: the book allows one a second per account, and a trail moves several stops.
        return BrokerOrder(client_order_id=request.client_order_id,
                           broker_order_id=broker_order_id, status=OrderStatus.OPEN,
                           quantity=request.quantity, requested_price=request.price)

    def cancel_order(self, broker_order_id: str, variety: str = "NORMAL") -> BrokerOrder:
        self._call("order", "cancelOrder", lambda c: c.cancelOrder(broker_order_id, variety))
        row = next((o for o in self.orders() if o.broker_order_id == broker_order_id), None)
        if row is None:
            return BrokerOrder(client_order_id="", broker_order_id=broker_order_id,
                               status=OrderStatus.CANCEL_PENDING, quantity=0)
        if is_terminal(row.status) or row.status == OrderStatus.CANCEL_PENDING:
            return row
        # The book can still say "open" a moment after the cancel was accepted.
        return BrokerOrder(**{**row.__dict__, "status": OrderStatus.CANCEL_PENDING})

    def positions(self) -> list[BrokerPosition]:
        env = self._call("positions", "getPosition", lambda c: c.position())
        return parsing.positions_from_answer(env)

    def quote(self, contract: Contract) -> Quote:
        env = self._call("quote", "quote", lambda c: c.getMarketData(
            "FULL", {contract.exchange: [contract.symboltoken]}))
        q = parsing.quote_from_market_data(env, exchange=contract.exchange,
                                           symboltoken=contract.symboltoken)
        if q is None:
            raise OrderRejected(f"Angel has no quote for {contract.exchange}:"
                                f"{contract.tradingsymbol} ({contract.symboltoken})")
        return q

    def ltp(self, contract: Contract) -> Decimal:
        env = self._call("ltp", "getLtpData", lambda c: c.ltpData(
            contract.exchange, contract.tradingsymbol, contract.symboltoken))
        return Decimal(str(env["data"]["ltp"]))

    def candle_data(self, exchange: str, symboltoken: str, interval: str, fromdate: str,
                    todate: str) -> list[list[Any]]:
        """Historical candles (`getCandleData`; dates "YYYY-MM-DD HH:MM" IST): Angel's rows
        `[time, open, high, low, close, volume]`, [] when it has none. Market data: no
        static IP needed. Its own bucket: Angel limits this route far below the others."""
        params = {"exchange": exchange, "symboltoken": symboltoken, "interval": interval,
                  "fromdate": fromdate, "todate": todate}
        env = self._call("candles", "getCandleData", lambda c: c.getCandleData(dict(params)))
        data = env.get("data") if isinstance(env, dict) else None
        return data if isinstance(data, list) else []

    def test_connection(self) -> ConnectionReport:
        """A fresh login, a profile read, and a probe of the order route; the exact broker
        error on failure, and the address orders leave from either way.

        The probe cancels order id "0", which cannot exist: from the registered static IP Angel
        answers "order not found", from any other address the order routes refuse outright
        (HTTP 400, empty body) while logins and reads still work, so this is the only way to
        learn about a wrong IP before a real order fails.
        """
        client_id = self.session.creds.client_id
        try:
            self.session.login()
            env = self._call("other", "getProfile", lambda c: c.getProfile(c.refresh_token))
            self._probe_order_route()
        except BrokerError as exc:
            return ConnectionReport(ok=False, message=exc.broker_message or str(exc),
                                    client_id=client_id, egress_ip=self.egress_ip())
        data = env.get("data") or {}
        name = data.get("name") or ""
        return ConnectionReport(
            ok=True, message=f"Connected to Angel One as {data.get('clientcode', client_id)}"
                             + (f" ({name})" if name else ""),
            client_id=client_id, egress_ip=self.egress_ip())

    def _probe_order_route(self) -> None:
        # "Order not found" (OrderRejected) means the order route answered: this IP is accepted.
        with contextlib.suppress(OrderRejected):
            self._call("order", "cancelOrder", lambda c: c.cancelOrder("0", "NORMAL"))

    def close(self) -> None:
        self.session.close()

