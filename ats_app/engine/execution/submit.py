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
from decimal import Decimal

from sqlmodel import Session

from ats_app.engine.broker.base import Broker, BrokerOrder, Contract, OrderRequest, Side
from ats_app.engine.broker.errors import BrokerError, OrderRejected, UnknownOutcome
from ats_app.engine.core.fsm import OrderEvent, OrderStatus, is_terminal
from ats_app.engine.core.money import to_rupees
from ats_app.engine.execution import order_store, order_updates
from ats_app.engine.store.db import get_engine, joined
from ats_app.engine.store.models import (
    Order,
    Position,
)
from ats_app.engine.store.queueing import connection

log = logging.getLogger("ats.pipeline")

RECONCILE_TRIES = 3  # order-book look-ups (1/s limit) before an unseen order counts as absent
FILL_WAIT_SECONDS = 10.0  # how long a job follows a working order before leaving it to sync


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


def log_outcome(what: str, outcome: str, started: float) -> None:
    """The worker's one line per job (RQ's own per-job lines are off: see `worker`)."""
    log.info("%s: %s (%.1f ms)", what, outcome, (time.perf_counter() - started) * 1000)
