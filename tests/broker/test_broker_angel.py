"""AngelBroker against the simulator through the unmodified SDK routes."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests

from ats_app.engine.broker import ratelimit
from ats_app.engine.broker.angel import AngelBroker
from ats_app.engine.broker.base import Contract, OrderRequest, OrderType, Side
from ats_app.engine.broker.errors import OrderRejected, RateLimited, UnknownOutcome
from ats_app.engine.broker.reconcile import PendingOrder, reconcile
from ats_app.engine.core.fsm import OrderEvent, OrderStatus
from tests.broker.conftest import BrokerKit
from tests.simulator.sim_kit import CLIENT

SBIN = Contract("NSE", "SBIN-EQ", "3045", 1, Decimal("0.05"))


def buy(coid: str, qty: int = 10, **kw: object) -> OrderRequest:
    return OrderRequest(client_order_id=coid, contract=SBIN, side=Side.BUY, quantity=qty,
                        **kw)  # type: ignore[arg-type]


def sim_orders(kit: BrokerKit, coid: str) -> list[object]:
    return [o for o in kit.sim.server.state.orders.for_client(CLIENT) if o.ordertag == coid]


def fault(kit: BrokerKit, **spec: object) -> None:
    kit.sim.control("POST", "/sim/faults", dict(spec))


def settle(b: AngelBroker, coid: str, timeout: float = 5.0) -> object:
    """find_order until the order leaves "open pending" (the book is read at most 1/s)."""
    time.sleep(0.15)  # one engine pass in the simulator
    deadline = time.monotonic() + timeout
    while True:
        found = b.find_order(coid)
        if (found is not None and found.status != OrderStatus.OPEN) or \
                time.monotonic() > deadline:
            return found


def test_market_order_carries_ordertag_and_fills(kit: BrokerKit) -> None:
    b = kit.broker()
    placed = b.place_order(buy("ord-fill-1"))
    assert placed.status == OrderStatus.OPEN and placed.broker_order_id
    [sim_order] = sim_orders(kit, "ord-fill-1")
    assert sim_order.orderid == placed.broker_order_id
    found = settle(b, "ord-fill-1")
    assert found.status == OrderStatus.FILLED and found.filled_quantity == 10
    assert found.average_price and found.average_price > 0
    [pos] = [p for p in b.positions() if p.symboltoken == "3045"]
    assert pos.net_quantity == 10


def test_margin_rejection_surfaces_angels_text(kit: BrokerKit) -> None:
    b = kit.broker()
    b.place_order(buy("ord-margin", qty=100_000))
    found = settle(b, "ord-margin")
    assert found.status == OrderStatus.REJECTED
    assert found.reason.startswith("Your order has been rejected due to Insufficient Funds.")


def test_field_error_is_rejected_with_the_broker_message(kit: BrokerKit) -> None:
    b = kit.broker()
    bad = Contract("NSE", "NOPE-EQ", "999999999", 1, Decimal("0.05"))
    with pytest.raises(OrderRejected) as caught:
        b.place_order(OrderRequest("ord-bad", bad, Side.BUY, 1))
    assert caught.value.broker_message and caught.value.errorcode
    assert sim_orders(kit, "ord-bad") == []


def test_timeout_after_accept_is_unknown_and_the_book_resolves_it_to_one_order(
        kit: BrokerKit, monkeypatch: pytest.MonkeyPatch) -> None:
    # The order reaches Angel and is accepted, but the answer never arrives. (The simulator's
    # latency fault cannot model this: it delays before reading the body, so a client that
    # gives up first leaves no order. Dropping the answer in our transport is exact.)
    b = kit.broker()
    client = b.session.client()
    real = client.reqsession.request

    def answer_lost(method: str, url: str, **kw: object) -> object:
        response = real(method, url, **kw)
        if url.endswith("/placeOrder"):
            raise requests.exceptions.ReadTimeout("read timed out (answer lost)")
        return response

    monkeypatch.setattr(client.reqsession, "request", answer_lost)
    with pytest.raises(UnknownOutcome):
        b.place_order(buy("ord-unknown"))
    found = settle(b, "ord-unknown")
    assert found is not None and found.status == OrderStatus.FILLED
    assert len(sim_orders(kit, "ord-unknown")) == 1  # exactly one: nothing was resent
    [decision] = reconcile([PendingOrder("ord-unknown", OrderStatus.UNKNOWN)], b.orders())
    assert decision.events == [OrderEvent.RECONCILE_FOUND, OrderEvent.FILL]


def test_timeout_before_processing_is_unknown_then_not_found(kit: BrokerKit) -> None:
    # The timeout applies to every call (login, order book too): 1 s is ample for those,
    # and the 3 s hold is far beyond it, so only the faulted placeOrder times out.
    b = kit.broker(timeout=1.0)
    b.session.tokens()
    fault(kit, route="placeOrder", kind="timeout", ms=3000, times=1)
    with pytest.raises(UnknownOutcome):
        b.place_order(buy("ord-lost"))
    assert b.find_order("ord-lost") is None and sim_orders(kit, "ord-lost") == []
    [decision] = reconcile([PendingOrder("ord-lost", OrderStatus.UNKNOWN)], b.orders())
    assert decision.final_status == OrderStatus.FAILED


def test_rate_limit_answer_backs_off_and_places_exactly_once(kit: BrokerKit) -> None:
    b = kit.broker()
    b.session.tokens()
    fault(kit, route="placeOrder", kind="rate_limit", times=2)
    started = time.monotonic()
    placed = b.place_order(buy("ord-403"))
    assert time.monotonic() - started >= 0.15  # held 0.05 s, then 0.1 s
    assert placed.broker_order_id and len(sim_orders(kit, "ord-403")) == 1


def test_persistent_rate_limit_is_reported_without_an_order(kit: BrokerKit) -> None:
    b = kit.broker()
    b.session.tokens()
    fault(kit, route="placeOrder", kind="rate_limit", times=10)
    with pytest.raises(RateLimited):
        b.place_order(buy("ord-403x"))
    assert sim_orders(kit, "ord-403x") == []


def test_burst_over_angels_limit_waits_instead_of_failing(
        kit: BrokerKit, monkeypatch: pytest.MonkeyPatch) -> None:
    # Our limiter counts a request before sending, the simulator when it arrives; a wider
    # pad (1.5 s instead of 1.1 s per 1 s window) absorbs a loaded machine's wire delays.
    monkeypatch.setattr(ratelimit, "PAD_FRACTION", 0.5)
    b = kit.broker()
    b.session.tokens()
    penalties: list[str] = []
    b.limiter.penalize = lambda bucket, s: penalties.append(bucket)  # type: ignore[method-assign]
    started = time.monotonic()
    for i in range(24):
        b.place_order(buy(f"burst-{i}"))
    assert time.monotonic() - started >= 0.9  # 4 of them waited for the next second
    assert penalties == []  # the simulator (Angel's limits) never had to refuse one
    assert len(kit.sim.server.state.orders.for_client(CLIENT)) == 24


def test_expired_session_mid_day_renews_and_places_once(kit: BrokerKit) -> None:
    b = kit.broker()
    b.session.tokens()
    kit.sim.control("POST", "/sim/expire", {"clientcode": CLIENT})
    placed = b.place_order(buy("ord-renew"))
    assert placed.broker_order_id and len(sim_orders(kit, "ord-renew")) == 1
    assert (b.session.renewals, b.session.logins) == (1, 1)
    fault(kit, route="placeOrder", kind="invalid_token", times=1)  # AG8001 in gateway shape
    assert b.place_order(buy("ord-renew2")).broker_order_id
    assert len(sim_orders(kit, "ord-renew2")) == 1 and b.session.renewals == 2


def test_limit_order_cancel(kit: BrokerKit) -> None:
    b = kit.broker()
    q = b.quote(SBIN)
    assert q.bid and q.ask and q.bid < q.ask and q.ltp > 0
    low = (q.bid * Decimal("0.9") / SBIN.tick_size).to_integral_value() * SBIN.tick_size
    placed = b.place_order(buy("ord-cancel", order_type=OrderType.LIMIT, price=low))
    time.sleep(0.15)
    after = b.cancel_order(placed.broker_order_id)
    assert after.client_order_id == "ord-cancel"
    assert after.status in (OrderStatus.CANCEL_PENDING, OrderStatus.CANCELLED)
    assert settle(b, "ord-cancel").status == OrderStatus.CANCELLED


def test_ordertag_longer_than_angel_allows_is_refused_locally(kit: BrokerKit) -> None:
    with pytest.raises(OrderRejected, match="1-20 characters"):
        kit.broker().place_order(buy("x" * 21))
