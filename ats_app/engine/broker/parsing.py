"""Pure translation between SmartAPI answers and the broker interface. No I/O.

Two jobs: turn envelopes and order-book rows into `BrokerOrder` / `Quote` / `BrokerPosition`,
and turn every way Angel says "no" into one of our errors, classified by `errorcode` (the
SDK's session-expiry hook never fires for the gateway's AG8001 answers, which carry
`success`/`errorCode` instead of `status`/`errorcode`).

Classification rules (the route is the last segment of the SmartAPI path, e.g. `placeOrder`):
- AG8001/AG8002/AG8003/AB1010 -> SessionExpired (renew or log in, then retry);
  AB8050/AB8051 (refresh token invalid/expired) too: the session logs in afresh.
- AB1050 -> TotpRefused; other login refusals -> LoginFailed.
- HTTP 403 plain text "exceeding access rate" (the SDK's DataException) -> RateLimited.
- An empty body with HTTP 400 on an order route -> StaticIpRefused, naming the IP in use.
- A timeout or a dropped connection after the request may have been sent, an empty 200 or a
  5xx on an order route -> UnknownOutcome (look the order up, never resend).
- Anything else with a message -> OrderRejected carrying Angel's text verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from SmartApi import smartExceptions as sdk_errors

from ats_app.engine.broker.base import BrokerOrder, BrokerPosition, Quote
from ats_app.engine.broker.errors import (
    BrokerDown,
    BrokerError,
    LoginFailed,
    OrderRejected,
    RateLimited,
    SessionExpired,
    StaticIpRefused,
    TotpRefused,
    UnknownOutcome,
)
from ats_app.engine.broker.status import from_angel_report
from ats_app.engine.core.clock import IST
from ats_app.engine.core.fsm import OrderEvent, OrderStatus

__all__ = [
    "LOGIN_ROUTE",
    "ORDER_ROUTES",
    "RATE_LIMIT_TEXT",
    "error_from_envelope",
    "error_from_exception",
    "event_for_status",
    "order_from_row",
    "orders_from_book",
    "position_from_row",
    "positions_from_answer",
    "quote_from_market_data",
    "static_ip_message",
]

ORDER_ROUTES = frozenset({"placeOrder", "modifyOrder", "cancelOrder"})
LOGIN_ROUTE = "loginByPassword"
RATE_LIMIT_TEXT = "exceeding access rate"
SESSION_CODES = frozenset({"AG8001", "AG8002", "AG8003", "AB1010", "AB8050", "AB8051"})
TOTP_CODE = "AB1050"
# Angel's OMS "Something Went Wrong": on placeOrder we cannot know whether it was processed.
SERVER_ERROR_CODES = frozenset({"AB1004"})

_EVENT_STATUS: dict[OrderEvent, OrderStatus] = {
    OrderEvent.ACCEPT: OrderStatus.OPEN,
    OrderEvent.TRIGGER: OrderStatus.TRIGGER_PENDING,
    OrderEvent.PARTIAL_FILL: OrderStatus.PARTIALLY_FILLED,
    OrderEvent.FILL: OrderStatus.FILLED,
    OrderEvent.REJECT: OrderStatus.REJECTED,
    OrderEvent.CANCEL: OrderStatus.CANCELLED,
    OrderEvent.CANCEL_REQUEST: OrderStatus.CANCEL_PENDING,
}
_STATUS_EVENT = {status: event for event, status in _EVENT_STATUS.items()}


def static_ip_message(egress_ip: str | None) -> str:
    ip = egress_ip or "unknown"
    return f"orders refused from this IP ({ip}): it is not the account's registered static IP"


# --------------------------------------------------------------------------- errors


def _code_and_message(env: Mapping[str, Any]) -> tuple[str, str]:
    code = env.get("errorcode") or env.get("errorCode") or ""
    return str(code).strip(), str(env.get("message") or "").strip()


def error_from_envelope(env: Any, *, route: str) -> BrokerError | None:
    """The error an SDK answer carries, or None when it is a success."""
    if not isinstance(env, Mapping):
        if route in ORDER_ROUTES:
            return UnknownOutcome(f"unexpected answer from Angel on {route}: {env!r}")
        return BrokerDown(f"unexpected answer from Angel on {route}: {env!r}")
    if env.get("status") is True or env.get("success") is True:
        return None
    code, message = _code_and_message(env)
    text = message or code or "Angel refused the request without a message"
    kw: dict[str, Any] = {"broker_message": message or None, "errorcode": code or None}
    if code in SESSION_CODES:
        return SessionExpired(text, **kw)
    if code == TOTP_CODE:
        return TotpRefused(text, **kw)
    if route == LOGIN_ROUTE:
        return LoginFailed(text, **kw)
    if code in SERVER_ERROR_CODES:
        if route == "placeOrder":
            return UnknownOutcome(text, **kw)
        return BrokerDown(text, **kw)
    return OrderRejected(text, **kw)


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the broker (refused before any byte left)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        return "NewConnectionError" in text or "Connection refused" in text
    return False


def error_from_exception(exc: BaseException, *, route: str,
                         egress_ip: str | None = None) -> BrokerError:
    """Classify an exception raised by an SDK call (transport errors included)."""
    on_order = route in ORDER_ROUTES
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, requests.RequestException):
        if not _never_sent(exc) and on_order:
            return UnknownOutcome(f"no answer from Angel on {route} after sending: {exc}")
        return BrokerDown(f"Angel could not be reached ({route}): {exc}")
    if isinstance(exc, sdk_errors.DataException):
        return _from_data_exception(exc, route=route, egress_ip=egress_ip)
    message = str(exc)
    kw: dict[str, Any] = {"broker_message": message or None}
    if isinstance(exc, sdk_errors.TokenException):
        return SessionExpired(message or "session expired", **kw)
    if isinstance(exc, sdk_errors.OrderException | sdk_errors.InputException
                  | sdk_errors.PermissionException):
        return OrderRejected(message, **kw)
    if isinstance(exc, sdk_errors.SmartAPIException):
        return UnknownOutcome(message, **kw) if route == "placeOrder" else BrokerDown(message, **kw)
    raise exc  # a bug in our code, not an answer from Angel: let it surface


def _from_data_exception(exc: Any, *, route: str, egress_ip: str | None) -> BrokerError:
    # The SDK raises DataException for any body that is not JSON. Our AngelClient puts the
    # HTTP status in .code; the stock SDK leaves its default 502 there.
    text = str(exc)
    status = getattr(exc, "code", None)
    empty = text.rstrip().endswith("b''")
    if RATE_LIMIT_TEXT in text.lower():
        return RateLimited("Access denied because of exceeding access rate",
                           broker_message="Access denied because of exceeding access rate")
    if empty and route in ORDER_ROUTES and status in (400, 502):
        return StaticIpRefused(static_ip_message(egress_ip), broker_message="")
    if route == "placeOrder":
        return UnknownOutcome(f"unreadable answer from Angel on {route} (HTTP {status}): {text}")
    return BrokerDown(f"unreadable answer from Angel on {route} (HTTP {status}): {text}")


# --------------------------------------------------------------------------- payloads


def _dec(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _int(value: Any) -> int:
    d = _dec(value)
    return int(d) if d is not None else 0


def _angel_time(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value).strip(), "%d-%b-%Y %H:%M:%S").replace(tzinfo=IST)
    except ValueError:
        return None


def event_for_status(status: OrderStatus) -> OrderEvent | None:
    """The event that reports a broker-side status (for reconciliation)."""
    return _STATUS_EVENT.get(OrderStatus(status))


def order_from_row(row: Mapping[str, Any]) -> BrokerOrder:
    """One order-book (or order-update) row. An unrecognised `orderstatus` stays OPEN (the
    broker has the order) with the raw status in `reason`, for the caller to audit."""
    quantity = _int(row.get("quantity"))
    filled = _int(row.get("filledshares"))
    raw = str(row.get("orderstatus") or row.get("status") or "")
    event = from_angel_report(raw, filled, quantity)
    status = _EVENT_STATUS.get(event, OrderStatus.OPEN) if event else OrderStatus.OPEN
    reason = str(row.get("text") or "").strip() or None
    if event is None:
        reason = f"unrecognised Angel order status {raw!r}" + (f": {reason}" if reason else "")
    avg = _dec(row.get("averageprice"))
    return BrokerOrder(
        client_order_id=str(row.get("ordertag") or ""),
        broker_order_id=str(row.get("orderid") or "") or None,
        status=status,
        quantity=quantity,
        filled_quantity=filled,
        average_price=avg if avg and filled else None,
        reason=reason,
        updated_at=_angel_time(row.get("updatetime")),
    )


def _rows(env: Any) -> list[Mapping[str, Any]]:
    # Angel answers an empty book with data: null, not [].
    data = env.get("data") if isinstance(env, Mapping) else None
    return [r for r in data if isinstance(r, Mapping)] if isinstance(data, list) else []


def orders_from_book(env: Any) -> list[BrokerOrder]:
    return [order_from_row(r) for r in _rows(env)]


def position_from_row(row: Mapping[str, Any]) -> BrokerPosition:
    net = _int(row.get("netqty"))
    avg = _dec(row.get("avgnetprice"))
    return BrokerPosition(
        exchange=str(row.get("exchange") or ""),
        tradingsymbol=str(row.get("tradingsymbol") or ""),
        symboltoken=str(row.get("symboltoken") or ""),
        net_quantity=net,
        average_price=avg if avg else None,
    )


def positions_from_answer(env: Any) -> list[BrokerPosition]:
    return [position_from_row(r) for r in _rows(env)]


def _best(levels: Any) -> Decimal | None:
    if isinstance(levels, list) and levels and isinstance(levels[0], Mapping):
        price = _dec(levels[0].get("price"))
        return price if price and price > 0 else None
    return None


def quote_from_market_data(env: Any, *, exchange: str, symboltoken: str,
                           at: datetime | None = None) -> Quote | None:
    """A `getMarketData("FULL", ...)` answer -> Quote (best bid/ask from the depth), or None
    when the token is not among the fetched rows."""
    data = env.get("data") if isinstance(env, Mapping) else None
    fetched = data.get("fetched") if isinstance(data, Mapping) else None
    for row in fetched or []:
        if not isinstance(row, Mapping) or str(row.get("symbolToken")) != str(symboltoken):
            continue
        ltp = _dec(row.get("ltp"))
        if ltp is None:
            return None
        depth = row.get("depth") if isinstance(row.get("depth"), Mapping) else {}
        return Quote(exchange=exchange, symboltoken=str(symboltoken), ltp=ltp,
                     bid=_best(depth.get("buy")), ask=_best(depth.get("sell")), at=at)
    return None
