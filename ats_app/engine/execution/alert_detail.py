"""What each alert did, as the dashboard's Alerts page shows it. Read-only; every query is
scoped to the user, so another user's alert reads as `NotFound`.

The list names each alert's outcome on its accounts in two counts: accounts `ordered` (an
order was written: the detail says how it ended) and `not_traded` (refused by a limit,
nothing to do, or failed before any order). The detail has one row per account from the
alert's `AlertTarget` rows (see `verdict`): the account's latest order, its fill, how long
after the alert it was written and last changed, or why the account did not trade.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ats_app.engine.core.clock import IST, ist_stamp
from ats_app.engine.core.errors import NotFound
from ats_app.engine.core.fsm import OrderStatus, is_terminal
from ats_app.engine.execution.order_history import paise_to_rupees
from ats_app.engine.execution.verdict import ORDERED
from ats_app.engine.store.models import (
    Alert,
    AlertTarget,
    BrokerAccount,
    Order,
    RefusedAlert,
    WebhookLink,
)

PAPER_LABEL = "paper"  # the row of a paper link without a broker account (account_id None)

REFUSED = "REFUSED"  # the list's status of a refused request (a `RefusedAlert` row)
DUPLICATE = "DUPLICATE"  # a repeat of an earlier alert, answered 200 and not traded again
# What the status filter offers: an alert's own statuses, then the refusals.
STATUSES = ("ACCEPTED", "QUEUED", "PROCESSING", "PLACED", "DONE", "REJECTED", "FAILED",
            "IGNORED", DUPLICATE, REFUSED)
# An ignored alert's reason is a code in the table; the page says it in words.
_PLAIN = {
    "bot_stopped": "the bot was stopped: recorded, not traded",
    "link_disabled": "the link is disabled: recorded, not traded",
}


# What a trader reads for each refusal code (the error itself says which field and why).
_CODES = {
    200: "a repeat, not traded again",
    400: "not valid JSON",
    401: "wrong or missing secret",
    408: "the body did not arrive in time",
    413: "the body was too big",
    422: "a field was wrong",
    429: "too many alerts a minute",
}


def plain_reason(code: int, error: str) -> str:
    """'wrong or missing secret'; 'a field was wrong: alert is stale: its time is 75s old…'."""
    head = _CODES.get(code, f"refused ({code})")
    if code == 401 or not error:
        return head
    return f"{head}: {error}"


def plain_words(reason: str | None) -> str:
    return _PLAIN.get(reason or "", reason or "")


def _alert_row(a: Alert, link: str | None) -> dict[str, Any]:
    return {
        "id": a.id,
        "key": str(a.id),
        "kind": "alert",
        "received_at": a.received_at.isoformat(),
        "received_ist": ist_stamp(a.received_at),
        "link": link or "",
        "action": a.action,
        "symbol": a.symbol,
        "instrument": "",
        "status": a.status,
        "code": None,
        "reason": plain_words(a.reason),
        "body": "",
    }


@dataclass(frozen=True)
class AlertQuery:
    """The Alerts page's filters; days are IST calendar days, both ends included."""

    link_id: int | None = None
    status: str | None = None  # one of STATUSES
    day_from: date | None = None
    day_to: date | None = None


