"""Fills through Angel's order-update socket (the official SDK class against the simulator),
with the order book polled only when the stream is down or after a reconnect."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from sqlmodel import select

from ats_app.engine.broker.base import Contract, OrderRequest, OrderType, Side
from ats_app.engine.broker.factory import angel_broker, broker_for
from ats_app.engine.core.money import to_paise
from ats_app.engine.execution import follower, order_store, order_updates, positions
from ats_app.engine.execution.submit import drive
from ats_app.engine.services.order_update_stream import OrderUpdateProcess
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, AuditEvent, Order, Position, WebhookLink
from ats_app.engine.store.queueing import connection
from ats_app.engine.tenants import accounts
from ats_app.simulator.server import ServerThread
from tests.pipeline.sim_book import book as _sim_book
from tests.pipeline.sim_book import market_filled_at_sim
from tests.pipeline.test_pipeline import _orders, _post, _run_burst_worker
from tests.simulator.sim_kit import wait_for

SBIN = Contract(exchange="NSE", tradingsymbol="SBIN-EQ", symboltoken="3045", lot_size=1,
                tick_size=Decimal("0.05"))


class Consumer:
    """`OrderUpdateProcess` (what `cli order-updates` runs) in a thread of the test."""

    def __init__(self) -> None:
        self.process: OrderUpdateProcess | None = None
        self.thread: threading.Thread | None = None

    def start(self, account_id: int) -> OrderUpdateProcess:
        self.process = OrderUpdateProcess(connection())
        self.thread = threading.Thread(target=self.process.run, daemon=True)
        self.thread.start()
        assert wait_for(lambda: order_updates.stream_up(connection(), account_id), 15), \
            "the order-update stream never came up"
        return self.process

    def stop(self) -> None:
        if self.process is not None and self.thread is not None:
            self.process.stopping.set()
            self.thread.join(15)
            assert not self.thread.is_alive()
        self.process = self.thread = None


@pytest.fixture
def consumer(world: dict) -> Iterator[Consumer]:
    with session_scope() as s:  # the account has a session (as after the pre-open login)
        creds = accounts.credentials(s, world["user"], world["account"])
    broker = angel_broker(creds, connection())
    broker.session.tokens()
    broker.close()
    c = Consumer()
    yield c
    c.stop()


def _calls(sim: ServerThread, route: str) -> int:
    return int(httpx.get(f"{sim.base_url}/sim/health").json()["calls"].get(route, 0))


def _quote(sim: ServerThread, token: str) -> dict:
    return httpx.get(f"{sim.base_url}/sim/quote/{token}").json()


def _entry(world: dict, tag: str, order_type: OrderType, price: Decimal | None):
    """An entry order row on the live link, as the pipeline writes it, and its request."""
    with session_scope() as s:
        link = s.exec(select(WebhookLink).where(WebhookLink.name == "live")).one()
    order = order_store.create(Order(
        user_id=world["user"], account_id=world["account"], link_id=link.id,
        client_order_id=tag, purpose="ENTRY", exchange=SBIN.exchange,
        symbol=SBIN.tradingsymbol, symbol_token=SBIN.symboltoken, side="BUY", quantity=10,
        price_paise=to_paise(price), paper=False, reason="entry signal"))
    request = OrderRequest(client_order_id=tag, contract=SBIN, side=Side.BUY, quantity=10,
                           order_type=order_type, price=price)
    return order, request


def _live_broker(world: dict):
    with session_scope() as s:
        return broker_for(s, world["user"], world["account"], paper=False, redis=connection())


def _alert_status() -> str:
    with session_scope() as s:
        (alert,) = s.exec(select(Alert)).all()
    return alert.status


def _position_of(order_id: int) -> Position | None:
    with session_scope() as s:
        order = s.get(Order, order_id)
        return s.get(Position, order.position_id) if order and order.position_id else None


def _working_limit(world: dict, tag: str) -> tuple[Order, float]:
    """A BUY LIMIT below the market, sent through the job's own path (`drive`)."""
    ask = float(_quote(world["sim"], SBIN.symboltoken)["ask"])
    limit = (Decimal(str(ask)) * Decimal("0.9") / SBIN.tick_size).to_integral() * SBIN.tick_size
    row, request = _entry(world, tag, OrderType.LIMIT, limit)
    started = time.monotonic()
    order = drive(row.id, _live_broker(world), request)
    return order, time.monotonic() - started


