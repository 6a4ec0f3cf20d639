"""The kill switch's state, per user, shaped like rq's suspension module: `engage` /
`is_engaged` / `release`. The action behind the red button (cancel entries, exit everything)
is `execution.halt.kill`, which engages this first.

Engaged, entries are refused by the risk gate, including alerts already queued (unlike Stop,
which lets them finish). Starting the bot again releases the switch.
"""

from __future__ import annotations

from sqlmodel import Session

from ats_app.engine.risk import bot
from ats_app.engine.risk.bot import release
from ats_app.engine.risk.gate import is_halted as is_engaged
from ats_app.engine.store import audit
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import BotState, RiskLimits

__all__ = ["engage", "halted", "is_engaged", "release"]


def engage(session: Session, user_id: int) -> None:
    """Stop the bot and hold the switch (until the bot is started again, or `release`)."""
    bot.set_running(session, user_id, False)
    state = session.get(BotState, user_id)
    assert state is not None
    row = session.get(RiskLimits, user_id) or RiskLimits(user_id=user_id)
    row.halted_at = state.updated_at
    session.add(row)
    audit.record(session, "kill_switch.engaged", user_id=user_id)


def halted(user_id: int) -> bool:
    with session_scope() as s:
        return is_engaged(s, user_id)
