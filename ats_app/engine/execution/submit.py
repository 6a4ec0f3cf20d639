"""One order to the broker, exactly once: written SUBMITTING before the call, sent once,
and an unknown outcome resolved by the broker's order book, never by sending again.

Shared by the entry job (`entry`) and the exit job (`exit_order`). Every client order id is
derived from (alert, account, purpose) or (position, attempt), so a job run twice, or retried
after its worker was killed mid-call, finds its row here and reconciles it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import Decimal

from sqlmodel import Session

from ats_app.engine.broker.base import Broker, BrokerOrder, Contract, OrderRequest, Side
from ats_app.engine.broker.errors import BrokerError, OrderRejected, UnknownOutcome
from ats_app.engine.core.fsm import OrderEvent, OrderStatus, is_terminal
from ats_app.engine.core.money import to_rupees
from ats_app.engine.execution import follower, order_store
from ats_app.engine.store.db import after_commit, get_engine, joined
from ats_app.engine.store.models import (
    Order,
    Position,
    utcnow,
)
from ats_app.engine.store.queueing import connection

log = logging.getLogger("ats.pipeline")

RECONCILE_TRIES = 3  # order-book look-ups (1/s limit) before an unseen order counts as absent
PAPER_WAIT_SECONDS = 10.0  # how long a job looks again at a paper order still working


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
def job_session() -> Iterator[Session]:
    with get_engine().connect() as conn, Session(bind=conn, expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


MAX_SEND_ATTEMPTS = 2
NOT_IN_BOOK = "not in the broker's order book"


def write_submitting(s: Session, candidate: Order) -> Order:
    """Insert `candidate` already SUBMITTING and commit it: required before the broker call,
    so that a rerun finds the row and reconciles instead of sending again. Returns the row a
    concurrent run of the job wrote instead, when there is one."""
    order = order_store.create(candidate, session=s, submit=True)
    s.commit()
    return order


def send_or_drive(s: Session, order: Order, candidate: Order, broker: Broker,
                   tick: Decimal) -> Order:
    request = request_for(order, tick)
    if order is candidate:  # ours, just committed as SUBMITTING: send it
        return _send(s, order.id, broker, request)  # type: ignore[arg-type]
    return drive(order.id, broker, request, session=s)  # type: ignore[arg-type]


def never_reached_broker(order: Order) -> bool:
    return order.status == OrderStatus.FAILED and (order.reason or "").startswith(NOT_IN_BOOK)


def attempt_of(client_order_id: str) -> int:
    _, sep, n = client_order_id.rpartition("R")
    return int(n) if sep and n.isdigit() else 1


def latest_attempt(session: Session, base_id: str) -> Order | None:
    latest = order_store.by_client_id(session, base_id)
    for n in range(2, MAX_SEND_ATTEMPTS + 1):
        if latest is None:
            break
        later = order_store.by_client_id(session, f"{base_id}R{n}")
        if later is None:
            break
        latest = later
    return latest


def as_attempt(order: Order, base_id: str, attempt: int) -> Order:
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


def tick_of(s: Session, order: Order) -> Decimal:
    pos = s.get(Position, order.position_id) if order.position_id else None
    return to_rupees(pos.tick_size_paise) if pos else Decimal("0.05")  # type: ignore[return-value]


def request_for(order: Order, tick: Decimal) -> OrderRequest:
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
    with joined(session, job_session) as s:
        order = after_its_sender(s, order_id, order_store.get(order_id, session=s))
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
        return settle(s, order_id, broker, request, order)


# A SUBMITTING row this young may still have its broker call in flight in another job (the
# SDK's HTTP timeout is 7 s): two exits of one position at once (the monitor's stop and a
# sell alert), or a job and its concurrent rerun. Read as "its sender died", it was looked up
# before Angel had it, marked not in the book, and the position reopened and sold again.
IN_FLIGHT_S = 10.0
IN_FLIGHT_POLL_S = 0.1


def after_its_sender(s: Session, order_id: int, order: Order) -> Order:
    """The order once its sender has had its answer, or once it is too old to be in flight."""
    created = order.created_at
    if created.tzinfo is None:  # SQLite gives naive UTC back
        created = created.replace(tzinfo=UTC)
    deadline = created + timedelta(seconds=IN_FLIGHT_S)
    while order.status == OrderStatus.SUBMITTING and utcnow() < deadline:
        s.commit()  # nothing held while we wait, and the next read sees the sender's commit
        time.sleep(IN_FLIGHT_POLL_S)
        order = order_store.get(order_id, session=s)
    return order


@dataclass(frozen=True)
class Placement:
    """What one placeOrder call came back with: the broker's report, or why not."""

    report: BrokerOrder | None = None
    error: BrokerError | None = None


