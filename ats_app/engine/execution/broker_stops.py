"""Stops resting at the broker: a position that stays protected while our processes are down.

A link with "Stop at broker" (`WebhookLink.broker_stop`) gives each position it opens a SELL
STOPLOSS_LIMIT order in the broker's book at the position's stop (an order row with purpose
STOP, ordertag `P{position}S{n}`). Our monitor keeps watching the position as before and
stays the judge of every exit; the resting order is what fires when we cannot.

- `place_stop` (job, after the entry's position opens): the order row is written only while
  the position is still OPEN, in the transaction that touches the position's row, so an exit
  claim (an update of that row) comes either before it (nothing placed) or after it (its
  exit job finds the row and cancels the order).
- `move_stop` (job, from the monitor's trail): `modifyOrder` up to the trailing stop, by a
  tick at least, a few per second per account at most.
- `clear_for_exit` (inside every exit job, before its sell): the resting order cancelled and
  confirmed, or found filled: then the position is closed by it (`stop_loss_at_broker`) and
  nothing is sold. A sell is sent only once no stop can fill any more: one exit, never two.
- `on_stop_report` (order-update stream, the book): a filled stop closes the position; a
  stop the broker refused or cancelled while the position is open is reported at once.
- `sync_resting` (job, every recovery pass): each account's resting stops looked up in its
  book, so a stop that filled while everything of ours was down closes its position.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import UTC, timedelta
from decimal import Decimal

import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select

from ats_app.engine.broker.base import (
    Broker,
    BrokerOrder,
    Contract,
    OrderRequest,
    OrderType,
    Side,
)
from ats_app.engine.broker.errors import BrokerError, OrderRejected
from ats_app.engine.broker.factory import broker_for
from ats_app.engine.broker.price_bands import BandKind, band_kind
from ats_app.engine.core.errors import AtsError
from ats_app.engine.core.fsm import OrderEvent, OrderStatus, is_terminal
from ats_app.engine.core.money import to_paise, to_rupees
from ats_app.engine.execution import order_store, positions
from ats_app.engine.execution.stop_fills import (
    AT_BROKER,
    STOP,
    average_fill,
    on_stop_report,
    stop_orders,
)
from ats_app.engine.execution.submit import (
    IN_FLIGHT_S,
    after_its_sender,
    apply_look_up,
    apply_placement,
    job_session,
    log_outcome,
    look_up,
    place,
)
from ats_app.engine.exits.resting_stop import limit_for, trigger_for, worth_moving
from ats_app.engine.store import audit
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order, Position, utcnow
from ats_app.engine.store.queueing import connection, enqueue_broker_stop

log = logging.getLogger("ats.broker_stops")

VARIETY = "STOPLOSS"
# Angel allows 20 order-route calls a second per account; trailing takes a few of them.
ACCOUNT_MOVES_PER_S = 3
CANCEL_WAIT_S = 6.0  # a cancel's confirmation, looked for in the book (1 read a second)


class StopStillWorking(RuntimeError):
    """The resting stop's cancel is not confirmed yet: the exit job must not sell. Not an
    `AtsError` (which callers record as a final failure): it fails the job, RQ retries it,
    and the retry finds the stop cancelled or filled."""


def client_id(position_id: int, n: int) -> str:
    return f"P{position_id}S{n}"


def request_of(order: Order, tick: Decimal) -> OrderRequest:
    contract = Contract(order.exchange, order.symbol, order.symbol_token, 1, tick)
    return OrderRequest(client_order_id=order.client_order_id, contract=contract,
                        side=Side(order.side), quantity=order.quantity,
                        order_type=OrderType.STOPLOSS_LIMIT,
                        price=to_rupees(order.price_paise),
                        trigger_price=to_rupees(order.trigger_paise))


def _kind(position: Position) -> BandKind:
    return band_kind(position.exchange, position.symbol)


def _tick(position: Position) -> Decimal:
    return to_rupees(position.tick_size_paise or 5) or Decimal("0.05")


# --- placing ----------------------------------------------------------------------------

_POSITIONS = Position.__table__  # type: ignore[attr-defined]
# Takes the position's row (its write lock; on SQLite the database's) while it is OPEN.
_HOLD_OPEN = (sa.update(_POSITIONS).where(_POSITIONS.c.id == sa.bindparam("pid"))
              .where(_POSITIONS.c.status == "OPEN").values(broker_stop=True))


def place_stop(position_id: int) -> str:
    """The RQ job: rest the position's stop at the broker, once."""
    started = time.perf_counter()
    outcome = _place(position_id)
    log_outcome(f"stop at broker for position {position_id}", outcome, started)
    return outcome


