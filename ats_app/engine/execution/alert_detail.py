"""What each alert did, as the dashboard's Alerts page shows it. Read-only; every query is
scoped to the user, so another user's alert reads as `NotFound`.

The list names each alert's outcome on its accounts in two counts: accounts `ordered` (an
order was written: the detail says how it ended) and `not_traded` (refused by a limit,
nothing to do, or failed before any order). The detail has one row per account from the
alert's `AlertTarget` rows (see `verdict`): the account's latest order, its fill, how long
after the alert it was written and last changed, or why the account did not trade.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ats_app.engine.core.clock import ist_stamp
from ats_app.engine.core.errors import NotFound
from ats_app.engine.core.fsm import OrderStatus, is_terminal
from ats_app.engine.execution.order_history import paise_to_rupees
from ats_app.engine.execution.verdict import ORDERED
from ats_app.engine.store.models import Alert, AlertTarget, BrokerAccount, Order, WebhookLink

PAPER_LABEL = "paper"  # the row of a paper link without a broker account (account_id None)


def _alert_row(a: Alert, link: str | None) -> dict[str, Any]:
    return {
        "id": a.id,
        "received_at": a.received_at.isoformat(),
        "received_ist": ist_stamp(a.received_at),
        "link": link or "",
        "action": a.action,
        "symbol": a.symbol,
        "status": a.status,
        "reason": a.reason or "",
    }


def recent_alerts(session: Session, user_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The user's latest alerts, newest first, each with its accounts' counts."""
    rows = session.exec(
        select(Alert, WebhookLink.name)
        .outerjoin(WebhookLink, col(WebhookLink.id) == Alert.link_id)
        .where(Alert.user_id == user_id)
        .order_by(col(Alert.id).desc())
        .limit(limit)
    ).all()
    ids = [a.id for a, _ in rows]
    ordered: dict[int | None, int] = {}
    not_traded: dict[int | None, int] = {}
    if ids:
        # One grouped query for the page instead of one per alert.
        for alert_id, outcome, n in session.exec(
            select(AlertTarget.alert_id, AlertTarget.outcome, sa.func.count())
            .where(AlertTarget.user_id == user_id)
            .where(col(AlertTarget.alert_id).in_(ids))
            .group_by(col(AlertTarget.alert_id), col(AlertTarget.outcome))
        ).all():
            counts = ordered if outcome == ORDERED else not_traded
            counts[alert_id] = counts.get(alert_id, 0) + n
    return [{**_alert_row(a, link), "ordered": ordered.get(a.id, 0),
             "not_traded": not_traded.get(a.id, 0)} for a, link in rows]


def _ms(since: datetime, at: datetime | None) -> int | None:
    return None if at is None else round((at - since) / timedelta(milliseconds=1))


def _why_not(outcome: str, target_reason: str | None, order: Order | None) -> str:
    """The target's own reason (a limit, an error); for an order, Angel's rejection text,
    but only once it ended with nothing filled (before that its reason is our own note,
    e.g. "entry signal", which says nothing about trading)."""
    if outcome != ORDERED:
        return target_reason or ""
    if order is None or order.filled_quantity > 0 or not is_terminal(OrderStatus(order.status)):
        return ""
    return order.reason or order.status.lower()


def _account_row(received: datetime, outcome: str, reason: str | None,
                 order: Order | None, label: str | None, account_id: int | None
                 ) -> dict[str, Any]:
    return {
        "account": label or (PAPER_LABEL if account_id is None else f"account {account_id}"),
        "outcome": outcome,
        "ordertag": order.client_order_id if order else "",
        "order_status": order.status if order else "",
        "filled_quantity": order.filled_quantity if order else 0,
        "quantity": order.quantity if order else 0,
        "fill_price": (paise_to_rupees(order.average_price_paise) or "") if order else "",
        "created_ms": _ms(received, order.created_at) if order else None,
        "updated_ms": _ms(received, order.updated_at) if order else None,
        "reason": _why_not(outcome, reason, order),
    }


def alert_detail(session: Session, user_id: int, alert_id: int) -> dict[str, Any]:
    """The alert (as in `recent_alerts`) and `accounts`: one row per account it reached."""
    alert = session.get(Alert, alert_id)
    if alert is None or alert.user_id != user_id:
        raise NotFound(f"alert {alert_id} not found")
    link = session.exec(select(WebhookLink.name).where(WebhookLink.id == alert.link_id)
                        .where(WebhookLink.user_id == user_id)).first()
    targets = session.exec(
        select(AlertTarget, Order, BrokerAccount.label)
        .outerjoin(Order, (col(Order.id) == AlertTarget.order_id) & (Order.user_id == user_id))
        .outerjoin(BrokerAccount, (col(BrokerAccount.id) == AlertTarget.account_id)
                   & (BrokerAccount.user_id == user_id))
        .where(AlertTarget.alert_id == alert_id)
        .where(AlertTarget.user_id == user_id)
        .order_by(col(AlertTarget.account_key))
    ).all()
    received = alert.received_at
    rows = [_account_row(received, t.outcome, t.reason, o, label, t.account_id)
            for t, o, label in targets]
    rows += [_account_row(received, ORDERED, None, o, label, o.account_id)
             for o, label in _untargeted_orders(session, user_id, alert_id,
                                                {t.account_id for t, _, _ in targets})]
    counts = sum(r["outcome"] == ORDERED for r in rows)
    return {**_alert_row(alert, link), "ordered": counts, "not_traded": len(rows) - counts,
            "accounts": rows}


def _untargeted_orders(session: Session, user_id: int, alert_id: int,
                       targeted: set[int | None]) -> list[tuple[Order, str | None]]:
    """The latest order per account that has no target row: alerts processed before
    per-account rows existed (migration 0008) still show what each account did."""
    found = session.exec(
        select(Order, BrokerAccount.label)
        .outerjoin(BrokerAccount, col(BrokerAccount.id) == Order.account_id)
        .where(Order.alert_id == alert_id)
        .where(Order.user_id == user_id)
        .order_by(col(Order.id))
    ).all()
    latest: dict[int | None, tuple[Order, str | None]] = {}
    for order, label in found:
        if order.account_id not in targeted:
            latest[order.account_id] = (order, label)  # ascending ids: the last one wins
    return list(latest.values())