def _cross(sim: ServerThread, token: str, limit_paise: int | None) -> None:
    ltp = round((limit_paise or 0) * 0.95 / 5) * 5 / 100  # well under the limit, on a tick
    httpx.post(f"{sim.base_url}/sim/price", json={"token": token, "ltp": ltp}
               ).raise_for_status()


def test_live_alert_fills_through_the_socket_without_polling_the_book(
    world: dict, consumer: Consumer
) -> None:
    consumer.start(world["account"])
    books = _calls(world["sim"], "getOrderBook")
    _post(world["live"], id="ws-1")
    _run_burst_worker()
    assert wait_for(lambda: _orders()[0].status == "FILLED", 10), _orders()[0].status
    (order,) = _orders()
    assert order.filled_quantity == order.quantity
    assert wait_for(lambda: _alert_status() == "DONE", 10)  # the consumer gave the verdict
    assert _calls(world["sim"], "getOrderBook") == books  # the fill came over the socket
    with session_scope() as s:
        (position,) = s.exec(select(Position)).all()  # job and consumer: one position
        fills = s.exec(select(AuditEvent).where(AuditEvent.subject == order.client_order_id)
                       .where(AuditEvent.action == "order.fill")).all()
        ignored = s.exec(select(AuditEvent).where(AuditEvent.action == "order.transition_ignored")
                         ).all()
    assert position.status == "OPEN" and position.quantity == order.filled_quantity
    assert len(fills) == 1 and ignored == []  # socket and REST answer: reported once


def test_limit_order_left_to_the_stream_fills_and_opens_its_position(
    world: dict, consumer: Consumer
) -> None:
    consumer.start(world["account"])
    books = _calls(world["sim"], "getOrderBook")
    order, took = _working_limit(world, "LIM1")
    assert order.status == "OPEN", order.reason
    assert took < 1.0  # the worker is free: it does not wait for the fill
    assert _position_of(order.id) is None
    _cross(world["sim"], SBIN.symboltoken, order.price_paise)
    assert wait_for(lambda: _position_of(order.id), 10), order_store.get(order.id).status
    filled = order_store.get(order.id)
    assert filled.status == "FILLED" and filled.average_price_paise
    assert _calls(world["sim"], "getOrderBook") == books
    # The job's own post-fill step after the consumer's changes nothing (idempotent).
    again = positions.open_from_entry(order.id, Decimal("0.05"), None)
    assert again is not None and again.id == _position_of(order.id).id
    with session_scope() as s:
        assert len(s.exec(select(Position)).all()) == 1


def test_rejection_reason_arrives_verbatim_over_the_socket(
    world: dict, consumer: Consumer
) -> None:
    consumer.start(world["account"])
    reason = "RMS:Rule: Check circuit limit including square off order exceeds : 1"
    httpx.post(f"{world['sim'].base_url}/sim/faults",
               json={"route": "placeOrder", "kind": "reject", "message": reason}
               ).raise_for_status()
    books = _calls(world["sim"], "getOrderBook")
    row, request = _entry(world, "REJ1", OrderType.MARKET, None)
    drive(row.id, _live_broker(world), request)  # accepted, then refused by Angel's RMS
    assert wait_for(lambda: order_store.get(row.id).status == "REJECTED", 10)
    assert order_store.get(row.id).reason == reason
    assert _calls(world["sim"], "getOrderBook") == books


def test_consumer_down_the_follower_polls_the_book_and_still_fills(world: dict) -> None:
    assert not order_updates.stream_up(connection(), world["account"])
    books = _calls(world["sim"], "getOrderBook")
    row, request = _entry(world, "POLL1", OrderType.MARKET, None)
    started = time.monotonic()
    order = drive(row.id, _live_broker(world), request)
    assert time.monotonic() - started < 1.0  # placed and left: no wait for the fill
    assert order.status == "OPEN" and _calls(world["sim"], "getOrderBook") == books
    # The job armed the account's follower: one round reads the book and finishes it.
    assert connection().exists(follower.lease_key(world["account"]))
    market_filled_at_sim(world["sim"])
    follower.follow_account(world["user"], world["account"])
    assert order_store.get(order.id).status == "FILLED"
    assert _calls(world["sim"], "getOrderBook") == books + 1


