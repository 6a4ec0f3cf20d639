"""An alert's outcome on each of its accounts, and its verdict once all are final.

Every account an alert reaches gets one `AlertTarget` row, written before that account's
order (or as its refusal), so nothing is skipped silently:

- ORDERED: an order was written (its row says the rest: working, filled, rejected...);
- REFUSED: the risk gate said no (a user's or the account's own limit), with the reason;
- IGNORED: nothing to do (a position already open, no position to exit);
- FAILED: an error before any order (contract, session, prices), with the error.

The alert's status ends as the broker's verdict once every order is final (`settle`): the
job calls it when it is done, the order-update stream and the account's follower after
each order they finish, once the job has written PLACED. DONE when at least one account
traded (or had nothing to do); REJECTED when every account was refused, rejected or
failed, with each one's reason.
Refusals and failures on one account of several are notified (`account_not_traded`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ats_app.engine.core.fsm import OrderStatus, is_terminal
from ats_app.engine.store import audit
from ats_app.engine.store.db import after_commit, joined
from ats_app.engine.store.models import Alert, AlertTarget, BrokerAccount, Order, utcnow

ORDERED, REFUSED, IGNORED, FAILED = "ORDERED", "REFUSED", "IGNORED", "FAILED"
OPEN_STATUSES = ("PROCESSING", "PLACED")  # an alert still waiting for its verdict
FINAL_STATUSES = ("DONE", "REJECTED", "FAILED")


def record(s: Session, alert_id: int, user_id: int, account_id: int | None, outcome: str,
           *, reason: str | None = None, order_id: int | None = None,
           notify: bool = False, row: AlertTarget | None = None,
           fresh: bool = False) -> AlertTarget:
    """Write (or update, on a rerun) the alert's row for this account; the caller commits.

    `row`: the row this job wrote already; `fresh`: the job's first run, so there is none
    (no look-up). A refusal, an ignored entry or a failure is audited as `alert.target`
    with its reason (an order has its own events). `notify`: a refusal or failure is also
    notified (one account of several: the alert's own verdict may still be DONE)."""
    key = account_id or 0
    if row is None and not fresh:
        row = s.exec(select(AlertTarget).where(AlertTarget.alert_id == alert_id)
                     .where(AlertTarget.account_key == key)).first()
    if row is not None and (row.outcome, row.order_id, row.reason) == (
            outcome, order_id, reason and reason[:500]):
        return row  # nothing new
    if row is None:
        row = AlertTarget(alert_id=alert_id, user_id=user_id, account_id=account_id,
                          account_key=key, outcome=outcome)
    row.outcome, row.order_id = outcome, order_id
    row.reason = reason[:500] if reason else None
    row.updated_at = utcnow()
    s.add(row)
    if outcome != ORDERED:
        audit.record(s, "alert.target", user_id=user_id, subject=str(alert_id),
                     account_id=account_id, outcome=outcome, reason=reason)
    if notify and outcome in (REFUSED, FAILED) and account_id is not None:
        _notify_not_traded(s, user_id, alert_id, account_id, reason or outcome.lower())
    return row


def _notify_not_traded(s: Session, user_id: int, alert_id: int, account_id: int,
                       reason: str) -> None:
    label = s.exec(select(BrokerAccount.label).where(BrokerAccount.id == account_id)).first()

    def send() -> None:
        from ats_app.engine.notify import notices  # lazy: not every process sends notices

        notices.emit(user_id, "account_not_traded", once=f"not-traded-{alert_id}-{account_id}",
                     account=label or f"account {account_id}", reason=reason,
                     alert_id=alert_id)

    after_commit(s, send)


def set_status(s: Session, alert: Alert, status: str, reason: str | None = None) -> None:
    """Change the alert's status in the caller's transaction (audited); the caller commits.
    A REJECTED alert is notified (`alert_refused`) once that commit lands."""
    alert.status, alert.reason = status, reason and reason[:500]
    if status in FINAL_STATUSES:
        alert.processed_at = utcnow()
    s.add(alert)
    audit.record(s, f"alert.{status.lower()}", user_id=alert.user_id, subject=str(alert.id),
                 reason=reason)
    if status == "REJECTED":
        _notify_refused(s, alert.user_id, alert.id, reason)  # type: ignore[arg-type]


def _notify_refused(s: Session, user_id: int, alert_id: int, reason: str | None) -> None:
    def refused() -> None:
        from ats_app.engine.notify import notices  # lazy: the web process never imports it

        notices.emit(user_id, "alert_refused", once=f"refused-{alert_id}", reason=reason,
                     alert_id=alert_id)

    after_commit(s, refused)


@dataclass(frozen=True)
class TargetView:
    """One account's outcome as the verdict reads it."""

    outcome: str
    reason: str | None
    order_status: str | None = None  # ORDERED: the order's status
    order_reason: str | None = None
    client_order_id: str | None = None
    filled_quantity: int = 0


def is_final(t: TargetView) -> bool:
    return t.outcome != ORDERED or (
        t.order_status is not None and is_terminal(OrderStatus(t.order_status)))


def did_not_trade(t: TargetView) -> str | None:
    """Why this account counts against the alert (None: it traded or had nothing to do)."""
    if t.outcome == IGNORED:
        return None
    if t.outcome == REFUSED:
        return f"rejected: {t.reason}"
    if t.outcome == FAILED:
        return f"failed: {t.reason}"
    if t.filled_quantity > 0:
        return None
    status = (t.order_status or "unknown").lower()
    why = f" ({t.order_reason})" if t.order_reason else ""
    return f"{status}: {t.client_order_id}{why}"


def verdict(targets: Sequence[TargetView]) -> tuple[str, str | None] | None:
    """(status, reason) once every target is final, else None. Pure."""
    if not targets or not all(is_final(t) for t in targets):
        return None
    failed = [why for t in targets if (why := did_not_trade(t)) is not None]
    status = "DONE" if len(failed) < len(targets) else "REJECTED"
    return status, "; ".join(failed) or None


def _views(s: Session, alert_id: int) -> list[TargetView]:
    rows = s.exec(
        select(AlertTarget, Order)
        .outerjoin(Order, col(Order.id) == AlertTarget.order_id)
        .where(AlertTarget.alert_id == alert_id)
        .order_by(col(AlertTarget.account_key))
        .execution_options(populate_existing=True)
    ).all()
    return [TargetView(t.outcome, t.reason, o.status if o else None, o.reason if o else None,
                       o.client_order_id if o else None, o.filled_quantity if o else 0)
            for t, o in rows]


def settle_waiting_on(order_id: int, alert_id: int | None) -> list[str]:
    """A finished order's verdicts: its own alert's, and every other PLACED alert whose
    account waits on this order (an exit alert that found the position already exiting is
    answered by the first exit's sell). Returns the statuses given."""
    with joined(None) as s:
        waiting = set(s.exec(
            select(AlertTarget.alert_id).join(Alert, col(Alert.id) == AlertTarget.alert_id)
            .where(AlertTarget.order_id == order_id)
            .where(Alert.status == "PLACED")).all())
    if alert_id is not None:
        waiting.add(alert_id)
    return [st for a in sorted(waiting) if (st := settle(a)) is not None]


def settle(alert_id: int | None, *, session: Session | None = None,
           alert: Alert | None = None, by_job: bool = False) -> str | None:
    """Give the alert its verdict if every account's outcome is final; returns the status
    it got (None: still waiting, or settled already). Safe to call from any process: the
    status changes only in one conditional update. `alert`: the job's own row, current in
    `session` (no read).

    Only the alert's own job (`by_job`) settles a PROCESSING alert: until the job writes
    PLACED, some account may have no outcome row yet (an exit alert's accounts run in
    threads, each committing its own), and a verdict over the rows so far would end the
    alert with that account's exit or entry never done (the soak's DONE alerts missing an
    account's row: the stream settled on the first sell's fill, then a worker kill made
    the retry find the alert final)."""
    if alert_id is None:
        return None
    allowed = OPEN_STATUSES if by_job else ("PLACED",)
    with joined(session) as s:
        if alert is None:
            alert = s.get(Alert, alert_id, populate_existing=True)
        if alert is None or alert.status not in allowed:
            return None
        decided = verdict(_views(s, alert_id))
        if decided is None:
            return None
        status, reason = decided
        user_id = alert.user_id
        won = s.execute(
            sa.update(Alert).where(col(Alert.id) == alert_id)
            .where(col(Alert.status).in_(allowed))
            .values(status=status, reason=reason and reason[:500], processed_at=utcnow())
        ).rowcount
        if not won:
            return None  # another process settled it first
        s.expire(alert)  # the update went around it
        audit.record(s, f"alert.{status.lower()}", user_id=user_id, subject=str(alert_id),
                     reason=reason)
        if status == "REJECTED":
            _notify_refused(s, user_id, alert_id, reason)
        return status
