"""Resting stops through AngelBroker and the official SDK against the simulator: placed
(STOPLOSS / STOPLOSS_LIMIT), trigger pending, moved with modifyOrder, triggered by the price,
filled at or above the limit; cancelled; refused by Limit Price Protection."""

from __future__ import annotations

import time
from decimal import Decimal

from ats_app.engine.broker.angel import AngelBroker
from ats_app.engine.broker.base import BrokerOrder, OrderRequest, OrderType, Side
from ats_app.engine.broker.price_bands import LPP_TEXT
from ats_app.engine.core.fsm import OrderStatus
from tests.broker.conftest import BrokerKit
from tests.broker.test_broker_angel import SBIN, buy, sim_orders

D = Decimal


def stop(coid: str, trigger: str, limit: str, qty: int = 10) -> OrderRequest:
    return OrderRequest(coid, SBIN, Side.SELL, qty, order_type=OrderType.STOPLOSS_LIMIT,
                        price=D(limit), trigger_price=D(trigger))


def until(b: AngelBroker, coid: str, status: OrderStatus, timeout: float = 5.0) -> BrokerOrder:
    """find_order (the order book, 1 read/s) until the order reaches `status`."""
    deadline = time.monotonic() + timeout
    while True:
        found = b.find_order(coid)
        if (found is not None and found.status == status) or time.monotonic() > deadline:
            assert found is not None and found.status == status, found
            return found
        time.sleep(0.1)


def test_a_stop_rests_moves_up_and_fills_when_the_price_falls_through(kit: BrokerKit) -> None:
    b = kit.broker()
    kit.sim.control("POST", "/sim/price", {"token": "3045", "ltp": 900.0})
    b.place_order(buy("stp-entry"))
    placed = b.place_order(stop("stp-1", "880", "870"))
    assert placed.status == OrderStatus.OPEN and placed.broker_order_id  # accepted
    until(b, "stp-1", OrderStatus.TRIGGER_PENDING)
    assert until(b, "stp-entry", OrderStatus.FILLED).filled_quantity == 10
    moved = b.modify_order(placed.broker_order_id, stop("stp-1", "890", "880"))
    assert moved.status == OrderStatus.OPEN  # accepted (the book is read once a second)
    until(b, "stp-1", OrderStatus.TRIGGER_PENDING)
    [row] = [o for o in kit.sim.control("GET", "/sim/orders")["orders"]
             if o["ordertag"] == "stp-1"]  # what a check of the book reads, levels too
    assert (row["variety"], row["status"], row["triggerprice"], row["price"]) == (
        "STOPLOSS", "trigger pending", 890, 880)
    kit.sim.control("POST", "/sim/price", {"token": "3045", "ltp": 889.5})
    filled = until(b, "stp-1", OrderStatus.FILLED)
    assert filled.filled_quantity == 10 and filled.average_price >= D("880")
    assert [p.net_quantity for p in b.positions() if p.symboltoken == "3045"] == [0]


def test_a_resting_stop_cancels_and_a_wide_one_is_rejected(kit: BrokerKit) -> None:
    b = kit.broker()
    kit.sim.control("POST", "/sim/price", {"token": "3045", "ltp": 900.0})
    resting = b.place_order(stop("stp-can", "880", "870"))
    wide = b.place_order(stop("stp-lpp", "880", "850"))  # equity: 3 % of 880 = Rs 26.40
    assert wide.status == OrderStatus.OPEN  # accepted, then refused by the exchange check
    time.sleep(0.15)  # one engine pass
    answer = b.cancel_order(resting.broker_order_id, "STOPLOSS")
    assert answer.status in (OrderStatus.CANCEL_PENDING, OrderStatus.CANCELLED)
    assert until(b, "stp-can", OrderStatus.CANCELLED).filled_quantity == 0
    rejected = until(b, "stp-lpp", OrderStatus.REJECTED)
    assert rejected.reason is not None and rejected.reason.startswith(LPP_TEXT)
    assert "Rs 26.40" in rejected.reason
    kit.sim.control("POST", "/sim/price", {"token": "3045", "ltp": 860.0})
    time.sleep(0.15)
    assert [o.status for o in sim_orders(kit, "stp-can")] == ["cancelled"]