def _place(position_id: int) -> str:
    with job_session() as s:
        position = s.get(Position, position_id)
        if position is None or not position.broker_stop:
            return "skipped: no stop at broker for this position"
        earlier = stop_orders(s, position_id)
        if any(not is_terminal(OrderStatus(o.status)) or o.filled_quantity for o in earlier):
            return "skipped: a stop is already at the broker"  # a rerun of this job
        if position.status != "OPEN" or position.stop_paise is None:
            return f"skipped: position {position.status.lower()}"
        broker = broker_for(s, position.user_id, position.account_id, paper=position.paper,
                            redis=connection())
        tick = _tick(position)
        trigger = trigger_for(to_rupees(position.stop_paise) or Decimal(0), tick)
        candidate = Order(
            user_id=position.user_id, account_id=position.account_id,
            link_id=position.link_id, position_id=position_id,
            client_order_id=client_id(position_id, len(earlier)), purpose=STOP,
            exchange=position.exchange, symbol=position.symbol,
            symbol_token=position.symbol_token, side="SELL",
            order_type=OrderType.STOPLOSS_LIMIT.value, quantity=position.quantity,
            price_paise=to_paise(limit_for(trigger, tick, _kind(position))),
            trigger_paise=to_paise(trigger),
            paper=position.paper, reason="stop at broker")
        s.commit()
        if s.execute(_HOLD_OPEN, {"pid": position_id}).rowcount != 1:  # type: ignore[attr-defined]
            s.rollback()
            return "skipped: the position is exiting"
        order = order_store.create(candidate, session=s, submit=True)
        s.commit()  # required: SUBMITTING is durable before the broker call
        if order is not candidate:
            return "skipped: a concurrent run placed it"
        order = _send(s, order, broker, tick)
        if is_terminal(OrderStatus(order.status)):
            on_stop_report(order, connection(), session=s)
        return f"{order.status.lower()}: {order.client_order_id} trigger " \
               f"{to_rupees(order.trigger_paise)} limit {to_rupees(order.price_paise)}"


def _send(s: Session, order: Order, broker: Broker, tick: Decimal) -> Order:
    """placeOrder, then an unknown outcome looked up in the book (never resent). Not left
    for the follower: a resting stop works for hours, its fill comes by the order-update
    stream or `sync_resting`."""
    assert order.id is not None
    request = request_of(order, tick)
    order = apply_placement(s, order.id, place(broker, request))
    if OrderStatus(order.status) == OrderStatus.UNKNOWN:
        s.commit()
        order = apply_look_up(s, order.id, look_up(broker, order.client_order_id))  # type: ignore[arg-type]
    s.commit()
    return order


# --- trailing ---------------------------------------------------------------------------

def move_stop(position_id: int, stop_paise: int) -> str:
    """The RQ job: move the resting stop up to the monitor's trailing stop."""
    started = time.perf_counter()
    outcome = _move(position_id, stop_paise)
    log_outcome(f"move of position {position_id}'s stop at broker", outcome, started)
    return outcome


