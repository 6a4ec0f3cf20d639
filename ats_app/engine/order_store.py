"""Order rows: created once, changed only through the state machine, every step audited."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ats_app.engine import audit, fsm
from ats_app.engine.broker.base import BrokerOrder
from ats_app.engine.db import session_scope
from ats_app.engine.fsm import OrderEvent, OrderStatus
from ats_app.engine.models import Order, utcnow
from ats_app.engine.money import to_paise

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


def create(order: Order) -> Order:
    """Insert in state CREATED, or return the row a previous run of the job already wrote."""
    with session_scope() as s:
        existing = by_client_id(s, order.client_order_id)
        if existing is not None:
            return existing
        s.add(order)
        try:
            s.flush()
        except IntegrityError:  # a concurrent run of the same job won the insert
            s.rollback()
            existing = by_client_id(s, order.client_order_id)
            assert existing is not None
            return existing
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
        return order


def transition(
    order_id: int,
    event: OrderEvent,
    *,
    reason: str | None = None,
    report: BrokerOrder | None = None,
    quiet: bool = False,
) -> Order:
    """Apply `event`; an edge the table does not allow is audited and changes nothing.

    `quiet`: a report that tells nothing new (the status the row already has and no more
    filled, or anything after a terminal status) changes nothing and is not audited. The
    order-update socket and the job's own REST answer or poll report the same change, in
    either order; only the first is news.
    """
    with session_scope() as s:
        order = s.get(Order, order_id, with_for_update=True)
        assert order is not None, f"order {order_id} vanished"
        if quiet and _stale(order, event, report):
            return order
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
        from ats_app.engine import notify  # lazy: only order-moving processes pay for it

        notify.emit(
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
    return order


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
    order_id: int, report: BrokerOrder, *, reconciled: bool = False, quiet: bool = False
) -> Order:
    """Move an order to the status the broker reports (two steps after reconciliation);
    `quiet` as in `transition`."""
    if reconciled:
        transition(order_id, OrderEvent.RECONCILE_FOUND, report=report)
        if report.status == OrderStatus.OPEN:
            return get(order_id)
    event = _EVENT_FOR.get(report.status)
    if event is None:
        log.warning("order %s: broker reported %s, nothing to apply", order_id, report.status)
        return get(order_id)
    return transition(order_id, event, reason=report.reason, report=report, quiet=quiet)


def get(order_id: int) -> Order:
    with session_scope() as s:
        order = s.get(Order, order_id)
        assert order is not None
        return order