def place(broker: Broker, request: OrderRequest) -> Placement:
    """The broker call alone (no database): safe in a fan-out's thread pool."""
    try:
        return Placement(report=broker.place_order(request))
    except BrokerError as exc:
        return Placement(error=exc)


def apply_placement(s: Session, order_id: int, placed: Placement) -> Order:
    """Record what placeOrder said on the order's row (the job's thread, in `s`)."""
    exc = placed.error
    if isinstance(exc, UnknownOutcome):
        return order_store.transition(order_id, OrderEvent.TIMEOUT, reason=str(exc), session=s)
    if isinstance(exc, OrderRejected):
        return order_store.transition(
            order_id, OrderEvent.REJECT, reason=exc.broker_message or str(exc), session=s
        )
    if exc is not None:  # refused before processing: nothing reached the book
        return order_store.transition(order_id, OrderEvent.FAIL, reason=str(exc), session=s)
    assert placed.report is not None
    # quiet: the order-update socket may have reported it (or its fill) first
    return order_store.apply_report(order_id, placed.report, quiet=True, session=s)


def look_up(broker: Broker, client_order_id: str) -> BrokerOrder | None:
    """An order of unknown outcome in the broker's book (no database), a few tries apart
    inside the book's 1/s limit; None once it is not there on the last try."""
    for attempt in range(RECONCILE_TRIES):
        found = broker.find_order(client_order_id)
        if found is not None:
            return found
        if attempt + 1 < RECONCILE_TRIES:
            time.sleep(1.0 + attempt)
    return None


def apply_look_up(s: Session, order_id: int, found: BrokerOrder | None) -> Order:
    if found is not None:
        return order_store.apply_report(order_id, found, reconciled=True, session=s)
    return order_store.transition(
        order_id, OrderEvent.RECONCILE_NOT_FOUND, reason=NOT_IN_BOOK, session=s
    )


def _send(s: Session, order_id: int, broker: Broker, request: OrderRequest) -> Order:
    """Place an order committed as SUBMITTING, then settle it."""
    order = apply_placement(s, order_id, place(broker, request))
    return settle(s, order_id, broker, request, order)


def settle(s: Session, order_id: int, broker: Broker, request: OrderRequest,
            order: Order) -> Order:
    """After the broker's answer: an unknown outcome looked up in the book (never resent);
    a paper order still working looked at again briefly; a live one left working."""
    if OrderStatus(order.status) == OrderStatus.UNKNOWN:
        s.commit()  # UNKNOWN is durable before we go and look (no lock held across calls)
        order = apply_look_up(s, order_id, look_up(broker, request.client_order_id))
    if broker.is_paper:
        return _follow_paper(s, order_id, broker, request.client_order_id, order)
    leave_working(s, order)
    return order


def leave_working(s: Session, order: Order) -> None:
    """A live order still working is not waited for: the order-update stream, or the
    account's follower while the stream is down, finishes it (`follower`)."""
    if order.paper or order.account_id is None or is_terminal(OrderStatus(order.status)):
        return
    user_id, account_id = order.user_id, order.account_id
    after_commit(s, lambda: follower.arm(connection(), user_id, account_id))


def _follow_paper(s: Session, order_id: int, broker: Broker, client_order_id: str,
                  order: Order) -> Order:
    """Our own paper book fills at once when it has a price; a paper order still working
    is looked at again briefly (no broker pace to wait for)."""
    deadline = time.monotonic() + PAPER_WAIT_SECONDS
    while not is_terminal(OrderStatus(order.status)) and time.monotonic() < deadline:
        s.commit()  # nothing of ours held while we wait
        time.sleep(0.5)
        report: BrokerOrder | None = broker.find_order(client_order_id)
        if report is not None and report.status != order.status:
            order = order_store.apply_report(order_id, report, quiet=True, session=s)
    return order


def log_outcome(what: str, outcome: str, started: float) -> None:
    """The worker's one line per job (RQ's own per-job lines are off: see `worker`)."""
    log.info("%s: %s (%.1f ms)", what, outcome, (time.perf_counter() - started) * 1000)
