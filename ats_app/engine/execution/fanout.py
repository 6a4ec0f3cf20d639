"""One entry alert on every account of its link, all orders in flight at once.

Angel answers placeOrder in 100-300 ms; served one after another, the tenth account of a
link would buy seconds after the first. So the job works in three steps:

1. **prepare** each account (the job's thread, its database session): the ordertag
   `A{alert}E{account}`, an earlier attempt if this is a rerun, the open-position rule, the
   account's broker, the contract (resolved once per instrument server and shared: every
   account buys the same strike) and the quantity;
2. **reserve** under the user's risk lock: one gate decision for all of them
   (`risk.gate.check_fanout`: each approved account counts against the user's limits for
   the next, and each account's own limits apply), then every approved order row is
   committed SUBMITTING (one commit) and each handed at once to a thread that makes only
   the broker call;
3. **record** each answer as it comes back (the job's thread): the report, a rejection
   with Angel's reason, or an unknown outcome — looked up in the account's order book, in
   its thread, never resent. Working orders are left to the order-update stream and the
   account's follower (`submit.leave_working`): no worker waits for a fill.

Threads touch only the broker (its session, rate limiter and HTTP); every database write
is the job's. One account's slowness, rate-limit back-off, rejection or expired session
stays in its own thread and its own row.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import redis
from sqlmodel import Session, select

from ats_app.engine.broker.base import Broker, BrokerOrder, Contract
from ats_app.engine.broker.errors import BrokerError
from ats_app.engine.broker.factory import broker_for, live_prices
from ats_app.engine.core.errors import AtsError
from ats_app.engine.core.fsm import OrderStatus, is_terminal
from ats_app.engine.core.money import to_paise
from ats_app.engine.execution import contracts, order_store, positions, verdict
from ats_app.engine.execution.signals import AlertSignal
from ats_app.engine.execution.submit import (
    MAX_SEND_ATTEMPTS,
    Placement,
    apply_look_up,
    apply_placement,
    as_attempt,
    attempt_of,
    drive,
    latest_attempt,
    leave_working,
    look_up,
    never_reached_broker,
    place,
    request_for,
    send_or_drive,
    settle,
    tick_of,
    write_submitting,
)
from ats_app.engine.risk import gate as risk_gate
from ats_app.engine.store import audit
from ats_app.engine.store.models import AlertTarget, Order, WebhookLink, utcnow

log = logging.getLogger("ats.pipeline")

# A waiting worker re-tries the user's risk lock this often. The lock is held for a check and
# the inserts (milliseconds); redis-py's default 0.1 s poll made a burst of one user's alerts
# queue up in 100 ms steps.
RISK_LOCK_POLL_S = 0.002


def max_threads() -> int:
    """Broker calls in flight at once per job (FANOUT_THREADS; each is a socket waiting on
    Angel, not a CPU)."""
    try:
        return max(1, int(os.environ.get("FANOUT_THREADS", "64")))
    except ValueError:
        return 64


@dataclass(frozen=True)
class Target:
    account_id: int | None  # None: paper trading without a broker account
    multiplier: int
    base_url: str | None


@dataclass
class Entry:
    """One account's entry as it goes through the three steps."""

    target: Target
    client_id: str
    broker: Broker | None = None
    existing: Order | None = None  # a rerun: the latest attempt already written
    contract: Contract | None = None
    quantity: int = 0
    tick: Decimal = Decimal("0.05")
    order: Order | None = None
    outcome: str | None = None  # set once this account is finished in this run
    row: AlertTarget | None = None  # this account's AlertTarget, once written
    futures: list[Future[Any]] = field(default_factory=list)
    # The broker could not be asked what became of this account's order (its book unread):
    # the job is retried for it once the other accounts are done.
    unresolved: BrokerError | None = None


