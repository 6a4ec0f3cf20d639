"""The entry job: an accepted alert becomes one order per account its link trades.

`handle_alert` (RQ, enqueued by `intake.alerts`) reads the alert and its link, parses the
signal, resolves the contract, asks the risk gate and sends each account's order through
`submit` (SUBMITTING before the broker call; reconcile, never resend). A `sell`/`exit` alert
hands the open position to the exit job (`exit_order`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from ats_app.engine.broker.base import Broker
from ats_app.engine.broker.errors import BrokerError
from ats_app.engine.broker.factory import broker_for, live_prices, simulator_credentials
from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import AtsError
from ats_app.engine.core.fsm import OrderStatus, is_terminal
from ats_app.engine.core.money import to_paise
from ats_app.engine.execution import contracts, positions
from ats_app.engine.execution.exit_order import exit_position
from ats_app.engine.execution.signals import AlertSignal, parse_alert
from ats_app.engine.execution.submit import (
    MAX_SEND_ATTEMPTS,
    as_attempt,
    attempt_of,
    drive,
    job_session,
    latest_attempt,
    log_outcome,
    never_reached_broker,
    request_for,
    send_or_drive,
    tick_of,
    write_submitting,
)
from ats_app.engine.market import hours as market_hours
from ats_app.engine.risk import gate as risk_gate
from ats_app.engine.store import audit
from ats_app.engine.store.db import after_commit
from ats_app.engine.store.models import (
    Alert,
    BrokerAccount,
    Order,
    WebhookLink,
    WebhookLinkAccount,
    utcnow,
)
from ats_app.engine.store.queueing import connection, enqueue_alert

log = logging.getLogger("ats.pipeline")

# A waiting worker re-tries the user's risk lock this often. The lock is held for a check and
# one insert (milliseconds); redis-py's default 0.1 s poll made a burst of one user's alerts
# queue up in 100 ms steps.
RISK_LOCK_POLL_S = 0.002


@dataclass(frozen=True)
class Target:
    account_id: int | None  # None: paper trading without a broker account
    multiplier: int
    base_url: str | None


# Built once (bound parameters): the job's reads of its alert and its link's accounts; built
# per call, SQLAlchemy's statement building and cache keys cost about what the database does.
_ALERT_AND_LINK = (
    select(Alert, WebhookLink)  # one round trip; a deleted link comes back as None
    .outerjoin(WebhookLink, col(WebhookLink.id) == Alert.link_id)
    .where(Alert.id == bindparam("alert_id"))
)
_TARGETS = (  # columns, not entities: no account objects (secrets and all) to build
    select(BrokerAccount.id, WebhookLinkAccount.lot_multiplier, BrokerAccount.base_url)
    .where(WebhookLinkAccount.link_id == bindparam("link_id"))
    .where(WebhookLinkAccount.account_id == BrokerAccount.id)
    .order_by(col(WebhookLinkAccount.account_id))
)


def _targets(s: Session, link_id: int) -> list[Target]:
    rows = s.exec(_TARGETS, params={"link_id": link_id}).all()
    return [Target(*row) for row in rows] or [
        Target(None, 1, paper_master_server())
    ]


def instrument_servers(s: Session) -> set[str | None]:
    """Every server whose instrument index a job may need: each account's, and paper's."""
    urls: set[str | None] = set(s.exec(select(BrokerAccount.base_url).distinct()).all())
    return urls | {paper_master_server()}


def paper_master_server() -> str | None:
    """Paper without an account: instruments from SCRIP_MASTER_URL when set, else from the
    built-in simulator when it runs (offline demo), else Angel's own master."""
    if os.environ.get("SCRIP_MASTER_URL", "").strip():
        return None
    sim = simulator_credentials()
    return sim.base_url if sim else None


def _set_alert(s: Session, alert: Alert, status: str, reason: str | None = None) -> None:
    """Change the alert's status in the job's transaction (audited); the caller commits."""
    alert.status, alert.reason = status, reason and reason[:500]
    if status in ("DONE", "REJECTED", "FAILED"):
        alert.processed_at = utcnow()
    s.add(alert)
    audit.record(
        s,
        f"alert.{status.lower()}",
        user_id=alert.user_id,
        subject=str(alert.id),
        reason=reason,
    )
    if status == "REJECTED":
        user_id, alert_id = alert.user_id, alert.id

        def refused() -> None:
            # lazy: the web process never imports this module
            from ats_app.engine.notify import notices

            notices.emit(user_id, "alert_refused", once=f"refused-{alert_id}", reason=reason,
                        alert_id=alert_id)

        after_commit(s, refused)


