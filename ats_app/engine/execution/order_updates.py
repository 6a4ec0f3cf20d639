"""The order-update stream: Angel's order-update WebSocket messages applied to our order rows.

Three parts, used by the consumer process (`order_update_stream`) and by the order jobs:

- `parse_message`: one socket message -> `BrokerOrder` (pure). Angel sends
  `{"user-id", "status-code", "order-status": "AB05", "error-message", "orderData": {...}}`
  where orderData carries the order-book fields (`ordertag` is our client order id,
  `orderstatus`, `filledshares`, `averageprice`, `text` = the rejection reason).
- `apply_update`: find the order by ordertag among the account's own orders, move it through
  the state machine (a report that tells nothing new changes nothing and is not audited), and
  do what the job does after a fill (open the position of an entry, close the position of an
  exit). Those steps are idempotent, so the job and the consumer may both run them.
- Signals through Redis: a per-order wake-up list the consumer pushes to after every change
  (a job waiting on the order pops it at once), and a per-account "stream is up" key the
  consumer refreshes while its socket is connected. `follow` is the job's side: with the
  stream up it waits for wake-ups instead of polling the 1/s order book, and leaves a
  working order (e.g. a LIMIT not yet crossed) to the stream.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import redis
from sqlmodel import col, select

from ats_app.engine.broker import parsing
from ats_app.engine.broker.base import BrokerOrder
from ats_app.engine.core.fsm import OrderStatus, is_terminal, is_working
from ats_app.engine.execution import order_store, positions, stop_fills, verdict
from ats_app.engine.risk.gate import day_start
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order, utcnow

__all__ = [
    "CODE_STATUS",
    "apply_update",
    "follow",
    "mark_down",
    "mark_up",
    "parse_message",
    "stream_up",
    "wait",
    "wake",
]

log = logging.getLogger("ats.order_updates")

CONNECTED = "AB00"
# Angel's order-update status codes -> the order-book status they stand for. Used only when
# orderData has no status of its own; orderData's `orderstatus` is what the order book says.
CODE_STATUS: dict[str, str] = {
    "AB01": "open",
    "AB02": "cancelled",
    "AB03": "rejected",
    "AB04": "modified",
    "AB05": "complete",
    "AB06": "after market order req received",
    "AB07": "cancelled",  # cancelled after-market order
    "AB08": "modified",  # modify after-market order request received
    "AB09": "open pending",
    "AB10": "trigger pending",
    "AB11": "modify pending",
}

WAKE_TTL_S = 120  # a wake-up nobody pops (the job already returned) expires on its own
UP_TTL_S = 6  # the consumer refreshes every second; a dead consumer is noticed this fast
STREAM_QUIET_S = 1.0  # no news this long on a working order: leave it to the stream


def wake_key(client_order_id: str) -> str:
    return f"ats:order-updates:wake:{client_order_id}"


def up_key(account_id: int) -> str:
    return f"ats:order-updates:up:{account_id}"


# --------------------------------------------------------------------------- parsing


def parse_message(raw: str | bytes | Mapping[str, Any]) -> BrokerOrder | None:
    """One order-update message -> the broker's view of one of our orders, or None for
    anything that is not an order event (the AB00 greeting, pongs, unreadable frames, orders
    without an ordertag, which we never place)."""
    msg: Any = raw
    if isinstance(raw, bytes | str):
        try:
            msg = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(msg, Mapping):
        return None
    code = str(msg.get("order-status") or "").strip().upper()
    data = msg.get("orderData")
    if code == CONNECTED or not isinstance(data, Mapping):
        return None
    if not str(data.get("ordertag") or "").strip():
        return None
    row = dict(data)
    if not str(row.get("orderstatus") or row.get("status") or "").strip():
        row["orderstatus"] = CODE_STATUS.get(code, "")
    report = parsing.order_from_row(row)
    error = str(msg.get("error-message") or "").strip()
    if report.status == OrderStatus.REJECTED and not report.reason and error:
        report = BrokerOrder(**{**report.__dict__, "reason": error})
    return report


# --------------------------------------------------------------------------- signals


def wake(conn: redis.Redis, client_order_id: str, status: str) -> None:
    pipe = conn.pipeline(transaction=False)
    pipe.lpush(wake_key(client_order_id), status)
    pipe.expire(wake_key(client_order_id), WAKE_TTL_S)
    pipe.execute()


def wait(conn: redis.Redis, client_order_id: str, timeout: float) -> bool:
    """Block until the consumer reports a change of this order (True) or `timeout` passes."""
    return conn.blpop([wake_key(client_order_id)], timeout=max(timeout, 0.01)) is not None


def mark_up(conn: redis.Redis, account_id: int) -> None:
    conn.set(up_key(account_id), str(time.time()), ex=UP_TTL_S)


def mark_down(conn: redis.Redis, account_id: int) -> None:
    conn.delete(up_key(account_id))


def stream_up(conn: redis.Redis, account_id: int | None) -> bool:
    if account_id is None:
        return False
    try:
        return bool(conn.exists(up_key(account_id)))
    except redis.RedisError:
        return False


def follow(
    order_id: int, client_order_id: str, account_id: int | None, conn: redis.Redis,
    deadline: float,
) -> Order | None:
    """The job's wait on a live order while the stream is up: returns the order once it is
    terminal, or working with no news for `STREAM_QUIET_S` (the consumer finishes it), or
    at `deadline`; None as soon as the stream is down (the caller polls the order book)."""
    order = order_store.get(order_id)
    while not is_terminal(OrderStatus(order.status)):
        if not stream_up(conn, account_id):
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            return order
        try:
            news = wait(conn, client_order_id, min(STREAM_QUIET_S, left))
        except redis.RedisError:
            return None
        order = order_store.get(order_id)
        if not news and is_working(OrderStatus(order.status)):
            return order
    return order


# --------------------------------------------------------------------------- applying

TickLookup = Callable[[Order], Decimal]


def _find(client_order_id: str, user_id: int, account_id: int) -> Order | None:
    # Scoped to the account's owner and the account: an ordertag is only ours to apply when
    # it is one of this account's live orders.
    with session_scope() as s:
        return s.exec(
            select(Order)
            .where(Order.client_order_id == client_order_id)
            .where(Order.user_id == user_id)
            .where(Order.account_id == account_id)
            .where(col(Order.paper).is_(False))
        ).first()


def _news(order: Order, report: BrokerOrder) -> bool:
    if is_terminal(OrderStatus(order.status)):
        return False
    return report.status != order.status or report.filled_quantity > order.filled_quantity


def apply_update(
    report: BrokerOrder, *, user_id: int, account_id: int, conn: redis.Redis | None,
    tick_of: TickLookup,
) -> Order | None:
    """Apply one report (socket message or order-book row) to the account's order with that
    ordertag; None when no such order is ours. Idempotent."""
    order = _find(report.client_order_id, user_id, account_id)
    if order is None or order.id is None or not _news(order, report):
        return order
    updated = order_store.apply_report(order.id, report, quiet=True)
    if updated.status == order.status and updated.filled_quantity == order.filled_quantity:
        return updated  # someone else (the job) applied it first
    if conn is not None:
        try:
            wake(conn, updated.client_order_id, updated.status)
        except redis.RedisError:
            log.warning("could not wake the job following %s", updated.client_order_id)
    after_report(updated, conn, tick_of)
    return updated


def after_report(order: Order, conn: redis.Redis | None, tick_of: TickLookup) -> None:
    """What the job does once an order is finished: the same calls, safe to repeat."""
    status = OrderStatus(order.status)
    if not is_terminal(status) or order.id is None:
        return
    if order.purpose == "ENTRY":
        if order.filled_quantity > 0:
            positions.open_from_entry(order.id, tick_of(order), conn)
    elif order.purpose == "STOP":
        stop_fills.on_stop_report(order, conn)
    elif order.purpose == "EXIT" and order.position_id is not None:
        if status == OrderStatus.FILLED:
            positions.close_from_exit(order.position_id, order.id, order.reason or "exit", conn)
        elif _latest_exit(order):
            # Only the newest exit attempt may reopen the position: after an older attempt
            # failed, the monitor may already have claimed it again for a new one.
            positions.release_exit(order.position_id,
                                   f"exit order {status.lower()}: {order.reason}")
    # The verdict of every alert waiting on this order, once all of its orders are final.
    verdict.settle_waiting_on(order.id, order.alert_id)


def _latest_exit(order: Order) -> bool:
    with session_scope() as s:
        newer = s.exec(
            select(Order.id)
            .where(Order.position_id == order.position_id)
            .where(Order.purpose == "EXIT")
            .where(col(Order.id) > order.id)
        ).first()
    return newer is None


def unfinished(user_id: int, account_id: int) -> list[Order]:
    """The account's orders the broker holds and that can still change (catch-up set), plus
    today's finished entries whose position was never opened (a consumer died in between).
    Not an older day's: Angel squared that intraday fill off at its close, and a position
    opened for it now would have the monitor sell shares the account no longer holds."""
    working = ("OPEN", "TRIGGER_PENDING", "PARTIALLY_FILLED", "CANCEL_PENDING")
    with session_scope() as s:
        base = (
            select(Order)
            .where(Order.user_id == user_id)
            .where(Order.account_id == account_id)
            .where(col(Order.paper).is_(False))
        )
        rows = list(s.exec(base.where(col(Order.status).in_(working))).all())
        orphans = s.exec(
            base.where(Order.purpose == "ENTRY")
            .where(col(Order.status).in_(("FILLED", "CANCELLED")))
            .where(col(Order.position_id).is_(None))
            .where(Order.filled_quantity > 0)
            .where(col(Order.created_at) >= day_start(utcnow()))
        ).all()
    return rows + list(orphans)


def catch_up(
    book: Callable[[], list[BrokerOrder]], *, user_id: int, account_id: int,
    conn: redis.Redis | None, tick_of: TickLookup,
) -> int:
    """Bring the account's unfinished orders up to date from one order-book read (skipped
    when there are none); returns how many orders changed."""
    pending = unfinished(user_id, account_id)
    if not pending:
        return 0
    for order in pending:
        after_report(order, conn, tick_of)  # the orphaned entries (no-op for the others)
    wanted = {o.client_order_id: o for o in pending if not is_terminal(OrderStatus(o.status))}
    if not wanted:
        return 0
    changed = 0
    for report in book():
        before = wanted.get(report.client_order_id)
        if before is None:
            continue
        after = apply_update(report, user_id=user_id, account_id=account_id, conn=conn,
                             tick_of=tick_of)
        if after is not None and (after.status, after.filled_quantity) != (
            before.status, before.filled_quantity
        ):
            changed += 1
    return changed
