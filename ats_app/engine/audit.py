"""The audit log: every action and every refused input, never a secret."""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from ats_app.engine.models import AuditEvent, utcnow

log = logging.getLogger("ats.audit")


def record(
    session: Session,
    action: str,
    *,
    user_id: int | None = None,
    subject: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to `session` (committed with the caller's transaction)."""
    event = AuditEvent(**fields(action, user_id, subject, detail))
    session.add(event)
    logged(action, user_id, subject)
    return event


# One statement object for every call: SQLAlchemy reuses its compiled form.
_INSERT = sa.insert(AuditEvent.__table__)  # type: ignore[attr-defined]


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
    from ats_app.engine.db import session_scope

    with session_scope() as s:
        record(s, action, user_id=user_id, subject=subject, **detail)
