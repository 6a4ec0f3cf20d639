"""Bot state per user: when stopped, alerts are recorded but nothing is traded.

Starting the bot releases the kill switch (`release`); engaging it lives in `kill_switch`.
"""

from __future__ import annotations

from sqlmodel import Session

from ats_app.engine.store import audit
from ats_app.engine.store.models import BotState, RiskLimits, utcnow


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
        release(session, user_id)  # Start after a kill switch resumes trading
    if changed:
        # lazy: keeps Apprise out of processes that never notify
        from ats_app.engine.notify import notices

        notices.emit(user_id, "bot_started" if running else "bot_stopped")
    return running


def release(session: Session, user_id: int) -> bool:
    """Release the switch without starting the bot. True if it was engaged."""
    row = session.get(RiskLimits, user_id)
    if row is None or row.halted_at is None:
        return False
    row.halted_at = None
    row.updated_at = utcnow()
    session.add(row)
    audit.record(session, "kill_switch.released", user_id=user_id)
    return True