def _fields(body: str) -> tuple[str, str]:
    """A refused body's action and symbol when it is JSON enough to say (masked already)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    low = {str(k).lower(): v for k, v in data.items()}
    pick = [low.get("action"), low.get("tradingsymbol") or low.get("symbol")]
    return tuple(v[:16] if isinstance(v, str) else "" for v in pick)  # type: ignore[return-value]


def _refused_row(r: RefusedAlert, link: str | None) -> dict[str, Any]:
    action, symbol = _fields(r.body)
    return {
        "id": r.id,
        "key": f"r{r.id}",
        "kind": "refused",
        "received_at": r.received_at.isoformat(),
        "received_ist": ist_stamp(r.received_at),
        "link": link or "",
        "action": action,
        "symbol": symbol,
        "instrument": "",
        "status": DUPLICATE if r.status_code == 200 else REFUSED,
        "code": r.status_code,
        "reason": plain_reason(r.status_code, r.error),
        "body": r.body,
        "ordered": 0,
        "not_traded": 0,
    }


def _in_days(stmt: Any, column: Any, q: AlertQuery) -> Any:
    if q.day_from:
        stmt = stmt.where(column >= datetime.combine(q.day_from, time(), IST))
    if q.day_to:
        stmt = stmt.where(column < datetime.combine(q.day_to + timedelta(days=1), time(), IST))
    return stmt


def list_alerts(session: Session, user_id: int, q: AlertQuery = AlertQuery(),
                limit: int = 100) -> list[dict[str, Any]]:
    """Accepted alerts and refused requests of the user, newest first, filtered by `q`:
    each with its accounts' counts and the instruments its orders traded (resolved), a
    refusal with its reason in words and its body (secrets masked)."""
    if q.status and q.status not in STATUSES:
        raise ValueError(f"unknown status {q.status!r}")
    rows: list[dict[str, Any]] = []
    if q.status not in (REFUSED, DUPLICATE):
        rows += recent_alerts(session, user_id, limit, q)
    if q.status in (None, REFUSED, DUPLICATE):
        stmt = (select(RefusedAlert, WebhookLink.name)
                .outerjoin(WebhookLink, col(WebhookLink.id) == RefusedAlert.link_id)
                .where(RefusedAlert.user_id == user_id))
        if q.status == DUPLICATE:
            stmt = stmt.where(RefusedAlert.status_code == 200)
        elif q.status == REFUSED:
            stmt = stmt.where(RefusedAlert.status_code != 200)
        if q.link_id:
            stmt = stmt.where(RefusedAlert.link_id == q.link_id)
        stmt = _in_days(stmt, col(RefusedAlert.received_at), q)
        rows += [_refused_row(r, link) for r, link in session.exec(
            stmt.order_by(col(RefusedAlert.id).desc()).limit(limit)).all()]
    rows.sort(key=lambda r: r["received_at"], reverse=True)
    return rows[:limit]


def _instruments(session: Session, user_id: int, ids: list[int | None]) -> dict[int, str]:
    """Each alert's traded contracts (what `symbol`/`strike`/`expiry` resolved to)."""
    found: dict[int, list[str]] = {}
    for alert_id, symbol in session.exec(
        select(Order.alert_id, Order.symbol).distinct()
        .where(Order.user_id == user_id).where(col(Order.alert_id).in_(ids))
        .order_by(col(Order.symbol))
    ).all():
        if alert_id is not None:
            found.setdefault(alert_id, []).append(symbol)
    return {k: ", ".join(v) for k, v in found.items()}


def recent_alerts(session: Session, user_id: int, limit: int = 100,
                  q: AlertQuery = AlertQuery()) -> list[dict[str, Any]]:
    """The user's latest alerts, newest first, each with its accounts' counts."""
    stmt = (select(Alert, WebhookLink.name)
            .outerjoin(WebhookLink, col(WebhookLink.id) == Alert.link_id)
            .where(Alert.user_id == user_id))
    if q.link_id:
        stmt = stmt.where(Alert.link_id == q.link_id)
    if q.status:
        stmt = stmt.where(Alert.status == q.status)
    stmt = _in_days(stmt, col(Alert.received_at), q)
    rows = session.exec(stmt.order_by(col(Alert.id).desc()).limit(limit)).all()
    ids = [a.id for a, _ in rows]
    instruments = _instruments(session, user_id, ids) if ids else {}
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
             "not_traded": not_traded.get(a.id, 0),
             "instrument": instruments.get(a.id, "")} for a, link in rows]


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
            "instrument": _instruments(session, user_id, [alert_id]).get(alert_id, ""),
            "accounts": rows}


def refused_detail(session: Session, user_id: int, refused_id: int) -> dict[str, Any]:
    """A refused request as in `list_alerts` (its masked body included), no accounts."""
    row = session.get(RefusedAlert, refused_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"refused alert {refused_id} not found")
    link = session.exec(select(WebhookLink.name).where(WebhookLink.id == row.link_id)
                        .where(WebhookLink.user_id == user_id)).first()
    return {**_refused_row(row, link), "accounts": []}


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
