"""Bot state per user: when stopped, alerts are recorded but nothing is traded."""

from __future__ import annotations

from sqlmodel import Session

from ats_app.engine.store import audit
from ats_app.engine.store.models import BotState, utcnow


def is_running(session: Session, user_id: int) -> bool:
    row = session.get(BotState, user_id)
    return bool(row and row.running)


def set_running(session: Session, user_id: int, running: bool) -> bool:
    row = session.get(BotState, user_id) or BotState(user_id=user_id)
    changed = row.running != running
    row.running = running
    row.updated_at = utcnow()
    session.add(row)
    audit.record(
        session, "bot.started" if running else "bot.stopped", user_id=user_id, changed=changed
    )
    if running:
        from ats_app.engine.execution import halt  # lazy: halt itself stops the bot through here

        halt.release(session, user_id)  # Start after a kill switch resumes trading
    if changed:
        from ats_app.engine.notify import (
            notices as notify,  # lazy: keeps Apprise out of processes that never notify
        )

        notify.emit(user_id, "bot_started" if running else "bot_stopped")
    return running
