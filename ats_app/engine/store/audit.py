"""The audit log: every action and every refused input, never a secret."""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from ats_app.engine.store.models import AuditEvent, utcnow

log = logging.getLogger("ats.audit")


def record(
    session: Session,
    action: str,
    *,
    user_id: int | None = None,
    subject: str | None = None,
    **detail: Any,
) -> None:
    """Add an audit event to `session`'s transaction: written by its commit, dropped by its
    rollback.

    Kept as plain rows and written together in one Core insert just before the commit, not
    as ORM objects: the order path records half a dozen events per job, and flushing each as
    an entity (fetching its id back) cost more than the insert itself."""
    if not session.in_transaction():
        session.begin()  # an event belongs to a transaction, even one with no SQL yet
    pending = session.info.setdefault(_PENDING, [])
    pending.append({"created_at": utcnow(), **fields(action, user_id, subject, detail)})
    logged(action, user_id, subject)


_PENDING = "ats_audit_pending"


def mark(session: Session) -> int:
    """Where the transaction's pending events stand (for `drop_since`)."""
    return len(session.info.get(_PENDING, []))


def drop_since(session: Session, at: int) -> None:
    """Forget the events recorded after `mark` returned `at`: a savepoint that was rolled
    back took the changes they describe with it."""
    pending = session.info.get(_PENDING)
    if pending is not None:
        del pending[at:]
# One statement object for every call: SQLAlchemy reuses its compiled form.
_INSERT = sa.insert(AuditEvent.__table__)  # type: ignore[attr-defined]


@sa_event.listens_for(OrmSession, "before_commit")
def _write_pending(session: OrmSession) -> None:
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.flush()  # the changes they describe first, as one flush would have ordered them
        session.execute(_INSERT, rows)


@sa_event.listens_for(OrmSession, "after_transaction_end")
def _drop_pending(session: OrmSession, transaction: SessionTransaction) -> None:
    # The outermost transaction only: rolled back or closed (a commit has written them). An
    # event recorded inside a rolled-back savepoint would still be written; none is used.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def insert(
    conn: sa.Connection,
    action: str,
    *,
    user_id: int | None = None,
    subject: str | None = None,
    **detail: Any,
) -> None:
    """`record` for a Core connection's transaction (the webhook ack, which skips the ORM)."""
    conn.execute(_INSERT, {"created_at": utcnow(), **fields(action, user_id, subject, detail)})
    logged(action, user_id, subject)


def logged(action: str, user_id: int | None, subject: str | None) -> None:
    log.info("audit %s user=%s subject=%s", action, user_id, subject)


def fields(
    action: str, user_id: int | None, subject: str | None, detail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "action": action,
        "subject": (subject or None) and str(subject)[:255],
        "detail": json.dumps(detail, default=str, sort_keys=True) if detail else "",
    }


def record_now(
    action: str, *, user_id: int | None = None, subject: str | None = None, **detail: Any
) -> None:
    """Record in its own transaction: for refusals, whose caller's transaction rolls back."""
    from ats_app.engine.store.db import session_scope

    with session_scope() as s:
        record(s, action, user_id=user_id, subject=subject, **detail)