def _move(position_id: int, stop_paise: int) -> str:
    conn = connection()
    with job_session() as s:
        position = s.get(Position, position_id)
        if position is None or position.status != "OPEN":
            return "skipped: position not open"
        resting = [o for o in stop_orders(s, position_id) if o.broker_order_id
                   and OrderStatus(o.status) in (OrderStatus.OPEN, OrderStatus.TRIGGER_PENDING)]
        if not resting:
            return "skipped: no stop resting at the broker"
        order = resting[-1]
        tick = _tick(position)
        trigger = trigger_for(to_rupees(stop_paise) or Decimal(0), tick)
        if not worth_moving(order.trigger_paise or 0, to_paise(trigger) or 0,
                            position.tick_size_paise or 5):
            return f"skipped: resting at {to_rupees(order.trigger_paise)} already"
        if not _account_slot(conn, position.account_id or 0):
            return "skipped: the account's modify budget for this second is spent"
        broker = broker_for(s, position.user_id, position.account_id, paper=position.paper,
                            redis=conn)
        limit = limit_for(trigger, tick, _kind(position))
        request = OrderRequest(
            client_order_id=order.client_order_id,
            contract=Contract(order.exchange, order.symbol, order.symbol_token, 1, tick),
            side=Side.SELL, quantity=order.quantity, order_type=OrderType.STOPLOSS_LIMIT,
            price=limit, trigger_price=trigger)
        before = to_rupees(order.trigger_paise)
        try:
            view = broker.modify_order(order.broker_order_id, request)  # type: ignore[arg-type]
        except BrokerError as exc:
            # Refused: it triggered, filled or was cancelled meanwhile. The book says which.
            found = broker.find_order(order.client_order_id)
            if found is not None:
                order = order_store.apply_report(order.id, found, quiet=True, session=s)  # type: ignore[arg-type]
                s.commit()
                if is_terminal(OrderStatus(order.status)):
                    on_stop_report(order, conn, session=s)
            return f"not moved: {exc}"
        order.trigger_paise, order.price_paise = to_paise(trigger), to_paise(limit)
        s.add(order)
        audit.record(s, "position.broker_stop_moved", user_id=position.user_id,
                     subject=str(position_id), order=order.client_order_id,
                     trigger=str(trigger), limit=str(limit), was=str(before))
        s.commit()
        if is_terminal(view.status):  # paper: moved through the market, filled at once
            order = order_store.apply_report(order.id, view, quiet=True, session=s)  # type: ignore[arg-type]
            s.commit()
            on_stop_report(order, conn, session=s)
        return f"moved: {before} -> {trigger}"


def _account_slot(conn: redis.Redis, account_id: int) -> bool:
    """At most ACCOUNT_MOVES_PER_S modifies a second per account: the next trail step
    brings a later, higher stop anyway."""
    key = f"ats:broker-stop:moves:{account_id}:{int(time.time())}"
    with conn.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, 3)
        used, _ = pipe.execute()
    return int(used) <= ACCOUNT_MOVES_PER_S


# --- exits ------------------------------------------------------------------------------

def clear_for_exit(s: Session, position: Position, broker: Broker) -> int:
    """Before any sell of `position` (claimed EXITING by the caller): its resting stops
    cancelled and confirmed, or found filled. Returns the quantity still to sell; 0 means
    the stop sold it all, and the position is closed here by the stop's fill. Raises
    `StopStillWorking` while a cancel is not confirmed: selling then could sell twice."""
    assert position.id is not None
    for order in stop_orders(s, position.id):
        if not is_terminal(OrderStatus(order.status)):
            _cancel(s, order, broker, _tick(position))
    stops = stop_orders(s, position.id)
    filled = sum(o.filled_quantity for o in stops)
    if filled >= position.quantity:
        last = next(o for o in reversed(stops) if o.filled_quantity)
        positions.close_from_exit(position.id, last.id, AT_BROKER, connection(),  # type: ignore[arg-type]
                                  session=s, exit_price_paise=average_fill(stops))
        return 0
    return position.quantity - filled


def _cancel(s: Session, order: Order, broker: Broker, tick: Decimal) -> None:
    assert order.id is not None
    order = after_its_sender(s, order.id, order)
    status = OrderStatus(order.status)
    if status == OrderStatus.SUBMITTING:  # its sender died mid-call: look, never guess
        order = order_store.transition(order.id, OrderEvent.TIMEOUT,
                                       reason="exit: the stop's sender did not answer",
                                       session=s)
        status = OrderStatus(order.status)
    if status == OrderStatus.UNKNOWN:
        s.commit()
        order = apply_look_up(s, order.id, look_up(broker, order.client_order_id))
        s.commit()
        status = OrderStatus(order.status)
    if is_terminal(status):
        return
    if status != OrderStatus.CANCEL_PENDING:
        order = order_store.transition(order.id, OrderEvent.CANCEL_REQUEST,
                                       reason="exit: cancelling the stop at broker", session=s)
        s.commit()  # the cancel is on record before it is asked for
    view: BrokerOrder | None = None
    try:
        view = broker.cancel_order(order.broker_order_id or "", VARIETY)
    except OrderRejected as exc:  # e.g. "cannot be cancelled as it is complete": look
        log.info("cancel of %s refused: %s", order.client_order_id, exc)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while view is None or not is_terminal(view.status):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2 if broker.is_paper else 1.0)  # Angel's book: one read a second
        view = broker.find_order(order.client_order_id)
    if view is not None and view.status != OrderStatus.CANCEL_PENDING:
        order = order_store.apply_report(order.id, view, quiet=True, session=s)
    s.commit()
    if not is_terminal(OrderStatus(order.status)):
        raise StopStillWorking(f"the stop at broker {order.client_order_id} is not cancelled "
                               "yet; the exit waits for it")


