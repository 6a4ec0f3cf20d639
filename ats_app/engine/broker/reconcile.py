"""Startup reconciliation: what happened to orders we sent but never heard back about.

Pure: given our unresolved orders (SUBMITTING or UNKNOWN when the system stopped) and the
broker's order book, decide for each the events to apply, in order, so the state machine
records both "found" and then whatever the book showed. An order the book does not hold is
RECONCILE_NOT_FOUND, but only once it was sent long enough ago for the book to show it
(`grace`); younger ones get no decision yet and are looked at again on the next pass.

The decisions are checked against the FSM table here, so a caller can apply them blindly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ats_app.engine.broker.base import BrokerOrder
from ats_app.engine.broker.parsing import event_for_status
from ats_app.engine.core.fsm import OrderEvent, OrderStatus, apply, needs_reconciliation

__all__ = ["Decision", "PendingOrder", "reconcile"]

DEFAULT_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class PendingOrder:
    client_order_id: str
    status: OrderStatus  # SUBMITTING or UNKNOWN
    sent_at: datetime | None = None  # when the broker call started (None: long ago)


@dataclass(frozen=True)
class Decision:
    client_order_id: str
    events: list[OrderEvent] = field(default_factory=list)  # apply in this order
    final_status: OrderStatus | None = None
    found: BrokerOrder | None = None  # the book's row: filled qty, avg price, reason
    note: str = ""


def _events_for(order: PendingOrder, found: BrokerOrder | None) -> tuple[list[OrderEvent], str]:
    lead = [OrderEvent.TIMEOUT] if order.status == OrderStatus.SUBMITTING else []
    if found is None:
        return [*lead, OrderEvent.RECONCILE_NOT_FOUND], "not in the broker's order book"
    events = [*lead, OrderEvent.RECONCILE_FOUND]
    report = event_for_status(found.status)
    if report is None:
        return events, f"found with status {found.status.value}; no event for it"
    if report != OrderEvent.ACCEPT:  # RECONCILE_FOUND already means "open"
        events.append(report)
    return events, f"found as {found.broker_order_id} ({found.status.value})"


def reconcile(pending: Iterable[PendingOrder], book: Iterable[BrokerOrder], *,
              now: datetime | None = None, grace: timedelta = DEFAULT_GRACE) -> list[Decision]:
    """One decision per pending order that can be decided now (see the module docstring)."""
    by_tag: dict[str, BrokerOrder] = {}
    for row in book:
        if row.client_order_id:
            by_tag[row.client_order_id] = row  # the last row wins: the book is time-ordered
    decisions: list[Decision] = []
    for order in pending:
        status = OrderStatus(order.status)
        if not needs_reconciliation(status):
            continue
        found = by_tag.get(order.client_order_id)
        young = (found is None and now is not None and order.sent_at is not None
                 and now - order.sent_at < grace)
        if young:
            continue
        events, note = _events_for(order, found)
        final = status
        for event in events:
            final = apply(final, event)  # raises InvalidTransition: a bug, not a broker answer
        decisions.append(Decision(order.client_order_id, events, final, found, note))
    return decisions