def test_reconnect_catches_up_changes_missed_while_down(world: dict, consumer: Consumer) -> None:
    consumer.start(world["account"])
    order, _ = _working_limit(world, "LIM2")
    assert order.status == "OPEN"
    consumer.stop()  # the fill below happens while nobody listens
    assert not order_updates.stream_up(connection(), world["account"])
    _cross(world["sim"], SBIN.symboltoken, order.price_paise)
    assert wait_for(lambda: any(
        o["ordertag"] == "LIM2" and o["orderstatus"] == "complete"
        for o in _sim_book(world["sim"])), 5)
    assert order_store.get(order.id).status == "OPEN"
    books = _calls(world["sim"], "getOrderBook")
    consumer.start(world["account"])  # connects, reads the book once, then trusts the socket
    assert wait_for(lambda: _position_of(order.id), 10)
    assert order_store.get(order.id).status == "FILLED"
    assert _calls(world["sim"], "getOrderBook") == books + 1


def test_dropped_socket_reconnects_and_the_stream_comes_back(
    world: dict, consumer: Consumer
) -> None:
    process = consumer.start(world["account"])
    httpx.post(f"{world['sim'].base_url}/sim/faults",
               json={"route": "smart-order-update", "kind": "ws_drop"}).raise_for_status()
    stream = process.streams[world["account"]]
    assert wait_for(lambda: stream.reconnects >= 1, 10)
    assert wait_for(lambda: order_updates.stream_up(connection(), world["account"]), 10)


def test_catch_up_opens_only_todays_orphaned_entries(world: dict) -> None:
    # A filled entry whose position never opened (the consumer died in between) is opened
    # on connect - but not one from an earlier day: Angel squared that intraday fill off.
    from datetime import timedelta

    from ats_app.engine.store.models import utcnow

    rows = {}
    for tag, age in (("ORPH-OLD", timedelta(days=3)), ("ORPH-NEW", timedelta(0))):
        row, _ = _entry(world, tag, OrderType.MARKET, None)
        with session_scope() as s:
            o = s.get(Order, row.id)
            o.status, o.filled_quantity, o.average_price_paise = "FILLED", 10, 50_000
            o.created_at = utcnow() - age
            s.add(o)
        rows[tag] = row.id
    order_updates.catch_up(lambda: [], user_id=world["user"], account_id=world["account"],
                           conn=None, tick_of=lambda o: Decimal("0.05"))
    assert _position_of(rows["ORPH-NEW"]) is not None
    assert _position_of(rows["ORPH-OLD"]) is None


def test_socket_unreachable_the_consumer_polls_the_book_and_the_fill_opens_the_position(
    world: dict, consumer: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Angel's order-update socket down while REST works: an order no job follows any more
    still fills and gets its position (and stop-loss) from the consumer's order-book polls."""
    from ats_app.engine.services import order_update_stream

    monkeypatch.setattr(order_update_stream, "order_update_url",
                        lambda base_url: "ws://127.0.0.1:9/smart-order-update")  # refused
    monkeypatch.setattr(order_update_stream, "FALLBACK_POLL_S", 0.5)
    order, _ = _working_limit(world, "LIM3")  # the job has returned: nobody follows it
    assert order.status == "OPEN"
    process = OrderUpdateProcess(connection())
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: world["account"] in process.streams, 10)
        stream = process.streams[world["account"]]
        assert wait_for(lambda: stream.polls >= 1, 10) and not stream.connected
        _cross(world["sim"], SBIN.symboltoken, order.price_paise)
        assert wait_for(lambda: _position_of(order.id), 15), "the fill never reached the row"
        assert order_store.get(order.id).status == "FILLED"
        assert not order_updates.stream_up(connection(), world["account"])
    finally:
        process.stopping.set()
        thread.join(15)
    assert not thread.is_alive()