class _Inline:
    """An executor that runs the call at once: paper, or a single account."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        f: Future[Any] = Future()
        try:
            f.set_result(fn(*args))
        except BaseException as exc:  # delivered through the future, as a pool would
            f.set_exception(exc)
        return f

    def shutdown(self, wait: bool = True) -> None:
        pass


def enter_all(s: Session, alert_id: int, user_id: int, link: WebhookLink,
              targets: list[Target], signal: AlertSignal, paper: bool, has_orders: bool,
              conn: redis.Redis, *, first_run: bool = False) -> list[str]:
    """Every account's entry for one alert; returns one outcome line per account.
    `has_orders`: an earlier run wrote orders for it; `first_run`: no earlier run wrote
    anything (its outcome rows are inserted without a look)."""
    entries = [Entry(t, f"A{alert_id}E{t.account_id or 0}") for t in targets]
    shared: dict[str | None, Contract] = {}
    many = len(entries) > 1
    for e in entries:
        _guard(s, alert_id, user_id, e, lambda e=e: _prepare(
            s, alert_id, user_id, link, e, signal, paper, has_orders, conn, shared), many)
    live = [e for e in entries if e.outcome is None and not paper]
    pool: Any = (ThreadPoolExecutor(min(len(live), max_threads()), "fanout")
                 if len(live) > 1 else _Inline())
    try:
        fresh = [e for e in entries if e.outcome is None and e.existing is None]
        # Sent once the user's lock is released: a single account's call runs in line, and
        # holding the lock across it made every other alert of the user wait on this one.
        for e in _reserve(s, alert_id, user_id, link, fresh, signal, paper, conn, first_run):
            e.futures.append(pool.submit(place, e.broker, request_for(e.order, e.tick)))  # type: ignore[arg-type]
        _record_answers(s, alert_id, user_id, [e for e in entries if e.futures], pool)
    finally:
        pool.shutdown(wait=True)
    for e in entries:
        if e.outcome is None:
            _guard(s, alert_id, user_id, e, lambda e=e: _finish(s, alert_id, user_id, e, conn),
                   many)
    unresolved = [e.unresolved for e in entries if e.unresolved is not None]
    if unresolved:
        # Not a verdict: the job fails, RQ retries it (then recovery re-runs it), and the run
        # looks the order up again, never resending it.
        raise unresolved[0]
    return [e.outcome or "unknown" for e in entries]


_UNRESOLVED = (OrderStatus.SUBMITTING.value, OrderStatus.UNKNOWN.value)


def _unresolved_order(s: Session, e: Entry) -> int | None:
    """The entry's order whose outcome is still unknown (SUBMITTING / UNKNOWN), if any."""
    order = e.order or e.existing
    if order is None or order.id is None:
        return None
    status = s.exec(select(Order.status).where(Order.id == order.id)).first()
    return order.id if status in _UNRESOLVED else None


def _guard(s: Session, alert_id: int, user_id: int, e: Entry, step: Callable[[], None],
           many: bool) -> None:
    """One account's failure never blocks the others: its error is its outcome."""
    try:
        step()
    except BrokerError as exc:
        order_id = _unresolved_order(s, e)
        if order_id is None:
            _failed(s, alert_id, user_id, e, exc, many)
            return
        # The order may be at the broker (its answer lost, then the book unreadable): not a
        # failure of the account, which a verdict would make final with the order unknown.
        audit.record(s, "alert.target_unresolved", user_id=user_id, subject=str(alert_id),
                     account_id=e.target.account_id, order_id=order_id, error=str(exc))
        s.commit()
        e.unresolved = exc
        e.outcome = f"unresolved: {exc}"
    except AtsError as exc:
        _failed(s, alert_id, user_id, e, exc, many)


def _failed(s: Session, alert_id: int, user_id: int, e: Entry, exc: Exception,
            many: bool) -> None:
    """One account's failure: its error is its outcome (audited, its verdict FAILED).
    Nothing half-done is pending here: every write is committed before the broker, price or
    contract calls that raise these."""
    audit.record(s, "alert.target_failed", user_id=user_id, subject=str(alert_id),
                 account_id=e.target.account_id, error=str(exc))
    verdict.record(s, alert_id, user_id, e.target.account_id, verdict.FAILED,
                   reason=str(exc), notify=many)
    s.commit()
    e.outcome = f"failed: {exc}"