QUEUED_REASON = "queued for the market open"


def _queue_until_open(s: Session, alert: Alert) -> str | None:
    """Market closed and the link allows queueing: run this alert again at the open."""
    now = market_hours.now()
    is_open, _ = market_hours.is_open(now, mode=settings().market_hours)
    if is_open:
        return None
    when = market_hours.next_open(now)
    # Written first: from here on the open's job carries the alert (recovery looks for it).
    alert.queued_until = when
    _set_alert(s, alert, "QUEUED", f"{QUEUED_REASON} at {when.isoformat()}")
    s.commit()
    enqueue_alert(alert.id, connection(), queued_until=when)  # type: ignore[arg-type]
    return when.isoformat()


def handle_alert(alert_id: int) -> str:
    """The RQ job for one accepted alert: one order per targeted account, at most."""
    started = time.perf_counter()
    with job_session() as s:
        outcome = _handle_alert(s, alert_id)
    log_outcome(f"alert {alert_id}", outcome, started)
    return outcome


def _handle_alert(s: Session, alert_id: int) -> str:
    alert, link = s.exec(_ALERT_AND_LINK, params={"alert_id": alert_id}).first() or (None, None)
    if alert is None or alert.status in ("DONE", "REJECTED", "FAILED", "IGNORED"):
        return "nothing to do"
    payload, user_id = json.loads(alert.payload), alert.user_id
    received = alert.received_at
    was_queued = alert.queued_until is not None or alert.status == "QUEUED"
    # Orders are written only after PROCESSING is committed: an alert still ACCEPTED has none
    # (a concurrent run of the same job loses the order's unique key instead).
    first_run = alert.status == "ACCEPTED"
    if link is None:
        _set_alert(s, alert, "REJECTED", "webhook link deleted")
        return "rejected"
    _set_alert(s, alert, "PROCESSING")
    s.commit()  # required: PROCESSING is visible while the job works, as it always was
    signal = parse_alert(payload)
    paper = settings().trading_mode == "paper" or link.paper
    # Nothing below writes an order for this alert before the targets run: one look serves
    # every check that asks whether an earlier run already did.
    has_orders = signal.is_entry and not first_run and _any_order(s, alert_id)
    if signal.is_entry and link.queue_outside_hours and not has_orders:
        queued_until = _queue_until_open(s, alert)
        if queued_until:
            return f"queued until {queued_until}"
    age = (utcnow() - received).total_seconds()
    limit = settings().alert_max_age_seconds
    if signal.is_entry and limit and age > limit and not has_orders and not was_queued:
        # Accepted in time but executed late (e.g. re-enqueued after an outage): too late now.
        _set_alert(s, alert, "REJECTED", f"stale at execution: received {age:.0f}s ago")
        return "rejected"
    if signal.is_entry and not has_orders:
        # Risk gate: kill switch, market hours, square-off time, daily limits (audited).
        refused = risk_gate.check_entry(user_id, alert_id=alert_id, conn=connection(), session=s)
        if refused:
            s.commit()  # required: the refusal (and any exit-all) before the final status
            _set_alert(s, alert, "REJECTED", refused)
            return "rejected"
    outcomes = []
    for n, target in enumerate(_targets(s, link.id)):  # type: ignore[arg-type]
        if n:
            s.commit()  # the previous account's outcome, before this one's slower work
        try:
            outcomes.append(_run_target(s, alert_id, user_id, link, target, signal, paper,
                                        has_orders))
        except (AtsError, BrokerError) as exc:  # one account's failure never blocks the others
            # Nothing half-done is pending here: every write is committed before the broker,
            # price or contract calls that raise these.
            audit.record(
                s,
                "alert.target_failed",
                user_id=user_id,
                subject=str(alert_id),
                account_id=target.account_id,
                error=str(exc),
            )
            outcomes.append(f"failed: {exc}")
    failed = [o for o in outcomes if o.startswith(("failed", "rejected"))]
    status = "DONE" if len(failed) < len(outcomes) else "REJECTED"
    _set_alert(s, alert, status, "; ".join(failed) or None)
    return "; ".join(outcomes)


