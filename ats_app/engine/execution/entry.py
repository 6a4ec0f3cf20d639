"""RQ jobs that turn an accepted alert into orders, and an exit decision into a sell.

Idempotent by construction: every order's client order id is derived from (alert, account,
purpose) or (position, attempt), and its row is written in SUBMITTING before the broker is
called. A job run twice, or retried after its worker was killed mid-call, finds that row and
reconciles it with the broker's order book instead of sending the order again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from ats_app.engine.broker.base import Broker, BrokerOrder, Contract, OrderRequest, Side
from ats_app.engine.broker.errors import BrokerError, OrderRejected, UnknownOutcome
from ats_app.engine.broker.factory import broker_for, live_prices, simulator_credentials
from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import AtsError
from ats_app.engine.core.fsm import OrderEvent, OrderStatus, is_terminal
from ats_app.engine.core.money import to_paise, to_rupees
from ats_app.engine.execution import contracts, order_store, order_updates, positions
from ats_app.engine.exits.claims import claim_for_exit
from ats_app.engine.intake.schema import AlertSignal, parse_alert
from ats_app.engine.market import hours as market_hours
from ats_app.engine.risk import gate as risk_gate
from ats_app.engine.store import audit
from ats_app.engine.store.db import after_commit, get_engine, joined
from ats_app.engine.store.models import (
    Alert,
    BrokerAccount,
    Order,
    Position,
    WebhookLink,
    WebhookLinkAccount,
    utcnow,
)
from ats_app.engine.store.queueing import connection, enqueue_alert

log = logging.getLogger("ats.pipeline")

RECONCILE_TRIES = 3  # order-book look-ups (1/s limit) before an unseen order counts as absent
FILL_WAIT_SECONDS = 10.0  # how long a job follows a working order before leaving it to sync
# A waiting worker re-tries the user's risk lock this often. The lock is held for a check and
# one insert (milliseconds); redis-py's default 0.1 s poll made a burst of one user's alerts
# queue up in 100 ms steps.
RISK_LOCK_POLL_S = 0.002


@dataclass(frozen=True)
class Target:
    account_id: int | None  # None: paper trading without a broker account
    multiplier: int
    base_url: str | None


# One session on one pooled connection per job (one checkout, so one pre-ping on PostgreSQL).
# It commits where a change must be durable before someone else may act on it:
#   - PROCESSING, as soon as the job starts (the alert is being worked on);
#   - an order row, already SUBMITTING, before the broker call: a rerun then finds it and
#     reconciles instead of sending again (and, for an entry, inside the user's risk lock,
#     so the next alert's check counts it);
#   - a risk refusal before the alert's final status (it may exit every position);
#   - every change before a broker call, a sleep or another target (no lock is held
#     across them);
#   - the outcome (fill, position, alert status) at the end.
# Notices and pub/sub messages wait for the commit that makes their change durable
# (`store.db.after_commit`).
@contextmanager
def _job_session() -> Iterator[Session]:
    with get_engine().connect() as conn, Session(bind=conn, expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


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
            from ats_app.engine.notify import (
                notices,  # lazy: the web process never imports this module
            )

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
    with _job_session() as s:
        outcome = _handle_alert(s, alert_id)
    _log_outcome(f"alert {alert_id}", outcome, started)
    return outcome


def _log_outcome(what: str, outcome: str, started: float) -> None:
    """The worker's one line per job (RQ's own per-job lines are off: see `worker`)."""
    log.info("%s: %s (%.1f ms)", what, outcome, (time.perf_counter() - started) * 1000)


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
    existing = _latest_attempt(s, client_id) if has_orders else None
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
            order = _write_submitting(s, candidate)
        order = _send_or_drive(s, order, candidate, broker, tick)
    else:
        tick = _tick_of(s, existing)
        order = drive(existing.id, broker, _request(existing, tick), session=s)  # type: ignore[arg-type]
    attempt = _attempt_of(order.client_order_id)
    while _never_reached_broker(order) and attempt < MAX_SEND_ATTEMPTS:
        # The broker's book settled without it (e.g. the worker died before the request left):
        # sending again, under a new ordertag, cannot double it.
        attempt += 1
        s.commit()  # the failed attempt stays failed whatever happens to the next insert
        candidate = _as_attempt(order, client_id, attempt)
        order = _send_or_drive(s, _write_submitting(s, candidate), candidate, broker, tick)
    if order.filled_quantity > 0 and is_terminal(OrderStatus(order.status)):
        positions.open_from_entry(order.id, tick, conn, session=s)  # type: ignore[arg-type]
    return f"{order.status.lower()}: {order.client_order_id}"


MAX_SEND_ATTEMPTS = 2
NOT_IN_BOOK = "not in the broker's order book"


def _write_submitting(s: Session, candidate: Order) -> Order:
    """Insert `candidate` already SUBMITTING and commit it: required before the broker call,
    so that a rerun finds the row and reconciles instead of sending again. Returns the row a
    concurrent run of the job wrote instead, when there is one."""
    order = order_store.create(candidate, session=s, submit=True)
    s.commit()
    return order


def _send_or_drive(s: Session, order: Order, candidate: Order, broker: Broker,
                   tick: Decimal) -> Order:
    request = _request(order, tick)
    if order is candidate:  # ours, just committed as SUBMITTING: send it
        return _send(s, order.id, broker, request)  # type: ignore[arg-type]
    return drive(order.id, broker, request, session=s)  # type: ignore[arg-type]


def _never_reached_broker(order: Order) -> bool:
    return order.status == OrderStatus.FAILED and (order.reason or "").startswith(NOT_IN_BOOK)


def _attempt_of(client_order_id: str) -> int:
    _, sep, n = client_order_id.rpartition("R")
    return int(n) if sep and n.isdigit() else 1


def _latest_attempt(session: Session, base_id: str) -> Order | None:
    latest = order_store.by_client_id(session, base_id)
    for n in range(2, MAX_SEND_ATTEMPTS + 1):
        if latest is None:
            break
        later = order_store.by_client_id(session, f"{base_id}R{n}")
        if later is None:
            break
        latest = later
    return latest


def _as_attempt(order: Order, base_id: str, attempt: int) -> Order:
    fields = order.model_dump(
        exclude={
            "id",
            "client_order_id",
            "status",
            "broker_order_id",
            "filled_quantity",
            "average_price_paise",
            "reason",
            "created_at",
            "updated_at",
        }
    )
    return Order(
        **fields, client_order_id=f"{base_id}R{attempt}", reason=f"entry signal (attempt {attempt})"
    )


def _tick_of(s: Session, order: Order) -> Decimal:
    pos = s.get(Position, order.position_id) if order.position_id else None
    return to_rupees(pos.tick_size_paise) if pos else Decimal("0.05")  # type: ignore[return-value]


def _request(order: Order, tick: Decimal) -> OrderRequest:
    contract = Contract(
        exchange=order.exchange,
        tradingsymbol=order.symbol,
        symboltoken=order.symbol_token,
        lot_size=1,
        tick_size=tick,
    )
    return OrderRequest(
        client_order_id=order.client_order_id,
        contract=contract,
        side=Side(order.side),
        quantity=order.quantity,
        price=to_rupees(order.price_paise),
    )


def drive(
    order_id: int, broker: Broker, request: OrderRequest, *, session: Session | None = None
) -> Order:
    """Take an order from wherever it stands to a terminal or working state — never resending.

    With `session` (a job's), its last step may be left for the caller to commit."""
    with joined(session, _job_session) as s:
        order = order_store.get(order_id, session=s)
        status = OrderStatus(order.status)
        if status == OrderStatus.SUBMITTING:
            # A previous run died mid-call: the broker may have it. Look, don't resend.
            order = order_store.transition(
                order_id, OrderEvent.TIMEOUT, reason="job restarted while submitting", session=s
            )
        elif status == OrderStatus.CREATED:
            order_store.transition(order_id, OrderEvent.SUBMIT, session=s)
            s.commit()  # required: SUBMITTING is durable before the broker call
            return _send(s, order_id, broker, request)
        return _settle(s, order_id, broker, request, order)


def _send(s: Session, order_id: int, broker: Broker, request: OrderRequest) -> Order:
    """Place an order committed as SUBMITTING, then follow it."""
    try:
        report = broker.place_order(request)
    except UnknownOutcome as exc:
        order = order_store.transition(order_id, OrderEvent.TIMEOUT, reason=str(exc), session=s)
    except OrderRejected as exc:
        return order_store.transition(
            order_id, OrderEvent.REJECT, reason=exc.broker_message or str(exc), session=s
        )
    except BrokerError as exc:  # refused before processing: nothing reached the book
        return order_store.transition(order_id, OrderEvent.FAIL, reason=str(exc), session=s)
    else:  # quiet: the order-update socket may have reported it (or its fill) first
        order = order_store.apply_report(order_id, report, quiet=True, session=s)
    return _settle(s, order_id, broker, request, order)


def _settle(s: Session, order_id: int, broker: Broker, request: OrderRequest,
            order: Order) -> Order:
    if OrderStatus(order.status) == OrderStatus.UNKNOWN:
        s.commit()  # UNKNOWN is durable before we go and look (no lock held across calls)
        order = _reconcile(s, order_id, broker, request.client_order_id)
    return _follow(s, order_id, broker, request.client_order_id, order)


def _reconcile(s: Session, order_id: int, broker: Broker, client_order_id: str) -> Order:
    for attempt in range(RECONCILE_TRIES):
        found = broker.find_order(client_order_id)
        if found is not None:
            return order_store.apply_report(order_id, found, reconciled=True, session=s)
        time.sleep(1.0 + attempt)
    return order_store.transition(
        order_id, OrderEvent.RECONCILE_NOT_FOUND, reason=NOT_IN_BOOK, session=s
    )


def _follow(s: Session, order_id: int, broker: Broker, client_order_id: str,
            order: Order) -> Order:
    """Follow a working order until it finishes or we stop: through the order-update stream
    while it is up, else by polling the order book (inside its 1/s rate limit)."""
    deadline = time.monotonic() + FILL_WAIT_SECONDS
    while not is_terminal(OrderStatus(order.status)) and time.monotonic() < deadline:
        s.commit()  # nothing of ours held while we wait (the consumer may move the order)
        if not broker.is_paper:
            streamed = order_updates.follow(
                order_id, client_order_id, order.account_id, connection(), deadline
            )
            if streamed is not None:  # read by another session: ours sees it too
                return order_store.get(order_id, session=s)
        time.sleep(0.5 if broker.is_paper else 1.0)
        report: BrokerOrder | None = broker.find_order(client_order_id)
        if report is not None and report.status != order.status:
            order = order_store.apply_report(order_id, report, quiet=True, session=s)
    return order


def exit_position(
    position_id: int,
    reason: str,
    *,
    alert_id: int | None = None,
    broker: Broker | None = None,
    session: Session | None = None,
) -> str:
    """Sell an open position exactly once (the OPEN -> EXITING claim makes racers lose)."""
    with joined(session, _job_session) as s:
        position = claim_for_exit(position_id, session=s)
        if position is None:
            current = s.get(Position, position_id, populate_existing=True)
            state = current.status if current else "missing"
            if state != "EXITING":
                return f"ignored: position {state.lower()}"
            position = current  # a retried exit job resumes its own claim
        assert position is not None
        if broker is None:
            broker = broker_for(
                s, position.user_id, position.account_id, paper=position.paper, redis=connection()
            )
        attempts = s.exec(
            select(Order).where(Order.position_id == position_id).where(Order.purpose == "EXIT")
        ).all()
        live = [
            o
            for o in attempts
            if not is_terminal(OrderStatus(o.status)) or OrderStatus(o.status) == OrderStatus.FILLED
        ]
        tick = to_rupees(position.tick_size_paise) or Decimal("0.05")
        s.commit()  # the claim stands alone: a lost insert race below rolls back
        if live:
            order = drive(live[0].id, broker, _request(live[0], tick), session=s)  # type: ignore[arg-type]
        else:
            candidate = Order(
                user_id=position.user_id,
                alert_id=alert_id,
                account_id=position.account_id,
                link_id=position.link_id,
                position_id=position_id,
                client_order_id=f"P{position_id}X{len(attempts)}",
                purpose="EXIT",
                exchange=position.exchange,
                symbol=position.symbol,
                symbol_token=position.symbol_token,
                side="SELL",
                quantity=position.quantity,
                paper=position.paper,
                reason=reason,
            )
            order = _send_or_drive(s, _write_submitting(s, candidate), candidate, broker, tick)
        if OrderStatus(order.status) == OrderStatus.FILLED:
            positions.close_from_exit(position_id, order.id, reason, connection(), session=s)  # type: ignore[arg-type]
            return f"closed: {order.client_order_id}"
        if is_terminal(OrderStatus(order.status)):
            positions.release_exit(
                position_id, f"exit order {order.status.lower()}: {order.reason}", session=s
            )
            return f"exit {order.status.lower()}: {order.reason}"
        return f"exit working: {order.client_order_id}"


def handle_exit(position_id: int, reason: str) -> str:
    """The RQ job the monitor enqueues when a stop-loss, target or trailing stop is hit."""
    started = time.perf_counter()
    outcome = exit_position(position_id, reason)
    _log_outcome(f"exit of position {position_id} ({reason})", outcome, started)
    return outcome
