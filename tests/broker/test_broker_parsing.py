"""Pure parsing: SmartAPI envelopes, SDK exceptions and order-book rows -> our objects."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from SmartApi import smartExceptions as sdk

from ats_app.engine.broker import errors, parsing
from ats_app.engine.core.fsm import OrderStatus

GATEWAY_INVALID = {"success": False, "message": "Invalid Token", "errorCode": "AG8001",
                   "data": ""}


def env(code: str, message: str) -> dict[str, object]:
    return {"status": False, "message": message, "errorcode": code, "data": None}


@pytest.mark.parametrize(("answer", "route", "expected"), [
    pytest.param(GATEWAY_INVALID, "placeOrder", errors.SessionExpired, id="gateway-AG8001"),
    pytest.param(env("AG8002", "Token expired"), "getOrderBook", errors.SessionExpired,
                 id="AG8002"),
    pytest.param(env("AB1010", "AMX Session Expired"), "placeOrder", errors.SessionExpired,
                 id="AB1010"),
    pytest.param(env("AB1050", "Invalid totp"), "loginByPassword", errors.TotpRefused,
                 id="totp-refused"),
    pytest.param(env("AB1000", "Invalid clientcode or password"), "loginByPassword",
                 errors.LoginFailed, id="bad-pin"),
    pytest.param(env("AB4008", "ordertag length exceeds"), "placeOrder", errors.OrderRejected,
                 id="ordertag-too-long"),
    pytest.param(env("AB1004", "Something Went Wrong"), "placeOrder", errors.UnknownOutcome,
                 id="oms-500-on-order-is-unknown"),
    pytest.param(env("AB1004", "Something Went Wrong"), "getOrderBook", errors.BrokerDown,
                 id="oms-500-on-read-is-down"),
    pytest.param(None, "placeOrder", errors.UnknownOutcome, id="none-on-order"),
])
def test_envelope_errors_classified_by_errorcode(answer: object, route: str,
                                                 expected: type) -> None:
    err = parsing.error_from_envelope(answer, route=route)
    assert type(err) is expected
    if isinstance(answer, dict) and answer.get("message"):
        assert err.broker_message == answer["message"]  # verbatim, for the audit log


def test_success_envelope_is_no_error() -> None:
    assert parsing.error_from_envelope({"status": True, "data": {"orderid": "1"}},
                                       route="placeOrder") is None


def test_rejection_keeps_angels_text_and_code() -> None:
    err = parsing.error_from_envelope(env("AB2001", "Insufficient funds: required 1,234.50"),
                                      route="placeOrder")
    assert isinstance(err, errors.OrderRejected)
    assert (str(err), err.errorcode) == ("Insufficient funds: required 1,234.50", "AB2001")


def _data_exc(body: bytes, code: int | None = None) -> sdk.DataException:
    msg = f"Couldn't parse the JSON response received from the server: {body!r}"
    return sdk.DataException(msg) if code is None else sdk.DataException(msg, code=code)


@pytest.mark.parametrize(("exc", "route", "expected"), [
    pytest.param(_data_exc(b"Access denied because of exceeding access rate"), "placeOrder",
                 errors.RateLimited, id="plain-403-rate-limit"),
    pytest.param(_data_exc(b"", 400), "placeOrder", errors.StaticIpRefused, id="empty-400"),
    pytest.param(_data_exc(b""), "cancelOrder", errors.StaticIpRefused,
                 id="empty-stock-sdk-502"),
    pytest.param(_data_exc(b"", 200), "placeOrder", errors.UnknownOutcome,
                 id="empty-200-order-may-exist"),
    pytest.param(_data_exc(b"", 400), "getOrderBook", errors.BrokerDown, id="empty-on-read"),
    pytest.param(_data_exc(b"Gateway Timeout", 504), "placeOrder", errors.UnknownOutcome,
                 id="504-text-on-order"),
    pytest.param(requests.exceptions.ReadTimeout("read timed out"), "placeOrder",
                 errors.UnknownOutcome, id="timeout-after-send"),
    pytest.param(requests.exceptions.ConnectionError("Connection aborted, RemoteDisconnected"),
                 "placeOrder", errors.UnknownOutcome, id="dropped-after-send"),
    pytest.param(requests.exceptions.ConnectTimeout("connect timeout"), "placeOrder",
                 errors.BrokerDown, id="never-connected"),
    pytest.param(requests.exceptions.ConnectionError("NewConnectionError: Connection refused"),
                 "placeOrder", errors.BrokerDown, id="refused-before-send"),
    pytest.param(requests.exceptions.ReadTimeout("read timed out"), "getOrderBook",
                 errors.BrokerDown, id="timeout-on-read"),
    pytest.param(sdk.TokenException("Invalid API Key"), "getProfile", errors.SessionExpired,
                 id="token-exception"),
    pytest.param(sdk.InputException("Invalid exchange"), "placeOrder", errors.OrderRejected,
                 id="input-exception"),
])
def test_exceptions_classified(exc: BaseException, route: str, expected: type) -> None:
    assert type(parsing.error_from_exception(exc, route=route)) is expected


def test_static_ip_error_names_the_ip_in_use() -> None:
    err = parsing.error_from_exception(_data_exc(b"", 400), route="placeOrder",
                                       egress_ip="203.0.113.7")
    assert "203.0.113.7" in str(err) and "registered static IP" in str(err)


def test_programming_errors_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        parsing.error_from_exception(KeyError("data"), route="placeOrder")


ROW = {"orderid": "261125000000001", "ordertag": "c-1", "quantity": "75",
       "filledshares": "0", "averageprice": 0.0, "orderstatus": "open", "text": "",
       "updatetime": "25-Nov-2026 10:00:01"}


@pytest.mark.parametrize(("changes", "status", "filled", "reason"), [
    pytest.param({}, OrderStatus.OPEN, 0, None, id="open"),
    pytest.param({"filledshares": "25", "averageprice": 101.5}, OrderStatus.PARTIALLY_FILLED,
                 25, None, id="open-with-fill-is-partial"),
    pytest.param({"orderstatus": "complete", "filledshares": "75", "averageprice": 101.5},
                 OrderStatus.FILLED, 75, None, id="complete"),
    pytest.param({"orderstatus": "rejected", "text": "Insufficient Funds"},
                 OrderStatus.REJECTED, 0, "Insufficient Funds", id="rejected-with-text"),
    pytest.param({"orderstatus": "Trigger Pending"}, OrderStatus.TRIGGER_PENDING, 0, None,
                 id="trigger-pending-odd-case"),
    pytest.param({"orderstatus": "frozen by exchange"}, OrderStatus.OPEN, 0,
                 "unrecognised Angel order status 'frozen by exchange'", id="unknown-status"),
])
def test_order_rows(changes: dict[str, object], status: OrderStatus, filled: int,
                    reason: str | None) -> None:
    o = parsing.order_from_row({**ROW, **changes})
    assert (o.status, o.filled_quantity, o.reason) == (status, filled, reason)
    assert (o.client_order_id, o.broker_order_id, o.quantity) == ("c-1", "261125000000001", 75)
    assert o.average_price == (Decimal("101.5") if filled else None)
    assert o.updated_at is not None and o.updated_at.hour == 10


def test_empty_book_and_positions_answer_null() -> None:
    assert parsing.orders_from_book({"status": True, "data": None}) == []
    assert parsing.positions_from_answer({"status": True, "data": None}) == []


def test_position_row() -> None:
    p = parsing.position_from_row({"exchange": "NFO", "tradingsymbol": "NIFTY26NOV2624000CE",
                                   "symboltoken": "43650", "netqty": "-75",
                                   "avgnetprice": "101.25"})
    assert (p.net_quantity, p.average_price) == (-75, Decimal("101.25"))


def test_quote_from_full_market_data_uses_best_depth() -> None:
    answer = {"status": True, "data": {"fetched": [{
        "exchange": "NFO", "symbolToken": "43650", "ltp": 101.2,
        "depth": {"buy": [{"price": 101.15}, {"price": 101.1}],
                  "sell": [{"price": 101.25}, {"price": 101.3}]}}], "unfetched": []}}
    q = parsing.quote_from_market_data(answer, exchange="NFO", symboltoken="43650")
    assert q is not None
    assert (q.ltp, q.bid, q.ask) == (Decimal("101.2"), Decimal("101.15"), Decimal("101.25"))
    assert parsing.quote_from_market_data(answer, exchange="NFO", symboltoken="1") is None
