"""The kill switch's action: `kill`, the one thing the dashboard's red button and `cli kill`
run. The switch's state (`engage` / `is_engaged` / `release` / `halted`) is `risk.kill_switch`,
re-exported here so callers of the kill switch need one module.

`kill(user_id)`:
1. stops the bot and engages the switch in one transaction (entries are refused by the risk
   gate from then on, including alerts already queued — unlike Stop, which lets them finish);
2. cancels every working entry order at its broker (`broker.cancel_order`);
3. claims every OPEN position and enqueues its market exit (reason `kill_switch`);
4. repeats 2-3 for `settle_seconds` while entry orders are still in flight (CREATED,
   SUBMITTING, UNKNOWN: their job is placing or resolving them, and only the job may touch
   them — the kill switch never races an order's own job), then reports.
Everything is audited (`kill_switch.*`). Starting the bot again releases the switch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from sqlmodel import col, select

from ats_app.engine.broker.errors import BrokerError
from ats_app.engine.core.errors import AtsError
from ats_app.engine.core.fsm import OrderEvent, OrderStatus, is_terminal
from ats_app.engine.execution import order_store
from ats_app.engine.exits.claims import exit_all
from ats_app.engine.risk.kill_switch import engage, halted, is_engaged, release
from ats_app.engine.store import audit
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order, utcnow

__all__ = ["KillReport", "engage", "halted", "is_engaged", "kill", "release"]

log = logging.getLogger("ats.halt")

IN_FLIGHT = (OrderStatus.CREATED, OrderStatus.SUBMITTING, OrderStatus.UNKNOWN)
POLL_SECONDS = 0.5


@dataclass
class KillReport:
    user_id: int
    cancelled: list[str] = field(default_factory=list)  # client order ids
    exits_enqueued: list[int] = field(default_factory=list)  # position ids
    cancel_failed: dict[str, str] = field(default_factory=dict)
    still_in_flight: list[str] = field(default_factory=list)  # entry orders not yet resolved

    def as_dict(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "halted": True,
            "cancelled_orders": self.cancelled,
            "exits_enqueued": self.exits_enqueued,
            "cancel_failed": self.cancel_failed,
            "still_in_flight": self.still_in_flight,
        }


def _open_entries(user_id: int) -> list[Order]:
    """Entry orders still working or in flight, and filled ones whose position is not yet
    open (their job is about to open it: the next sweep must exit it)."""
    since = utcnow() - timedelta(days=1)
    with session_scope() as s:
        rows = s.exec(select(Order).where(Order.user_id == user_id)
                      .where(Order.purpose == "ENTRY").where(col(Order.created_at) >= since)
                      .order_by(col(Order.id))).all()
    return [o for o in rows if not is_terminal(OrderStatus(o.status))
            or (o.filled_quantity > 0 and o.position_id is None)]


def _cancel(order: Order, conn: redis.Redis, report: KillReport) -> None:
    """Ask the broker to cancel a working order (or look again at one already asked)."""
    from ats_app.engine.broker.factory import broker_for

    assert order.id is not None and order.broker_order_id
    asked = OrderStatus(order.status) == OrderStatus.CANCEL_PENDING
    if not asked:
        order_store.transition(order.id, OrderEvent.CANCEL_REQUEST, reason="kill switch")
    try:
        with session_scope() as s:
            broker = broker_for(s, order.user_id, order.account_id, paper=order.paper, redis=conn)
        answer = None if asked else broker.cancel_order(order.broker_order_id)
        found = broker.find_order(order.client_order_id) or answer
    except (BrokerError, AtsError) as exc:
        report.cancel_failed[order.client_order_id] = str(exc)
        audit.record_now("kill_switch.cancel_failed", user_id=order.user_id,
                         subject=order.client_order_id, error=str(exc))
        return
    if found is not None and found.status != OrderStatus.CANCEL_PENDING:
        order_store.apply_report(order.id, found)
    if not asked:
        report.cancelled.append(order.client_order_id)
        audit.record_now("kill_switch.cancelled", user_id=order.user_id,
                         subject=order.client_order_id,
                         status=str(found.status) if found else None)


def _sweep(user_id: int, conn: redis.Redis, report: KillReport) -> list[Order]:
    """One pass: cancel what can be cancelled, exit what is open. Returns unresolved orders."""
    for order in _open_entries(user_id):
        if OrderStatus(order.status) not in IN_FLIGHT and order.broker_order_id:
            _cancel(order, conn, report)
    report.exits_enqueued.extend(exit_all(user_id, "kill_switch", conn))
    return _open_entries(user_id)


def kill(user_id: int, *, conn: redis.Redis | None = None,
         settle_seconds: float = 20.0) -> KillReport:
    """Engage the switch, cancel open entry orders and exit every open position at market."""
    from ats_app.engine.store.queueing import connection

    conn = conn or connection()
    with session_scope() as s:
        engage(s, user_id)
    report = KillReport(user_id)
    deadline = time.monotonic() + settle_seconds
    while True:
        in_flight = _sweep(user_id, conn, report)
        if not in_flight or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    report.still_in_flight = [o.client_order_id for o in in_flight]
    details = {k: v for k, v in report.as_dict().items() if k != "user_id"}
    audit.record_now("kill_switch.done", user_id=user_id, **details)
    log.warning("kill switch for user %s: %s", user_id, report.as_dict())
    return report
