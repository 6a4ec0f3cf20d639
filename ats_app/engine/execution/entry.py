"""The entry job: an accepted alert becomes one order per account its link trades.

`handle_alert` (RQ, enqueued by `intake.alerts`) reads the alert and its link, parses the
signal and asks the risk gate; `fanout` then sends every account's order at once (each
SUBMITTING before its broker call; reconcile, never resend). A `sell`/`exit` alert hands
each account's open position to the exit job's code (`exit_order`). The job does not wait
for fills: an alert whose orders are still working is PLACED until the order-update stream
or the account's follower gives it its verdict (`verdict.settle`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from ats_app.engine.broker.base import Broker
from ats_app.engine.broker.errors import BrokerError
from ats_app.engine.broker.factory import broker_for, simulator_credentials
from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import AtsError
from ats_app.engine.execution import fanout, positions, verdict
from ats_app.engine.execution.exit_order import exit_position
from ats_app.engine.execution.fanout import Target
from ats_app.engine.execution.signals import parse_alert
from ats_app.engine.execution.submit import job_session, log_outcome
from ats_app.engine.market import hours as market_hours
from ats_app.engine.risk import gate as risk_gate
from ats_app.engine.store import audit
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


_set_alert = verdict.set_status


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
    targets = _targets(s, link.id)  # type: ignore[arg-type]
    conn = connection()
    if signal.is_entry:
        outcomes = fanout.enter_all(s, alert_id, user_id, link, targets, signal, paper,
                                    has_orders, conn, first_run=first_run)
    else:
        outcomes = _exit_all(s, alert_id, user_id, link, targets, paper, conn)
    settled = verdict.settle(alert_id, session=s, alert=alert, by_job=True)
    if settled is None:
        # Some order is still working at the broker: its stream or follower settles it.
        s.refresh(alert)
        if alert.status == "PROCESSING":
            _set_alert(s, alert, "PLACED", "waiting for the broker: "
                       + "; ".join(o for o in outcomes if not o.startswith(("filled", "ignored"))))
            s.commit()
            # An order that finished while this job wrote its outcome rows may have found
            # the alert not yet waiting on it (or settled it just before PLACED overwrote
            # the verdict): look once more, now that PLACED is committed.
            verdict.settle(alert_id, session=s, by_job=True)
    return "; ".join(outcomes)


def _any_order(s: Session, alert_id: int) -> bool:
    return s.exec(select(Order.id).where(Order.alert_id == alert_id)).first() is not None


def _exit_all(s: Session, alert_id: int, user_id: int, link: WebhookLink,
              targets: list[Target], paper: bool, conn: Any) -> list[str]:
    """A sell/exit alert on every account of its link at once, as entries are sent: each
    account's exit in a thread with a database session of its own, so one account's slow
    sell never delays the next account's. Brokers are made here, in the job's thread, which
    keeps their SDK clients and connections across jobs."""
    if len(targets) <= 1:
        return [_exit_on(s, alert_id, user_id, link, t, paper, conn) for t in targets]
    brokers: dict[int | None, Broker] = {}
    for t in targets:
        # on an error, the account's own exit meets it again and records it
        with contextlib.suppress(AtsError, BrokerError):
            brokers[t.account_id] = broker_for(s, user_id, t.account_id, paper=paper, redis=conn)
    s.commit()  # nothing of this session held while the threads write

    def one(t: Target) -> str:
        with job_session() as own:
            return _exit_on(own, alert_id, user_id, link, t, paper, conn,
                            brokers.get(t.account_id))

    with ThreadPoolExecutor(min(len(targets), fanout.max_threads()), "exits") as pool:
        return list(pool.map(one, targets))


def _exit_on(s: Session, alert_id: int, user_id: int, link: WebhookLink, target: Target,
             paper: bool, conn: Any, broker: Broker | None = None) -> str:
    """A sell/exit alert on one account: its open position goes to the exit job's code."""
    position_id: int | None = None
    try:
        position_id = positions.open_position_id(s, link.id, target.account_id)  # type: ignore[arg-type]
        if position_id is None:
            audit.record(s, "alert.exit_without_position", user_id=user_id,
                         subject=str(alert_id), account_id=target.account_id)
            verdict.record(s, alert_id, user_id, target.account_id, verdict.IGNORED,
                           reason="no open position to exit")
            s.commit()
            return "ignored: no open position"
        broker = broker or broker_for(s, user_id, target.account_id, paper=paper, redis=conn)
        outcome = exit_position(position_id, "signal", alert_id=alert_id, broker=broker,
                                session=s)
        order = _latest_exit(s, position_id)
        if order is None:  # the position was being exited already (e.g. by its stop)
            verdict.record(s, alert_id, user_id, target.account_id, verdict.IGNORED,
                           reason=outcome)
        else:
            verdict.record(s, alert_id, user_id, target.account_id, verdict.ORDERED,
                           order_id=order.id)
        s.commit()
        return outcome
    except BrokerError as exc:
        unknown = _unresolved_exit(s, position_id)
        if unknown is None:
            return _exit_failed(s, alert_id, user_id, target, exc)
        # The sell may be at the broker (its answer lost, then the book unreadable): no
        # verdict. The job is retried (then re-run by recovery) and looks the order up again;
        # the position stays EXITING, so nothing else sells it meanwhile.
        audit.record(s, "alert.target_unresolved", user_id=user_id, subject=str(alert_id),
                     account_id=target.account_id, order_id=unknown, error=str(exc))
        s.commit()
        raise
    except AtsError as exc:  # one account's failure never blocks the others
        return _exit_failed(s, alert_id, user_id, target, exc)


def _unresolved_exit(s: Session, position_id: int | None) -> int | None:
    """The position's exit order whose outcome is still unknown (SUBMITTING / UNKNOWN)."""
    if position_id is None:
        return None
    return s.exec(select(Order.id).where(Order.position_id == position_id)
                  .where(Order.purpose == "EXIT")
                  .where(col(Order.status).in_(("SUBMITTING", "UNKNOWN")))).first()


def _exit_failed(s: Session, alert_id: int, user_id: int, target: Target,
                 exc: Exception) -> str:
    """One account's exit failed (nothing unknown at the broker): its verdict FAILED."""
    audit.record(s, "alert.target_failed", user_id=user_id, subject=str(alert_id),
                 account_id=target.account_id, error=str(exc))
    verdict.record(s, alert_id, user_id, target.account_id, verdict.FAILED, reason=str(exc))
    s.commit()
    return f"failed: {exc}"


def _latest_exit(s: Session, position_id: int) -> Order | None:
    return s.exec(select(Order).where(Order.position_id == position_id)
                  .where(Order.purpose == "EXIT").order_by(col(Order.id).desc())
                  .execution_options(populate_existing=True)).first()