def _any_order(s: Session, alert_id: int) -> bool:
    return s.exec(select(Order.id).where(Order.alert_id == alert_id)).first() is not None


def _run_target(
    s: Session,
    alert_id: int,
    user_id: int,
    link: WebhookLink,
    target: Target,
    signal: AlertSignal,
    paper: bool,
    has_orders: bool,
) -> str:
    conn = connection()

    def make_broker() -> Broker:  # built only when an order will really be placed
        return broker_for(s, user_id, target.account_id, paper=paper, redis=conn)

    if not signal.is_entry:
        position_id = positions.open_position_id(s, link.id, target.account_id)  # type: ignore[arg-type]
        if position_id is None:
            audit.record(
                s,
                "alert.exit_without_position",
                user_id=user_id,
                subject=str(alert_id),
                account_id=target.account_id,
            )
            return "ignored: no open position"
        return exit_position(
            position_id, "signal", alert_id=alert_id, broker=make_broker(), session=s
        )
    client_id = f"A{alert_id}E{target.account_id or 0}"
    existing = latest_attempt(s, client_id) if has_orders else None
    open_position_id = positions.open_position_id(s, link.id, target.account_id)  # type: ignore[arg-type]
    if existing is None and open_position_id is not None:
        audit.record(
            s,
            "alert.entry_ignored",
            user_id=user_id,
            subject=str(alert_id),
            reason="a position is already open for this link and account",
            position_id=open_position_id,
        )
        return "ignored: position already open"
    broker = make_broker()
    if existing is None:
        index = contracts.index_for(target.base_url)
        prices = live_prices(broker, conn)  # ATM's spot: the feed, else a shared quote
        contract = contracts.resolve(signal, index, utcnow(), lambda c: prices.quote(c).ltp)
        quantity = contracts.order_quantity(signal, contract, target.multiplier)
        tick = contract.tick_size
        # Check and reserve together: the order row written under the user's lock is what the
        # next alert's check counts, so two workers cannot both take the last slot.
        with conn.lock(f"ats:risk-lock:{user_id}", timeout=30, blocking_timeout=30,
                       sleep=RISK_LOCK_POLL_S):
            refused = risk_gate.check_entry(  # again per order: lots, and this alert's own orders
                user_id,
                lots=quantity // contract.lot_size,
                alert_id=alert_id,
                account_id=target.account_id,
                conn=conn,
                session=s,
            )
            if refused:
                s.commit()  # required: the refusal now (it may exit every position)
                return f"rejected: {refused}"
            candidate = Order(
                user_id=user_id,
                alert_id=alert_id,
                account_id=target.account_id,
                link_id=link.id,
                client_order_id=client_id,
                purpose="ENTRY",
                exchange=contract.exchange,
                symbol=contract.tradingsymbol,
                symbol_token=contract.symboltoken,
                side="BUY",
                quantity=quantity,
                price_paise=to_paise(signal.price),
                paper=paper,
                reason="entry signal",
            )
            order = write_submitting(s, candidate)
        order = send_or_drive(s, order, candidate, broker, tick)
    else:
        tick = tick_of(s, existing)
        order = drive(existing.id, broker, request_for(existing, tick), session=s)  # type: ignore[arg-type]
    attempt = attempt_of(order.client_order_id)
    while never_reached_broker(order) and attempt < MAX_SEND_ATTEMPTS:
        # The broker's book settled without it (e.g. the worker died before the request left):
        # sending again, under a new ordertag, cannot double it.
        attempt += 1
        s.commit()  # the failed attempt stays failed whatever happens to the next insert
        candidate = as_attempt(order, client_id, attempt)
        order = send_or_drive(s, write_submitting(s, candidate), candidate, broker, tick)
    if order.filled_quantity > 0 and is_terminal(OrderStatus(order.status)):
        positions.open_from_entry(order.id, tick, conn, session=s)  # type: ignore[arg-type]
    return f"{order.status.lower()}: {order.client_order_id}"


