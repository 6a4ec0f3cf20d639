"""The audit log: every action and every refused input, never a secret."""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlmodel import Session

from ats_app.engine.models import AuditEvent

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
    event = AuditEvent(
        user_id=user_id,
        action=action,
        subject=(subject or None) and str(subject)[:255],
        detail=json.dumps(detail, default=str, sort_keys=True) if detail else "",
    )
    session.add(event)
    log.info("audit %s user=%s subject=%s", action, user_id, subject)
    return event


def record_now(
    action: str, *, user_id: int | None = None, subject: str | None = None, **detail: Any
) -> None:
    """Record in its own transaction: for refusals, whose caller's transaction rolls back."""
    from ats_app.engine.db import session_scope

    with session_scope() as s:
        record(s, action, user_id=user_id, subject=subject, **detail)