def _prepare(s: Session, alert_id: int, user_id: int, link: WebhookLink, e: Entry,
             signal: AlertSignal, paper: bool, has_orders: bool, conn: redis.Redis,
             shared: dict[str | None, Contract]) -> None:
    t = e.target
    e.existing = latest_attempt(s, e.client_id) if has_orders else None
    open_id = positions.open_position_id(s, link.id, t.account_id)  # type: ignore[arg-type]
    if e.existing is None and open_id is not None:
        reason = "a position is already open for this link and account"
        audit.record(s, "alert.entry_ignored", user_id=user_id, subject=str(alert_id),
                     reason=reason, position_id=open_id)
        verdict.record(s, alert_id, user_id, t.account_id, verdict.IGNORED, reason=reason)
        e.outcome = "ignored: position already open"
        return
    e.broker = broker_for(s, user_id, t.account_id, paper=paper, redis=conn)
    if e.existing is not None:
        e.tick = tick_of(s, e.existing)
        return
    contract = shared.get(t.base_url)
    if contract is None:
        index = contracts.index_for(t.base_url)
        # ATM's spot: the feed's tick (it follows the index spots), else a shared quote
        prices = live_prices(e.broker, conn, max_age=contracts.spot_max_age(conn, t.base_url))
        contract = contracts.resolve(signal, index, utcnow(), lambda c: prices.quote(c).ltp)
        shared[t.base_url] = contract
    e.contract, e.tick = contract, contract.tick_size
    e.quantity = contracts.order_quantity(signal, contract, t.multiplier)