# --- recovery ---------------------------------------------------------------------------

# Read in SQL, not filtered in Python: the table keeps every stop ever placed.
_NOT_FINAL = [st.value for st in OrderStatus if not is_terminal(st)]


def sync_resting() -> str:
    """The RQ job (every recovery pass, and so at every start): each account's resting stops
    looked up in its order book, one read per account; a stop that filled while nothing of
    ours was listening closes its position now, and nothing more is sent. A stop whose
    sender died before Angel had it is marked so (never resent blindly), and an open
    position that should have a stop and has none gets its placing job again."""
    with session_scope() as s:
        working = list(s.exec(select(Order).where(Order.purpose == STOP)
                              .where(col(Order.status).in_(_NOT_FINAL))).all())
    unplaced = _unplaced()
    by_account: dict[tuple[int, int | None, bool], list[Order]] = defaultdict(list)
    for o in working:
        by_account[(o.user_id, o.account_id, o.paper)].append(o)
    conn = connection()
    changed = 0
    for (user_id, account_id, paper), orders in by_account.items():
        try:
            with session_scope() as s:
                broker = broker_for(s, user_id, account_id, paper=paper, redis=conn)
            book = {b.client_order_id: b for b in _book(broker, orders)}
        except (BrokerError, AtsError) as exc:
            log.warning("stops of account %s not looked up: %s", account_id, exc)
            continue
        for o in orders:
            found = book.get(o.client_order_id)
            if found is None and o.id is not None and _lost_in_flight(o):
                with job_session() as s:
                    order_store.transition(o.id, OrderEvent.TIMEOUT, session=s,
                                           reason="recovery: the stop's sender did not answer")
                    apply_look_up(s, o.id, None)  # not in the book: it never reached Angel
                unplaced.append(o.position_id)  # type: ignore[arg-type]
                continue
            if found is None or o.id is None:
                continue
            with job_session() as s:
                updated = order_store.apply_report(o.id, found, quiet=True, session=s)
                s.commit()
                if updated.status != o.status or updated.filled_quantity != o.filled_quantity:
                    changed += 1
                if is_terminal(OrderStatus(updated.status)):
                    on_stop_report(updated, conn, session=s)
    for pid in sorted(set(unplaced)):
        enqueue_broker_stop(pid, conn)  # the job places it only on an OPEN position
    return (f"{len(working)} resting stop(s) looked up, {changed} changed, "
            f"{len(set(unplaced))} to place")


def _lost_in_flight(order: Order) -> bool:
    """SUBMITTING (or UNKNOWN) for longer than a sender can wait on its answer."""
    if OrderStatus(order.status) not in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
        return False
    created = order.created_at if order.created_at.tzinfo else \
        order.created_at.replace(tzinfo=UTC)
    return utcnow() - created > timedelta(seconds=IN_FLIGHT_S * 3)


def _unplaced() -> list[int]:
    """OPEN positions with Stop at broker and no stop order at all (the placing job was
    never enqueued: Redis was down when the entry filled) or only ones that never reached
    the broker. A stop the broker refused or cancelled is not placed again by itself: it
    was reported, and the monitor guards the position."""
    with session_scope() as s:
        rows = s.exec(select(Position.id).where(Position.status == "OPEN")
                      .where(col(Position.broker_stop).is_(True))).all()
        out = []
        for pid in rows:
            stops = stop_orders(s, pid)  # type: ignore[arg-type]
            if all(o.status == OrderStatus.FAILED.value for o in stops):
                out.append(pid)
        return out  # type: ignore[return-value]


def _book(broker: Broker, orders: list[Order]) -> list[BrokerOrder]:
    listing = getattr(broker, "orders", None)
    if callable(listing):
        return list(listing())
    return [b for b in (broker.find_order(o.client_order_id) for o in orders) if b]
