"""Reading the audit log (the dashboard's Audit page and its export)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from ats_app.engine.core.clock import iso_ist, ist_stamp
from ats_app.engine.store.models import AuditEvent

IST = ZoneInfo("Asia/Kolkata")
COLUMNS = ("id", "time_ist", "category", "action", "subject", "detail")  # of the export


def list_events(
    session: Session,
    user_id: int,
    *,
    category: str | None = None,
    text: str | None = None,
    day: date | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[dict[str, str]]:
    """The user's events, newest first; times shown in IST (stored in UTC)."""
    stmt = select(AuditEvent).where(AuditEvent.user_id == user_id)
    if category:
        stmt = stmt.where(col(AuditEvent.action).startswith(category + "."))
    if text:
        needle = f"%{text.strip()}%"
        stmt = stmt.where(
            col(AuditEvent.detail).like(needle) | col(AuditEvent.subject).like(needle)
        )
    if day:
        start = datetime.combine(day, time(), IST)
        stmt = stmt.where(col(AuditEvent.created_at) >= start)
        stmt = stmt.where(col(AuditEvent.created_at) < start + timedelta(days=1))
    rows = session.exec(stmt.order_by(col(AuditEvent.id).desc()).offset(offset).limit(limit)).all()
    return [
        {
            "id": str(e.id),
            "time_ist": ist_stamp(e.created_at),
            "time_iso": iso_ist(e.created_at),
            "category": e.action.split(".", 1)[0],
            "action": e.action,
            "subject": e.subject or "",
            "detail": e.detail,
        }
        for e in rows
    ]


def export_events(rows: list[dict[str, str]], fmt: str) -> str:
    """`list_events` rows as CSV or JSON; time_ist there is ISO 8601 with +05:30, for a
    parser (the page's "… IST" text is for people)."""
    out = [{**{k: r[k] for k in COLUMNS}, "time_ist": r["time_iso"]} for r in rows]
    if fmt == "json":
        return json.dumps(out, indent=2)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows(out)
    return buf.getvalue()