def _reserve(s: Session, alert_id: int, user_id: int, link: WebhookLink,
             entries: list[Entry], signal: AlertSignal, paper: bool, conn: redis.Redis,
             fresh: bool) -> list[Entry]:
    """Under the user's lock: the gate's decision and every approved row SUBMITTING
    (committed); returns the entries to send."""
    if not entries:
        return []
    # Check and reserve together: the order rows written under the user's lock are what the
    # next alert's check counts, so two workers cannot both take the last slot.
    with conn.lock(f"ats:risk-lock:{user_id}", timeout=30, blocking_timeout=30,
                   sleep=RISK_LOCK_POLL_S):
        _ignore_busy(s, alert_id, user_id, link, entries)
        entries = [e for e in entries if e.outcome is None]
        if not entries:
            s.commit()  # the "ignored" rows
            return []
        asks = [(e.target.account_id, e.quantity // e.contract.lot_size)  # type: ignore[union-attr]
                for e in entries]
        refusals = risk_gate.check_fanout(user_id, asks, alert_id=alert_id, conn=conn,
                                          session=s)
        for e, refused in zip(entries, refusals, strict=True):
            if refused:
                verdict.record(s, alert_id, user_id, e.target.account_id, verdict.REFUSED,
                               reason=refused, notify=len(entries) > 1)
                e.outcome = f"rejected: {refused}"
        if any(refusals):
            s.commit()  # required: the refusals now (one may exit every position)
        # Every approved account's row SUBMITTING in one commit (each insert in its own
        # savepoint: a concurrent run's row wins alone), then every broker call at once.
        # One account alone needs no savepoint (a lost race rolls back the whole, empty,
        # transaction), which keeps the single-account job's statements as few as before.
        approved = [e for e in entries if e.outcome is None]
        nested = len(approved) > 1
        sends = []
        for e in approved:
            candidate = _candidate(alert_id, user_id, link, e, signal, paper)
            order = order_store.create(candidate, session=s, submit=True, nested=nested)
            e.order = order
            if order is candidate:
                sends.append(e)
            else:  # a concurrent run of this job wrote it first: follow that one
                e.existing = order
            e.row = verdict.record(s, alert_id, user_id, e.target.account_id, verdict.ORDERED,
                                   order_id=order.id, fresh=fresh)
        s.commit()  # required: SUBMITTING is durable before any broker call
    return sends


def _ignore_busy(s: Session, alert_id: int, user_id: int, link: WebhookLink,
                 entries: list[Entry]) -> None:
    """The one-position rule, checked again under the user's lock: an alert that arrived
    while another alert's entry on the same account is still working (at Angel's pace, a
    few hundred ms) is ignored there, as it would be once that entry is a position."""
    ids = [e.target.account_id for e in entries if e.target.account_id is not None]
    busy = positions.busy_accounts(s, link.id, ids, alert_id)  # type: ignore[arg-type]
    for e in entries:
        reason = busy.get(e.target.account_id)  # type: ignore[arg-type]
        if reason is not None:
            audit.record(s, "alert.entry_ignored", user_id=user_id, subject=str(alert_id),
                         reason=reason, account_id=e.target.account_id)
            verdict.record(s, alert_id, user_id, e.target.account_id, verdict.IGNORED,
                           reason=reason)
            e.outcome = "ignored: position already open or entry working"


def _candidate(alert_id: int, user_id: int, link: WebhookLink, e: Entry,
               signal: AlertSignal, paper: bool) -> Order:
    c = e.contract
    assert c is not None
    return Order(
        user_id=user_id, alert_id=alert_id, account_id=e.target.account_id, link_id=link.id,
        client_order_id=e.client_id, purpose="ENTRY", exchange=c.exchange,
        symbol=c.tradingsymbol, symbol_token=c.symboltoken, side="BUY", quantity=e.quantity,
        price_paise=to_paise(signal.price), paper=paper, reason="entry signal",
    )


def _record_answers(s: Session, alert_id: int, user_id: int, sent: list[Entry],
                    pool: Any) -> None:
    """Each placeOrder answer as it arrives; unknown outcomes looked up in their thread."""
    by_future = {e.futures[-1]: e for e in sent}
    lookups: dict[Future[Any], Entry] = {}
    for done in as_completed(by_future):
        e = by_future[done]
        order = apply_placement(s, e.order.id, done.result())  # type: ignore[union-attr, arg-type]
        if e.broker is not None and e.broker.is_paper:  # our own book: settled in line
            order = settle(s, order.id, e.broker, request_for(order, e.tick), order)  # type: ignore[arg-type]
        s.commit()  # each account's answer durable as soon as it is known
        e.order = order
        if OrderStatus(order.status) == OrderStatus.UNKNOWN:
            lookups[pool.submit(look_up, e.broker, order.client_order_id)] = e
    for done in as_completed(lookups):
        e = lookups[done]
        found: BrokerOrder | None = done.result()
        e.order = apply_look_up(s, e.order.id, found)  # type: ignore[union-attr, arg-type]
        s.commit()


def _finish(s: Session, alert_id: int, user_id: int, e: Entry, conn: redis.Redis) -> None:
    """After the concurrent part: a rerun's earlier attempt driven on, an attempt that never
    reached the broker sent again under a new ordertag, a fill's position opened."""
    broker = e.broker
    assert broker is not None
    if e.existing is not None:
        e.order = drive(e.existing.id, broker, request_for(e.existing, e.tick), session=s)  # type: ignore[arg-type]
    order = e.order
    assert order is not None
    attempt = attempt_of(order.client_order_id)
    while never_reached_broker(order) and attempt < MAX_SEND_ATTEMPTS:
        # The broker's book settled without it (e.g. the worker died before the request left):
        # sending again, under a new ordertag, cannot double it.
        attempt += 1
        s.commit()  # the failed attempt stays failed whatever happens to the next insert
        candidate = as_attempt(order, e.client_id, attempt)
        order = write_submitting(s, candidate)
        # The account's order is this attempt from now on: if its answer is lost and the
        # book unreadable, `_guard` must find it unresolved, not the earlier one FAILED (the
        # soak, seed 3: the alert REJECTED with this attempt UNKNOWN for good).
        e.order = order
        e.row = verdict.record(s, alert_id, user_id, e.target.account_id, verdict.ORDERED,
                               order_id=order.id, row=e.row)
        order = send_or_drive(s, order, candidate, broker, e.tick)
    if order.filled_quantity > 0 and is_terminal(OrderStatus(order.status)):
        positions.open_from_entry(order.id, e.tick, conn, session=s)  # type: ignore[arg-type]
    else:
        leave_working(s, order)
    e.row = verdict.record(s, alert_id, user_id, e.target.account_id, verdict.ORDERED,
                           order_id=order.id, row=e.row)
    e.order = order
    e.outcome = f"{order.status.lower()}: {order.client_order_id}"


__all__ = ["Placement", "Target", "enter_all", "max_threads"]
