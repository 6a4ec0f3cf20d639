"""Parsing Angel's order-update socket messages (the format of its documentation)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ats_app.engine.core.fsm import OrderStatus
from ats_app.engine.execution.order_updates import parse_message


def _msg(code: str, **data: object) -> str:
    row = {"ordertag": "A7E3", "orderid": "261100000000001", "quantity": "75",
           "filledshares": "0", "averageprice": 0.0, "text": "", "orderstatus": "open",
           "status": "open", "updatetime": "02-Dec-2026 10:00:01", **data}
    return json.dumps({"user-id": "T1", "status-code": "200", "order-status": code,
                       "error-message": "", "orderData": row})


def test_complete_is_a_fill_with_quantity_and_price() -> None:
    r = parse_message(_msg("AB05", orderstatus="complete", filledshares="75",
                           averageprice=101.35))
    assert r is not None and r.client_order_id == "A7E3"
    assert r.status == OrderStatus.FILLED and r.filled_quantity == 75
    assert r.average_price == Decimal("101.35") and r.broker_order_id == "261100000000001"


def test_open_with_some_shares_filled_is_a_partial_fill() -> None:
    r = parse_message(_msg("AB01", filledshares="25", averageprice=100.0))
    assert r is not None and r.status == OrderStatus.PARTIALLY_FILLED
    assert r.filled_quantity == 25


def test_rejection_reason_is_kept_verbatim() -> None:
    text = ("Your order has been rejected due to Insufficient Funds. Available funds - "
            "Rs. 12.00 . You require Rs. 7531.25 funds to execute this order.")
    r = parse_message(_msg("AB03", orderstatus="rejected", text=text))
    assert r is not None and r.status == OrderStatus.REJECTED and r.reason == text


def test_status_code_stands_in_when_order_data_has_no_status() -> None:
    for code, status in (("AB10", OrderStatus.TRIGGER_PENDING), ("AB02", OrderStatus.CANCELLED),
                         ("AB09", OrderStatus.OPEN), ("AB05", OrderStatus.FILLED)):
        r = parse_message(_msg(code, orderstatus="", status="", filledshares="0"))
        assert r is not None and r.status == status, code


def test_cancelled_after_a_partial_fill_keeps_the_filled_quantity() -> None:
    r = parse_message(_msg("AB02", orderstatus="cancelled", filledshares="50",
                           averageprice=99.5))
    assert r is not None and r.status == OrderStatus.CANCELLED and r.filled_quantity == 50


def test_not_order_events_are_ignored() -> None:
    greeting = json.dumps({"user-id": "T1", "status-code": "200", "order-status": "AB00",
                           "error-message": "", "orderData": {"ordertag": "", "orderid": ""}})
    assert parse_message(greeting) is None
    assert parse_message("pong") is None and parse_message(b"") is None
    assert parse_message(_msg("AB01", ordertag="")) is None  # not placed by us
    assert parse_message(json.dumps([1, 2])) is None


class _FakeRedis:
    def __init__(self) -> None:
        self.keys: dict[str, object] = {}

    def set(self, key: str, value: object, ex: int | None = None) -> None:
        self.keys[key] = value

    def delete(self, key: str) -> None:
        self.keys.pop(key, None)

    def exists(self, key: str) -> int:
        return int(key in self.keys)


class _FakeSocket:
    killed = False

    def kill(self) -> None:
        self.killed = True


def test_an_update_that_cannot_be_applied_makes_the_stream_reconnect_and_catch_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The socket never repeats a message, and the job may have left the order to the stream:
    # a lost update must send jobs back to polling and the consumer through its catch-up.
    from ats_app.engine.execution import order_updates
    from ats_app.engine.services import order_update_stream
    from ats_app.engine.tenants.accounts import Credentials

    creds = Credentials(account_id=7, client_id="T1", base_url=None, egress_proxy=None,
                        api_key="k", pin="1234", totp_secret="JBSWY3DPEHPK3PXP")
    r = _FakeRedis()
    stream = order_update_stream.AccountStream(
        order_update_stream.LiveAccount(7, 1, creds), r)  # type: ignore[arg-type]
    stream.connected = True
    order_updates.mark_up(r, 7)  # type: ignore[arg-type]
    ws = stream._ws = _FakeSocket()  # type: ignore[assignment]

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(order_updates, "apply_update", broken)
    stream.message(_msg("AB05", orderstatus="complete", filledshares="75", averageprice=101.0))
    assert ws.killed and not stream.connected
    assert not order_updates.stream_up(r, 7)  # type: ignore[arg-type]
