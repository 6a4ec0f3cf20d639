"""Order rows: created once, changed only through the state machine, every step audited.

Each change has two forms: without `session` it runs in its own transaction (the order-update
consumer, the CLI, tests); with `session` it joins the caller's transaction (a pipeline job
doing one order's steps in a few commits) and its notice waits for that commit
(`store.db.after_commit`).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, select

from ats_app.engine.broker.base import BrokerOrder
from ats_app.engine.core import fsm
from ats_app.engine.core.fsm import OrderEvent, OrderStatus
from ats_app.engine.core.money import to_paise
from ats_app.engine.store import audit
from ats_app.engine.store.db import after_commit, joined
from ats_app.engine.store.models import Order, utcnow

log = logging.getLogger("ats.orders")

# The event that moves an order to the status the broker reports.
_EVENT_FOR: dict[OrderStatus, OrderEvent] = {
    OrderStatus.OPEN: OrderEvent.ACCEPT,
    OrderStatus.TRIGGER_PENDING: OrderEvent.TRIGGER,
    OrderStatus.PARTIALLY_FILLED: OrderEvent.PARTIAL_FILL,
    OrderStatus.FILLED: OrderEvent.FILL,
    OrderStatus.CANCELLED: OrderEvent.CANCEL,
    OrderStatus.REJECTED: OrderEvent.REJECT,
}

def by_client_id(session: Session, client_order_id: str) -> Order | None:
    return session.exec(select(Order).where(Order.client_order_id == client_order_id)).first()


def create(order: Order, *, session: Session | None = None, submit: bool = False,
           nested: bool = False) -> Order:
    """Insert in state CREATED, or return the row a previous run of the job already wrote.

    `submit`: insert it already SUBMITTING (audited as created, then submitted), for a job
    that commits it before the broker call: one write instead of an insert and an update,
    and no moment at which the row exists but is not yet submitting. Such a job has looked
    for earlier attempts already, so a row that exists anyway (a concurrent run) is found
    through the unique key's conflict instead of a read first.

    `nested`: inside a savepoint, so that a lost race rolls back only this row (a fan-out
    writes every account's row in one transaction)."""
    with joined(session) as s:
        existing = None if submit else by_client_id(s, order.client_order_id)
        if existing is not None:
            return existing
        # Begun before the row is added (begin_nested flushes what is pending first).
        savepoint = s.begin_nested() if nested else None
        mark = audit.mark(s)
        s.add(order)
        # Its events before the flush: one flush writes the row and them, and a lost race
        # below rolls them back with it.
        audit.record(
            s,
            "order.created",
            user_id=order.user_id,
            subject=order.client_order_id,
            alert_id=order.alert_id,
            side=order.side,
            quantity=order.quantity,
            symbol=order.symbol,
            paper=order.paper,
        )
        if submit:
            _apply(s, order, OrderEvent.SUBMIT, None, None)
        try:
            s.flush()
        except IntegrityError:  # a concurrent run of the same job won the insert
            if savepoint is not None:
                savepoint.rollback()  # only this row: the others in the transaction stand
                audit.drop_since(s, mark)  # and its events with it
            else:
                s.rollback()
            existing = by_client_id(s, order.client_order_id)
            assert existing is not None
            return existing
        if savepoint is not None:
            savepoint.commit()
        return order


def transition(
    order_id: int,
    event: OrderEvent,
    *,
    reason: str | None = None,
    report: BrokerOrder | None = None,
    quiet: bool = False,
    session: Session | None = None,
) -> Order:
    """Apply `event`; an edge the table does not allow is audited and changes nothing.

    `quiet`: a report that tells nothing new (the status the row already has and no more
    filled, or anything after a terminal status) changes nothing and is not audited. The
    order-update socket and the job's own REST answer or poll report the same change, in
    either order; only the first is news.
    """
    with joined(session) as s:
        s.flush()  # our own pending change first: the fresh read below must not discard it
        _lock_for_update(s, order_id)
        # populate_existing: a long-lived job session may hold an older copy of the row.
        order = s.get(Order, order_id, with_for_update=True, populate_existing=True)
        assert order is not None, f"order {order_id} vanished"
        s.info.setdefault(_LOCKED, set()).add(order_id)
        if quiet and _stale(order, event, report):
            return order
        return _apply(s, order, event, reason, report)


_LOCKED = "ats_locked_orders"


def locked(session: Session, order_id: int) -> Order | None:
    """The order as `transition` read it under its row lock in this transaction, or None.

    Nobody else can have changed the row since (the lock holds until the transaction ends),
    so a later step of the same transaction needs no second locked read."""
    if order_id in session.info.get(_LOCKED, ()):
        return session.get(Order, order_id)  # the identity map's copy: no SQL
    return None


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_locks(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed or rolled back: the locks are gone
        session.info.pop(_LOCKED, None)


_ORDERS = Order.__table__  # type: ignore[attr-defined]
_TOUCH = sa.update(_ORDERS).where(_ORDERS.c.id == sa.bindparam("oid")).values(id=_ORDERS.c.id)


def _lock_for_update(s: Session, order_id: int) -> None:
    """SQLite drops FOR UPDATE: take its database write lock before the read instead.

    Otherwise the read-modify-write of `transition` interleaves with another writer's: the
    job reads SUBMITTING, the order-update consumer commits the fill, and the job's flush of
    its REST answer (OPEN) then writes the order back to OPEN over FILLED. A no-op UPDATE of
    the row makes this transaction the writer, so the read below is the latest and nobody
    commits in between (the job commits before any broker call, sleep or wait)."""
    if s.get_bind().dialect.name == "sqlite":
        s.execute(_TOUCH, {"oid": order_id})


def _apply(
    s: Session,
    order: Order,
    event: OrderEvent,
    reason: str | None,
    report: BrokerOrder | None,
) -> Order:
    """`transition` on a row this transaction has locked (or inserted)."""
    try:
        new = fsm.apply(OrderStatus(order.status), event)
    except fsm.InvalidTransition as exc:
        audit.record(
            s,
            "order.transition_ignored",
            user_id=order.user_id,
            subject=order.client_order_id,
            error=str(exc),
        )
        return order
    old = order.status
    order.status = new.value
    if reason:
        order.reason = reason[:500]
    if report is not None:
        order.broker_order_id = report.broker_order_id or order.broker_order_id
        order.filled_quantity = max(order.filled_quantity, report.filled_quantity)
        if report.average_price is not None:
            order.average_price_paise = to_paise(report.average_price)
    order.updated_at = utcnow()
    s.add(order)
    audit.record(
        s,
        f"order.{event.value.lower()}",
        user_id=order.user_id,
        subject=order.client_order_id,
        alert_id=order.alert_id,
        status_from=old,
        status_to=new.value,
        reason=reason,
        broker_order_id=order.broker_order_id,
    )
    notice = _notice(new)
    if notice is not None:
        after_commit(s, lambda: _emit(order, notice))
    return order


def _emit(order: Order, notice: str) -> None:
    from ats_app.engine.notify import notices  # lazy: only order-moving processes pay for it

    notices.emit(
        order.user_id,
        notice,
        once=f"{notice}-{order.client_order_id}",
        side=order.side,
        quantity=order.filled_quantity or order.quantity,
        symbol=order.symbol,
        exchange=order.exchange,
        paper=order.paper,
        price_paise=order.average_price_paise,
        reason=order.reason,
        order_id=order.client_order_id,
    )


def _stale(order: Order, event: OrderEvent, report: BrokerOrder | None) -> bool:
    current = OrderStatus(order.status)
    if fsm.is_terminal(current):
        return True
    try:
        new = fsm.apply(current, event)
    except fsm.InvalidTransition:
        return False  # audited as usual: not a duplicate but something we do not model
    more = report is not None and report.filled_quantity > order.filled_quantity
    return new == current and not more


def _notice(new: OrderStatus) -> str | None:
    """The owner hears about fills and rejections (once per order, whatever retries)."""
    if new == OrderStatus.FILLED:
        return "order_filled"
    if new == OrderStatus.REJECTED:
        return "order_rejected"
    return None


def apply_report(
    order_id: int,
    report: BrokerOrder,
    *,
    reconciled: bool = False,
    quiet: bool = False,
    session: Session | None = None,
) -> Order:
    """Move an order to the status the broker reports (two steps after reconciliation);
    `quiet` as in `transition`."""
    with joined(session) as s:
        if reconciled:
            order = transition(order_id, OrderEvent.RECONCILE_FOUND, report=report, session=s)
            if report.status == OrderStatus.OPEN:
                return order
        event = _EVENT_FOR.get(report.status)
        if event is None:
            log.warning("order %s: broker reported %s, nothing to apply", order_id, report.status)
            return get(order_id, session=s)
        return transition(order_id, event, reason=report.reason, report=report, quiet=quiet,
                          session=s)


def get(order_id: int, *, session: Session | None = None) -> Order:
    with joined(session) as s:
        s.flush()  # as in `transition`
        order = s.get(Order, order_id, populate_existing=True)
        assert order is not None
        return order
